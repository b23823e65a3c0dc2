"""`codesense index [--gate ...] [--prune]`, `codesense index rollback [--to VERSION]` and `codesense status`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codesense_ray.app.cli.common import emit
from codesense_ray.app.cli.common import load_config_from_args as _load, open_store as _open_store  # noqa: F401
from codesense_ray.app.cli.terminal import printable
from codesense_ray.errors import CodesenseError
from datetime import datetime, timezone


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


def register(sub: Any, common: argparse.ArgumentParser) -> None:
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

    p = sub.add_parser("status", parents=[common], help="per repository: indexed ref, chunks, live collection, when indexed")
    p.set_defaults(handler=cmd_status)
