"""The `edgekit` command line: the typer app, the error boundary every command runs inside (one red line
and a non-zero exit for any `EdgekitError`) and the command table. Each command lives in its own module
beside this one; they share only `cli.common` and `cli.render`, never this module.
"""

from __future__ import annotations

import functools

import typer
from rich.markup import escape

from edgekit.cli.bench import bench_command
from edgekit.cli.debug import debug_command
from edgekit.cli.embed import embed_command
from edgekit.cli.env import env_command, zoo_command
from edgekit.cli.export import export_command
from edgekit.cli.inspect import inspect_command
from edgekit.cli.pack import pack_command
from edgekit.cli.prune import prune_command
from edgekit.cli.quantize import quantize_command
from edgekit.cli.sweep import sweep_command
from edgekit.cli.testdata import testdata_command
from edgekit.cli.tune import tune_command
from edgekit.cli.validate import validate_command
from edgekit.cli.verify import verify_command
from edgekit.errors import EdgekitError
from edgekit.hints import extra_for_module, hint_for
from edgekit.ui import console

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Take a PyTorch model to the edge: export, compile, validate, benchmark.",
)


def command(func):
    """Run a command body, turning EdgekitError into one red line (and a `hint:` line when edgekit.hints
    knows the failure) and a non-zero exit. A missing optional module is a user error too: it names the extra."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgekitError as exc:
            _print_error(str(exc), exc.hint or hint_for(str(exc)))
            raise typer.Exit(exc.exit_code) from None
        except ModuleNotFoundError as exc:
            extra = extra_for_module(exc.name)
            if extra is None:
                raise
            _print_error(f"{exc.name} is not installed (needed here by an optional feature)",
                         f"install the extra: pip install 'edgekit[{extra}]'")
            raise typer.Exit(1) from None

    return wrapper


def _print_error(message: str, hint: str | None) -> None:
    # escaped: messages quote user text and `edgekit[extra]`, which rich would read as markup
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        console.print(f"[yellow]hint:[/] {escape(hint)}", soft_wrap=True)


# The order of `edgekit --help`.
COMMANDS = {
    "env": env_command, "zoo": zoo_command, "export": export_command, "validate": validate_command,
    "inspect": inspect_command, "bench": bench_command, "embed": embed_command, "pack": pack_command,
    "debug": debug_command,
    "prune": prune_command, "quantize": quantize_command, "sweep": sweep_command, "tune": tune_command,
    "verify": verify_command, "testdata": testdata_command,
}
for _name, _func in COMMANDS.items():
    app.command(_name)(command(_func))


def main() -> None:
    app()
