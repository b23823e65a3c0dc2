"""What every `codesense` command group shares: the `--config`/`--json` parent parser, argument types, output."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

Handler = Callable[[argparse.Namespace], int]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", default=None, help="path to codesense.yaml (default ./codesense.yaml, env CODESENSE_CONFIG)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else there")
    return p


def emit(args: argparse.Namespace, payload: Any, human: Callable[[], None]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        human()


def load_config_from_args(args: argparse.Namespace):
    from codesense_ray.config import load_config

    return load_config(args.config)


def open_store(cfg):
    from codesense_ray.app.compose import open_store

    return open_store(cfg)
