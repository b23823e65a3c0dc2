"""Indexing speed on real code nobody here wrote: the sources of a few installed libraries.

Measures, side by side in one run (this machine is shared and noisy, so ratios matter, not seconds):
  1. full index through the real pipeline (Ray Data → embedded Qdrant), end to end;
  2. bare `SentenceTransformer.encode` on exactly the texts the pipeline embedded (model already loaded);
  3. re-index with nothing changed, and after editing one file;
  4. peak RSS of the whole process tree (driver + Ray workers).

    .venv/bin/python benchmarks/index_throughput.py [--libs httpx starlette click jinja2 fastapi] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class PeakRss:
    """Samples the RSS of this process and all its descendants (Ray workers included)."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                for p in [self.proc, *self.proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def copy_library(name: str, dest: Path) -> Path:
    mod = importlib.import_module(name)
    src = Path(mod.__file__).parent
    out = dest / name
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libs", nargs="+", default=["httpx", "starlette", "click", "jinja2", "fastapi"])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    import ray
    import yaml

    from codesense_ray.config import load_config
    from codesense_ray.app.compose import build_indexer
    from codesense_ray.store.qdrant import IndexStore, open_client

    work = Path(tempfile.mkdtemp(prefix="codesense-bench-"))
    os.environ["CODESENSE_HOME"] = str(work / ".codesense")
    corpus = work / "corpus"
    repos = [{"id": lib, "path": str(copy_library(lib, corpus))} for lib in args.libs]
    (work / "codesense.yaml").write_text(yaml.safe_dump({"repositories": repos}))
    cfg = load_config(work / "codesense.yaml")
    store = IndexStore(open_client(cfg), cfg.index.collection, embedded=not cfg.qdrant.url)
    results: dict = {"libs": args.libs, "cpus": os.cpu_count()}

    # 1. Full index, end to end (Ray start, scan, chunk, embed, write, check, swap).
    with PeakRss() as rss:
        t0 = time.perf_counter()
        indexer = build_indexer(cfg, store)
        full = indexer.run()
        t_full = time.perf_counter() - t0
    totals = full.totals()
    n = totals["chunks_embedded"]
    results.update(chunks=n, files=totals["files_seen"], full_s=round(t_full, 2), pipeline_chunks_per_s=round(n / t_full, 1), peak_rss_mb=round(rss.peak / 2**20))
    print(f"full index: {totals['files_seen']} files, {n} chunks in {t_full:.1f}s = {n / t_full:.1f} chunks/s; peak RSS {rss.peak / 2**20:.0f} MB")

    # 2. Re-index unchanged (Ray already up: the same process keeps it).
    t0 = time.perf_counter()
    again = indexer.run()
    t_same = time.perf_counter() - t0
    assert again.totals()["chunks_embedded"] == 0
    results.update(unchanged_s=round(t_same, 2), unchanged_ratio=round(t_same / t_full, 4))
    print(f"re-index unchanged: {t_same:.2f}s = {100 * t_same / t_full:.1f}% of full")

    # 3. Edit one file.
    target = next(corpus.glob(f"{args.libs[0]}/*.py"))
    target.write_text(target.read_text() + "\n\ndef benchmark_marker():\n    return 1\n")
    t0 = time.perf_counter()
    edit = indexer.run()
    t_edit = time.perf_counter() - t0
    results.update(one_edit_s=round(t_edit, 2), one_edit_ratio=round(t_edit / t_full, 4), one_edit_embedded=edit.totals()["chunks_embedded"])
    print(f"re-index after one edit: {t_edit:.2f}s = {100 * t_edit / t_full:.1f}% of full ({edit.totals()['chunks_embedded']} chunks embedded)")
    ray.shutdown()

    # 4. Bare encode on exactly the texts the pipeline embedded (model loaded outside the timing).
    live = store.live_collection()
    texts = []
    for p in store.scroll(live, payload=["header", "text", "_meta"]):
        if not p.payload.get("_meta"):
            h, t = p.payload.get("header") or "", p.payload["text"]
            texts.append(f"{h}\n{t}" if h else t)
    from sentence_transformers import SentenceTransformer

    from codesense_ray.index.embedding import read_model_info

    info = read_model_info(cfg.embedding.model)
    model = SentenceTransformer(info.path, device="cpu")
    model.max_seq_length = info.max_seq_length
    t0 = time.perf_counter()
    model.encode(texts, batch_size=cfg.embedding.batch_size, normalize_embeddings=True, show_progress_bar=False)
    t_bare = time.perf_counter() - t0
    bare_rate = len(texts) / t_bare
    results.update(bare_s=round(t_bare, 2), bare_chunks_per_s=round(bare_rate, 1), pipeline_vs_bare=round((n / t_full) / bare_rate, 3))
    print(f"bare encode: {len(texts)} chunks in {t_bare:.1f}s = {bare_rate:.1f} chunks/s")
    print(f"pipeline / bare throughput: {(n / t_full) / bare_rate:.2f}x (target >= 0.9)")
    store.client.close()
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
