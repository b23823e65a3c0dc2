"""`codesense search` and `codesense ask`: ranked hits and verified answers, with links."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from codesense_ray.app.cli.common import emit, positive_int  # noqa: F401
from codesense_ray.app.cli.common import load_config_from_args as _load
from codesense_ray.app.cli.terminal import printable


def cmd_search(args: argparse.Namespace) -> int:
    from codesense_ray.app.compose import build_retriever

    from codesense_ray.retrieval.query_guard import check_query

    cfg = _load(args)
    query = check_query(args.query, cfg.search.max_query_chars)  # empty, too long, invalid Unicode: one line, exit 2
    retriever = build_retriever(cfg)
    started = time.perf_counter()
    hits = retriever.search(query, k=args.k, repo_ids=args.repo or ())
    elapsed = time.perf_counter() - started
    payload = {"query": query, "hits": [h.to_dict() for h in hits], "seconds": round(elapsed, 4)}

    def human() -> None:
        if not hits:
            print("no results")
        for i, h in enumerate(hits, 1):
            sym = f"  {h.symbol}" if h.symbol else ""
            # File names and symbols come from the repository: escape control characters before they reach a terminal.
            print(printable(f"{i:2d}. {h.repo}  {h.path}:{h.start_line}-{h.end_line}  ({h.score:.4f}){sym}"))
            print(printable(f"    {h.url}"))

    emit(args, payload, human)
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from codesense_ray.app.compose import build_answerer

    from codesense_ray.answering.answerer import check_question

    cfg = _load(args)
    check_question(args.question, cfg.answer.max_question_chars)  # before any model loads: empty, too long, invalid Unicode
    answerer = build_answerer(cfg)
    try:
        answer = answerer.ask(args.question, k=args.k, repo_ids=args.repo or ())
    finally:
        answerer.tracer.flush()
    payload = answer.to_dict()

    def human() -> None:
        print(printable(answer.answer, multiline=True))
        note = f"model {answer.model}, prompt {answer.prompt['name']} v{answer.prompt['version']}"
        bad = len(answer.citations["invalid"])
        if bad:
            note += f", {bad} unverifiable citation(s) removed"
        if answer.trace_id:
            note += f", trace {answer.trace_id}"
        print(f"\n({note}, {answer.latency_s:.2f}s)", file=sys.stderr)

    emit(args, payload, human)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common], help="ranked code search with links (dense + lexical + symbol, RRF)")
    p.add_argument("query")
    p.add_argument("--repo", action="append", metavar="ID", help="only this repository (repeatable)")
    p.add_argument("-k", type=positive_int, default=None, help="number of hits (default: search.k)")
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser(
        "ask",
        parents=[common],
        help="answer a question with verified links to files and lines",
        description="Retrieve, build a numbered context, generate (generator.backend), verify every citation, print the answer with permalinks.",
    )
    p.add_argument("question")
    p.add_argument("--repo", action="append", metavar="ID", help="only this repository (repeatable)")
    p.add_argument("-k", type=positive_int, default=None, help="chunks retrieved (default: answer.k)")
    p.set_defaults(handler=cmd_ask)
