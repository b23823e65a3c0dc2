"""Retrieval quality on the dev sets, with an ablation of each signal — no LLM in the loop.

    .venv/bin/python benchmarks/quality.py [--sets handwritten issues_payments docstring issues bugs] [--json out.json]
    .venv/bin/python benchmarks/quality.py --query-dtype float32     # the same with a float32 query encoder

Indexes (incrementally, cached under `.codesense/quality/`) the repositories each set needs, runs every
question once through `Retriever.rank_signals`, then fuses the same signal rankings under each ablation
(pure RRF, so variants cost nothing extra), aggregates chunks to files, and prints `file_hit@k` / `file_mrr`
per set and variant. The docstring, issue and bug sets come from `benchmarks/devsets/` (built if missing);
the bug set indexes whole repositories (sources, tests, docs) from `<devsets>/bugs.codesense.yaml`.
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
ALL = VARIANTS["hybrid (all signals)"]
# File-level levers on the hybrid fusion: (path signal order, aggregation decay, role prior). The plain
# variants above use today's path order, the best chunk alone and no prior; `rank_files` adds the role prior.
FILE_VARIANTS: dict[str, tuple[str, float, bool]] = {
    "hybrid, legacy path order (by suffix, then line)": ("legacy", 0.0, False),
    "hybrid, frame path order (innermost source frame, its line)": ("frames", 0.0, False),
    "hybrid + role prior (tests x0.5, docs x0.6) (= rank_files)": ("legacy", 0.0, True),
    "hybrid + file aggregation (decay 0.3)": ("legacy", 0.3, False),
    "frame path order + prior + aggregation": ("frames", 0.3, True),
    "hybrid + role prior + aggregation": ("legacy", 0.3, True),
    "frame path order + role prior": ("frames", 0.0, True),
}
# Passage length of long queries (`search.passage_chars`), each fused with all signals + the role prior.
PASSAGE_CHARS = {"passages <= 300 chars (+ prior)": 300, "passages <= 600 chars (+ prior)": 600, "one passage, whole query (+ prior)": 100_000}


def frame_path_matches(retriever, query: str, repo_ids) -> list[str]:
    """The path signal ordered by traceback frames (innermost source frame first, its line's chunk first; for the ablation)."""
    from codesense_ray.retrieval.file_ranking import order_path_matches, path_mentions
    from codesense_ray.index.lexical import path_suffixes

    mentions = path_mentions(query)
    wanted = {suffix for m in mentions for suffix in path_suffixes(m.path)}
    if not wanted:
        return []
    matches = retriever.store.keyword_matches("path_tails", sorted(wanted), repo_ids, ["path_tails", "start_line", "end_line"], 256)
    return order_path_matches(mentions, matches)[: retriever.cfg.candidates]


def project_config(name: str) -> Path:
    """The codesense.yaml indexing what a set needs (and nothing else)."""
    import yaml

    if name == "devsets":
        cfg_path = DEVSETS / "codesense.yaml"
        if not cfg_path.is_file():
            subprocess.run([sys.executable, str(ROOT / "benchmarks/devsets/build_docstring_set.py"), "--out", str(DEVSETS)], check=True)
            subprocess.run([sys.executable, str(ROOT / "benchmarks/devsets/build_issue_set.py"), "--out", str(DEVSETS)], check=True)
        return cfg_path
    if name == "bugs":
        cfg_path = DEVSETS / "bugs.codesense.yaml"
        if not cfg_path.is_file():
            subprocess.run([sys.executable, str(ROOT / "benchmarks/devsets/build_bug_set.py"), "--out", str(DEVSETS)], check=True)
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


SET_PROJECT = {"handwritten": "own", "issues_payments": "own", "docstring": "devsets", "issues": "devsets", "bugs": "bugs"}


def with_embedding_model(cfg_path: Path, model: str, tag: str) -> Path:
    """A copy of a set's config that embeds with `model` into its own Qdrant directory (the embedding lever)."""
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())
    cfg.setdefault("embedding", {})["model"] = model
    cfg.setdefault("qdrant", {})["path"] = str(cfg_path.parent / f"{cfg_path.stem}-{tag}-qdrant")
    out = cfg_path.with_name(f"{cfg_path.stem}-{tag}.yaml")
    out.write_text(yaml.safe_dump(cfg))
    return out


def ensure_index(cfg_path: Path) -> None:
    env = dict(os.environ, CODESENSE_HOME=str(cfg_path.parent / ".codesense"))
    subprocess.run([BIN, "index", "--config", str(cfg_path), "--no-progress", "--json"], check=True, env=env, stdout=subprocess.DEVNULL)


