"""`python -m edgekit.cli ...`: the same as the `edgekit` console script."""

from edgekit.cli.app import main

main()
