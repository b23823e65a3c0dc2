"""`codesense` command line (adapter). Library first, CLI second: each command group's module (`index`, `query`,
`serve`, `evaluation`, `orchestration`, `prompts`, `interfaces`, `deployment`, `monitoring`, `training`) parses its
arguments, calls the library and prints; this file builds the parser from them and turns domain errors into
one-line messages with the exit codes of `codesense_ray.errors.ERROR_TABLE`.

Heavy modules (torch, ray) are imported inside the commands that need them, so `codesense --help` is fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from codesense_ray.app.cli.common import common_parser as _common
from codesense_ray.app.cli.terminal import printable
from codesense_ray.errors import CodesenseError
from codesense_ray.offline import apply_offline_defaults


# --- wiring ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="codesense",
        description="Self-hosted code intelligence: index repositories, search them, and answer questions with links to exact lines.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for register in _command_groups():
        register(sub, common)
    return parser


def _command_groups() -> list[Callable[[Any, argparse.ArgumentParser], None]]:
    """Every command group: each module under app/cli registers its subcommands (one module per group)."""
    from codesense_ray.app.cli.deployment import register as deployment
    from codesense_ray.app.cli.index import register as index
    from codesense_ray.app.cli.evaluation import register as evaluation
    from codesense_ray.app.cli.interfaces import register as interfaces
    from codesense_ray.app.cli.monitoring import register as monitoring
    from codesense_ray.app.cli.orchestration import register as orchestration
    from codesense_ray.app.cli.prompts import register as prompts
    from codesense_ray.app.cli.query import register as query
    from codesense_ray.app.cli.serve import register as serve
    from codesense_ray.app.cli.training import register as training

    return [index, query, serve, prompts, evaluation, orchestration, interfaces, deployment, monitoring, training]


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except CodesenseError as err:
        print(printable(f"codesense: error: {err}"), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("codesense: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
