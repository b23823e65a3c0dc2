"""The `codesense` command line: `main.py` builds the parser; one module per command group registers its
subcommands and turns domain errors into one-line messages and exit codes."""

from codesense_ray.app.cli.main import main  # noqa: F401  (console script entry point)
