"""`codesense` command line (adapter). Library first, CLI second: this file only parses arguments, calls
the library, prints, and turns domain errors into one-line messages with exit codes.

Heavy modules (torch, ray) are imported inside the commands that need them, so `codesense --help` is fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable

from codesense_ray.errors import CodesenseError
from codesense_ray.offline import apply_offline_defaults
from codesense_ray.app.cli.terminal import printable


from codesense_ray.app.cli.common import Handler, common_parser as _common, emit, positive_int  # noqa: F401
from codesense_ray.app.cli.common import load_config_from_args as _load, open_store as _open_store


# --- index ----------------------------------------------------------------------------------------
def cmd_index(args: argparse.Namespace) -> int:
    from functools import partial

    from tqdm import tqdm

    from codesense_ray.app.compose import build_index_gate, build_indexer

    if args.action == "rollback":
        return cmd_index_rollback(args)
    if args.to:
        raise CodesenseError("--to belongs to `codesense index rollback`")
    cfg = _load(args)
    store = _open_store(cfg)
    gate = build_index_gate(cfg, store, args.gate, args.dataset) if args.gate else None
    if args.dataset and not args.gate:
        raise CodesenseError("--dataset is the evaluation set of --gate; pass --gate gates.yaml too")
    indexer = build_indexer(cfg, store)
    bar = tqdm(total=0, unit="file", desc="indexing", file=sys.stderr, disable=args.no_progress, leave=False)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        summary = indexer.run(args.repo or (), full=args.full, prune=args.prune, on_progress=on_progress, gate=gate)
    finally:
        bar.close()
        _shutdown_ray()
    payload = summary.to_dict()
    emit(args, payload, partial(_print_index_summary, payload))
    if summary.gate_failed:
        failures = "; ".join(f["message"] for f in payload["gate"]["failures"])
        print(f"codesense: error: quality gate failed ({failures}); alias {summary.alias} unchanged on {summary.collection or 'none'}, "
              f"candidate kept for inspection: {summary.candidate}", file=sys.stderr)  # fmt: skip
        return 1
    return 0 if summary.ok else 1


def cmd_index_rollback(args: argparse.Namespace) -> int:
    """`codesense index rollback [--to VERSION]`: the alias back to a retained version, atomically."""
    from codesense_ray.index.indexer import rollback

    if args.repo or args.full or args.gate or args.dataset:
        raise CodesenseError("`codesense index rollback` takes only --to VERSION")
    result = rollback(_open_store(_load(args)), args.to)
    emit(args, result, lambda: print(f"index {result['alias']} → {result['collection']} (was: {result['previous'] or 'none'})"))
    return 0


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _print_index_summary(s: dict) -> None:
    t = s["totals"]
    if s["collection"] is None:
        print(f"index {s['alias']}: nothing promoted, every repository failed (no index yet) in {s['seconds']:.1f}s")
    else:
        print(f"index {s['alias']} → {s['collection']} (previous: {s['previous'] or 'none'}) in {s['seconds']:.1f}s")
    if s.get("gate"):
        g = s["gate"]
        verdict = "passed" if g["passed"] else f"FAILED, candidate {s['candidate']} kept, alias not moved"
        print(f"  gate on {g['dataset']}: {verdict}")
    print(
        f"  files: {t['files_seen']} seen, {t['files_new']} new, {t['files_changed']} changed, {t['files_deleted']} deleted, {t['files_skipped']} skipped"
    )
    print(f"  chunks: {t['chunks_embedded']} embedded, {t['chunks_reused']} reused, {t['chunks_deleted']} deleted, {t['chunks_total']} total")
    if t.get("secrets_redacted"):
        print(f"  secrets redacted: {t['secrets_redacted']} (in chunks embedded by this run)")
    for r in s["repos"]:
        skipped = ", ".join(f"{k}={v}" for k, v in sorted(r["skipped"].items())) or "none"
        line = f"  - {r['repo_id']}: {r['status']}"
        if r["error"]:
            line += f": {r['error']}"
        else:
            line += f", {r['chunks_total']} chunks ({r['chunks_embedded']} embedded, {r['chunks_reused']} reused); skipped: {skipped}"
        print(printable(line))
    if s["removed_repos"]:
        print(f"  removed repositories no longer in config: {', '.join(s['removed_repos'])}")
    if s.get("stale_repos"):
        print(f"  kept repositories no longer in config (remove them with --prune): {', '.join(s['stale_repos'])}")
    if s.get("partial_versions_removed"):
        print(f"  removed unfinished versions of interrupted runs: {', '.join(s['partial_versions_removed'])}")
    if s["dropped_versions"]:
        print(f"  dropped old versions: {', '.join(s['dropped_versions'])}")


# --- search ---------------------------------------------------------------------------------------
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


# --- ask ------------------------------------------------------------------------------------------
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


# --- serve ----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    cfg = _load(args)
    if args.port:
        cfg.serve.port = args.port
    if args.host:
        cfg.serve.host = args.host
    from ray import serve

    from codesense_ray.index.pipeline import init_ray
    from codesense_ray.app.serve.app import build_app

    app = build_app(cfg)  # validates settings (replicas, auth token env) before anything starts
    init_ray(cfg)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port, "request_timeout_s": cfg.serve.request_timeout_s})
        serve.run(app, name="codesense", route_prefix="/", blocking=False)
        print(f"codesense: serving on http://{cfg.serve.host}:{cfg.serve.port} (POST /v1/ask, /v1/search; GET /healthz, /metrics)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        _shutdown_ray()
    return 0


# --- status ---------------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    store = _open_store(cfg)
    live = store.live_collection()
    if live is None:
        from codesense_ray.errors import IndexNotBuilt

        raise IndexNotBuilt()
    metas = store.repo_metas(live)
    repos = []
    for rid, meta in sorted(metas.items()):
        repos.append(
            {
                "repo": rid,
                "ref": meta.get("ref"),
                "chunks": store.count_chunks(live, rid),
                "files": meta.get("files"),
                "model": meta.get("model"),
                "indexed_at": datetime.fromtimestamp(meta["indexed_at"], timezone.utc).isoformat(timespec="seconds"),
            }
        )
    payload = {"alias": store.alias, "collection": live, "versions": store.versions(), "repos": repos}

    def human() -> None:
        print(f"alias {store.alias} → {live}  (versions kept: {len(payload['versions'])})")
        for r in repos:
            print(printable(f"  {r['repo']:<24} ref {str(r['ref'] or '-')[:12]:<12}  {r['chunks']:>7} chunks  {r['files'] or 0:>6} files  indexed {r['indexed_at']}"))

    emit(args, payload, human)
    return 0


# --- wiring ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="codesense",
        description="Self-hosted code intelligence: index repositories, search them, and answer questions with links to exact lines.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "index",
        parents=[common],
        help="index the configured repositories (incremental; blue/green alias swap)",
        description="Chunk, embed and store the configured repositories. Incremental: only new and changed files are embedded; "
        "a new index version is filled and checked, then the alias moves atomically (the old version keeps serving until then).",
    )
    p.add_argument("action", nargs="?", choices=["rollback"], help="`rollback`: move the alias back to a retained version (see --to)")
    p.add_argument("--repo", action="append", metavar="ID", help="only this repository (repeatable); others are carried over")
    p.add_argument("--full", action="store_true", help="re-embed everything instead of reusing unchanged chunks")
    p.add_argument("--prune", action="store_true", help="remove repositories that are in the index but no longer in config (kept otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--gate", metavar="GATES.yaml", help="evaluate the candidate version before the alias moves; failing → exit 1, alias unchanged, candidate kept"
    )
    p.add_argument("--dataset", metavar="FILE.jsonl", help="evaluation set of --gate (default: evaluation.dataset)")
    p.add_argument("--to", metavar="VERSION", help="rollback: the retained version to serve (default: the newest older than live)")
    p.set_defaults(handler=cmd_index)

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

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the Ray Serve HTTP app (POST /v1/ask, /v1/search; GET /healthz, /metrics)",
        description="Start a local Ray, deploy ingress → retriever → generator, and serve until Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: serve.port, 8000)")
    p.add_argument("--host", default=None, help="listen address (default: serve.host, 127.0.0.1)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("status", parents=[common], help="per repository: indexed ref, chunks, live collection, when indexed")
    p.set_defaults(handler=cmd_status)

    for register in _extra_commands():
        register(sub, common)
    return parser


def _extra_commands() -> list[Callable[[Any, argparse.ArgumentParser], None]]:
    """Command groups contributed by other modules (answering, evaluation, orchestration)."""
    from codesense_ray.app.cli.deployment import register as deployment
    from codesense_ray.app.cli.evaluation import register as evaluation
    from codesense_ray.app.cli.interfaces import register as interfaces
    from codesense_ray.app.cli.monitoring import register as monitoring
    from codesense_ray.app.cli.orchestration import register as orchestration
    from codesense_ray.app.cli.prompts import register as prompts
    from codesense_ray.app.cli.training import register as training

    return [prompts, evaluation, orchestration, interfaces, deployment, monitoring, training]


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
