"""Retrieval quality on the dev sets, with an ablation of each signal — no LLM in the loop.

    .venv/bin/python benchmarks/quality.py [--sets handwritten issues_payments docstring issues] [--json out.json]

Indexes (incrementally, cached under `.codesense/quality/`) the repositories each set needs, runs every
question once through `Retriever.rank_signals`, then fuses the same signal rankings under each ablation
(pure RRF, so variants cost nothing extra), aggregates chunks to files, and prints `file_hit@k` / `file_mrr`
per set and variant. The docstring and issue sets come from `benchmarks/devsets/` (built if missing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = str(Path(sys.executable).with_name("codesense"))
WORK = ROOT / ".codesense" / "quality"
DEVSETS = ROOT / ".codesense" / "devsets"
KS = (1, 3, 5, 10)

VARIANTS: dict[str, dict[str, float]] = {
    "hybrid (all signals)": {"dense": 1, "sparse": 1, "symbol": 1, "path": 1},
    "- dense": {"dense": 0, "sparse": 1, "symbol": 1, "path": 1},
    "- sparse": {"dense": 1, "sparse": 0, "symbol": 1, "path": 1},
    "- symbol": {"dense": 1, "sparse": 1, "symbol": 0, "path": 1},
    "- path": {"dense": 1, "sparse": 1, "symbol": 1, "path": 0},
    "dense only": {"dense": 1, "sparse": 0, "symbol": 0, "path": 0},
    "sparse only (chunk BM25)": {"dense": 0, "sparse": 1, "symbol": 0, "path": 0},
}


def project_config(name: str) -> Path:
    """The codesense.yaml indexing what a set needs (and nothing else)."""
    import yaml

    if name == "devsets":
        cfg_path = DEVSETS / "codesense.yaml"
        if not cfg_path.is_file():
            subprocess.run([sys.executable, str(ROOT / "benchmarks/devsets/build_docstring_set.py"), "--out", str(DEVSETS)], check=True)
            subprocess.run([sys.executable, str(ROOT / "benchmarks/devsets/build_issue_set.py"), "--out", str(DEVSETS)], check=True)
        return cfg_path
    home = WORK / name
    home.mkdir(parents=True, exist_ok=True)
    cfg = {
        "repositories": [
            {"id": "payments", "path": str(ROOT / "tests/fixtures/payments-service"), "web_url": "https://gitlab.example.com/team/payments"},
            {"id": "codesense", "path": str(ROOT)},
        ],
        "index": {"exclude": ["data/eval/**", "benchmarks/**", "tests/**", "docs/**"], "collection": "quality"},
        "qdrant": {"path": str(home / "qdrant")},
        "tracing": {"backend": "none"},
    }
    path = home / "codesense.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


SET_PROJECT = {"handwritten": "own", "issues_payments": "own", "docstring": "devsets", "issues": "devsets"}


def ensure_index(cfg_path: Path) -> None:
    env = dict(os.environ, CODESENSE_HOME=str(cfg_path.parent / ".codesense"))
    subprocess.run([BIN, "index", "--config", str(cfg_path), "--no-progress", "--json"], check=True, env=env, stdout=subprocess.DEVNULL)


def evaluate(cfg_path: Path, dataset_path: Path) -> dict:
    from codesense_ray.config import load_config
    from codesense_ray.evaluation.dataset import load_dataset
    from codesense_ray.evaluation.metrics import gold_ranks, hit_at_k, reciprocal_rank
    from codesense_ray.retrieval.fusion import fuse_rankings
    from codesense_ray.app.compose import build_retriever

    os.environ["CODESENSE_HOME"] = str(cfg_path.parent / ".codesense")
    cfg = load_config(cfg_path)
    retriever = build_retriever(cfg, long_lived=True)
    data = load_dataset(dataset_path)
    per_variant: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    started = time.perf_counter()
    for q in data.questions:
        rankings = retriever.rank_signals(q.question, [q.repo] if q.repo else [])
        ids = list(dict.fromkeys(pid for ids in rankings.values() for pid in ids))
        paths = {pid: p["path"] for pid, p in retriever.store.payloads(ids).items()}
        for name, weights in VARIANTS.items():
            fused = fuse_rankings(rankings, weights, cfg.search.rrf_k)
            files = list(dict.fromkeys(paths[pid] for pid, _ in fused if pid in paths))
            ranks = gold_ranks(files, q.gold_files)
            per_variant[name].append({**{f"file_hit@{k}": hit_at_k(ranks, k) for k in KS}, "file_mrr": reciprocal_rank(ranks)})
    seconds = time.perf_counter() - started
    retriever.store.primary.client.close() if hasattr(retriever.store, "primary") else retriever.store.client.close()
    out = {}
    for name, rows in per_variant.items():
        out[name] = {m: round(sum(r[m] for r in rows) / len(rows), 3) for m in rows[0]}
    return {"n": len(data.questions), "seconds_per_query": round(seconds / len(data.questions), 3), "variants": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SET_PROJECT))
    ap.add_argument("--json")
    args = ap.parse_args()
    results = {}
    indexed: set[str] = set()
    for name in args.sets:
        project = SET_PROJECT[name]
        cfg_path = project_config(project)
        if project not in indexed:
            ensure_index(cfg_path)
            indexed.add(project)
        results[name] = evaluate(cfg_path, ROOT / "data" / "eval" / f"{name}.jsonl")
        r = results[name]
        print(f"\n## {name} ({r['n']} questions, {r['seconds_per_query']}s/query)")
        print(f"| variant | {' | '.join(f'file_hit@{k}' for k in KS)} | file_mrr |")
        print("|---|" + "---|" * (len(KS) + 1))
        for variant, m in r["variants"].items():
            cells = " | ".join(f"{m['file_hit@' + str(k)]:.3f}" for k in KS)
            print(f"| {variant} | {cells} | {m['file_mrr']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