def evaluate(cfg_path: Path, dataset_path: Path, query_dtype: str | None = None) -> dict:
    from codesense_ray.config import load_config
    from codesense_ray.evaluation.dataset import load_dataset
    from codesense_ray.evaluation.metrics import gold_ranks, hit_at_k, reciprocal_rank
    from codesense_ray.retrieval.file_ranking import ROLE_PRIOR, aggregate_files
    from codesense_ray.retrieval.fusion import fuse_rankings
    from codesense_ray.app.compose import build_retriever

    os.environ["CODESENSE_HOME"] = str(cfg_path.parent / ".codesense")
    cfg = load_config(cfg_path)
    if query_dtype:
        cfg.embedding.query_dtype = query_dtype
    retriever = build_retriever(cfg, long_lived=True)
    data = load_dataset(dataset_path)
    per_variant: dict[str, list[dict]] = {v: [] for v in [*VARIANTS, *FILE_VARIANTS, *PASSAGE_CHARS]}
    default_cfg = retriever.cfg
    started = time.perf_counter()
    indexed = set(retriever.repositories())
    questions = [q for q in data.questions if not q.repo or q.repo in indexed]  # a config may index a subset (--bugs-config)
    for q in questions:
        rankings = retriever.rank_signals(q.question, [q.repo] if q.repo else [])
        legacy = rankings  # today's path signal: longest suffix, then line
        framed = dict(rankings)
        frame_path = frame_path_matches(retriever, q.question, [q.repo] if q.repo else [])
        framed.pop("path", None)
        if frame_path:
            framed["path"] = frame_path
        passaged = {}
        for name, chars in PASSAGE_CHARS.items():
            retriever.cfg = default_cfg.model_copy(update={"passage_chars": chars})
            vectors = retriever.embedder.embed_queries(retriever.passages_to_embed(q.question))
            passaged[name] = {**rankings, "dense": retriever.dense_matches(vectors, [q.repo] if q.repo else [], default_cfg.candidates)}
        retriever.cfg = default_cfg
        ids = list(dict.fromkeys(pid for r in (rankings, framed, *passaged.values()) for ids in r.values() for pid in ids))
        paths = {pid: p["path"] for pid, p in retriever.store.payloads(ids).items()}

        def score(files: list[str]) -> dict:
            ranks = gold_ranks(files, q.gold_files)
            return {**{f"file_hit@{k}": hit_at_k(ranks, k) for k in KS}, "file_mrr": reciprocal_rank(ranks)}

        for name, weights in VARIANTS.items():
            fused = fuse_rankings(legacy, weights, cfg.search.rrf_k)
            per_variant[name].append(score(list(dict.fromkeys(paths[pid] for pid, _ in fused if pid in paths))))
        for name, (order, decay, prior) in FILE_VARIANTS.items():
            fused = fuse_rankings(legacy if order == "legacy" else framed, ALL, cfg.search.rrf_k)
            ranked = aggregate_files(fused, paths, query=q.question, decay=decay, prior=ROLE_PRIOR if prior else None)
            per_variant[name].append(score([path for path, _ in ranked]))
        for name, passage_rankings in passaged.items():
            ranked = aggregate_files(fuse_rankings(passage_rankings, ALL, cfg.search.rrf_k), paths, query=q.question, decay=0.0, prior=ROLE_PRIOR)
            per_variant[name].append(score([path for path, _ in ranked]))
    seconds = time.perf_counter() - started
    retriever.store.primary.client.close() if hasattr(retriever.store, "primary") else retriever.store.client.close()
    out = {}
    for name, rows in per_variant.items():
        out[name] = {m: round(sum(r[m] for r in rows) / len(rows), 3) for m in rows[0]}
    return {"n": len(questions), "skipped_unindexed": len(data.questions) - len(questions), "seconds_per_query": round(seconds / len(questions), 3), "variants": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(SET_PROJECT))
    ap.add_argument("--json")
    ap.add_argument("--bugs-config", type=Path, help="index/evaluate the bug set with this config (e.g. a subset of its repositories)")
    ap.add_argument("--embedding-model", help="index and evaluate every set with this `embedding.model` (e.g. a fine-tuned directory) in separate indexes")
    ap.add_argument("--query-dtype", choices=["auto", "float32", "bfloat16", "float16"], help="evaluate with this `embedding.query_dtype` (default: the config's)")
    ap.add_argument("--tag", default="alt", help="suffix of the separate configs/indexes of --embedding-model")
    args = ap.parse_args()
    results = {}
    indexed: set[str] = set()
    for name in args.sets:
        project = SET_PROJECT[name]
        cfg_path = args.bugs_config.resolve() if project == "bugs" and args.bugs_config else project_config(project)
        if args.embedding_model:
            cfg_path = with_embedding_model(cfg_path, args.embedding_model, args.tag)
        if project not in indexed:
            ensure_index(cfg_path)
            indexed.add(project)
        results[name] = evaluate(cfg_path, ROOT / "data" / "eval" / f"{name}.jsonl", args.query_dtype)
        r = results[name]
        print(f"\n## {name} ({r['n']} questions, {r['seconds_per_query']}s/query)")
        print(f"| variant | {' | '.join(f'file_hit@{k}' for k in KS)} | file_mrr |")
        print("|---|" + "---|" * (len(KS) + 1))
        for variant, m in r["variants"].items():
            if variant == next(iter(FILE_VARIANTS)):
                print("| *file-level levers (all signals)* |" + " |" * (len(KS) + 1))
            cells = " | ".join(f"{m['file_hit@' + str(k)]:.3f}" for k in KS)
            print(f"| {variant} | {cells} | {m['file_mrr']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
