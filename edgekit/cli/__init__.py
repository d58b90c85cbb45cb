"""The command line (`edgekit ...`): `app.py` holds the typer app and the error boundary, one module per
command beside it, `common.py` the options and helpers they share, `render.py` the tables.
Exports `app` and `main` (the console script)."""

from edgekit.cli.app import app, main

__all__ = ["app", "main"]
