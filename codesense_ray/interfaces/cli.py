"""`codesense explain` and `codesense mcp` (adapters). Wired into the main parser with `register(sub, common)`."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="the ML concepts codesense uses, each through a DevOps analogy (same text as docs/)",
        description="Without CONCEPT: list every concept with its one-line analogy. With CONCEPT (a key such as `rrf`, "
        "`embeddings`, `alias-swap`, or a unique word of one): print its section of the docs.",
    )
    p.add_argument("concept", nargs="?", metavar="CONCEPT", help="the concept to explain; omit to list them all")
    p.set_defaults(handler=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    from codesense_ray.cli import emit
    from codesense_ray.interfaces.explain import find_concept, load_concepts, render_concept, render_list

    concepts = load_concepts()
    if args.concept is None:
        emit(args, {"concepts": [c.to_dict() for c in concepts]}, lambda: print(render_list(concepts)))
        return 0
    concept = find_concept(concepts, args.concept)
    emit(args, concept.to_dict(), lambda: print(render_concept(concept)))
    return 0
