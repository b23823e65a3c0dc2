"""Indexing speed on real code nobody here wrote: the sources of installed libraries.

Each measurement runs in its own process (one per code version) and reports, side by side:
  1. full index through the real pipeline (Ray Data → embedded Qdrant), end to end;
  2. bare `SentenceTransformer.encode` on exactly the texts the pipeline embedded (model already loaded)
     → `pipeline_vs_bare` (target ≥ 0.9);
  3. re-index with nothing changed, and after editing one file → `one_edit_ratio` = edit / full (target ≤ 5 %);
  4. peak RSS of the whole process tree (driver + Ray workers), and the load average around each phase.

`--baseline-ref REF` also measures the code of a git commit (exported with `git archive`) on the same corpus,
interleaved with this tree's code round by round (the order alternates), so both see the same machine load:
this machine is shared and noisy, so compare the ratios of one run, not seconds across runs.

    .venv/bin/python benchmarks/index_throughput.py [--corpus small|large | --libs httpx click ...]
        [--baseline-ref f63bed3] [--in-process] [--rounds 1] [--json out.json]

`--corpus large` (≥ 20k chunks: the five default libraries plus networkx and pygments) is where a user with a
real monorepo is; on two loaded cores one round takes most of an hour.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPORA = {
    "small": ["httpx", "starlette", "click", "jinja2", "fastapi"],  # ≈ 4.2k chunks
    "large": ["httpx", "starlette", "click", "jinja2", "fastapi", "networkx", "pygments"],  # ≥ 20k chunks
}
CHILD_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


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


def load1() -> float:
    return round(os.getloadavg()[0], 1)


def copy_libraries(libs: list[str], dest: Path) -> list[dict]:
    """Copy each installed library's sources into `dest/<name>` (one repository each, no bytecode or binaries)."""
    repos = []
    for name in libs:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"--libs: {name} is not an installed package")
        out = dest / name
        shutil.copytree(list(spec.submodule_search_locations)[0], out, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
        repos.append({"id": name, "path": str(out)})
    return repos


# --- one measurement (child process: `--measure WORKDIR`, codesense_ray from PYTHONPATH) -------------------
def measure(work: Path, bare_sample: int | None = None) -> dict:
    """Full index, unchanged re-index, one-file edit, bare encode, in this process, on the corpus in `work`.

    `bare_sample`: time bare encode on that many of the texts (a seeded uniform sample) and compare rates.
    """
    import ray

    from codesense_ray.app.compose import build_indexer
    from codesense_ray.config import load_config
    from codesense_ray.store.qdrant import IndexStore, open_client

    os.environ["CODESENSE_HOME"] = str(work / ".codesense")
    cfg = load_config(work / "codesense.yaml")
    store = IndexStore(open_client(cfg), cfg.index.collection, embedded=not cfg.qdrant.url)
    results: dict = {"code": str(Path(sys.modules["codesense_ray"].__file__).parents[1]), "cpus": os.cpu_count()}

    # 1. Full index, end to end (Ray start, scan, chunk, embed, write, check, swap).
    results["load_full"] = load1()
    with PeakRss() as rss:
        t0 = time.perf_counter()
        indexer = build_indexer(cfg, store)
        full = indexer.run()
        t_full = time.perf_counter() - t0
    totals = full.totals()
    n = totals["chunks_embedded"]
    results.update(chunks=n, files=totals["files_seen"], full_s=round(t_full, 2), pipeline_chunks_per_s=round(n / t_full, 1), peak_rss_mb=round(rss.peak / 2**20))

    # 2. Re-index unchanged (Ray already up: the same process keeps it).
    t0 = time.perf_counter()
    again = indexer.run()
    t_same = time.perf_counter() - t0
    assert again.totals()["chunks_embedded"] == 0
    results.update(unchanged_s=round(t_same, 2), unchanged_ratio=round(t_same / t_full, 4))

    # 3. Edit one file: append a function to the first module of the first library.
    first = json.loads((work / "repos.json").read_text())[0]
    target = sorted(Path(first["path"]).glob("*.py"))[0]
    target.write_text(target.read_text() + "\n\ndef benchmark_marker():\n    return 1\n")
    results["load_edit"] = load1()
    t0 = time.perf_counter()
    edit = indexer.run()
    t_edit = time.perf_counter() - t0
    results.update(one_edit_s=round(t_edit, 2), one_edit_ratio=round(t_edit / t_full, 4), one_edit_embedded=edit.totals()["chunks_embedded"])
    ray.shutdown()

    # 4. Bare encode on exactly the texts the pipeline embedded (model loaded outside the timing).
    texts = [f"{p.payload['header']}\n{p.payload['text']}" if p.payload.get("header") else p.payload["text"]
             for p in store.scroll(store.live_collection(), payload=["header", "text", "_meta"]) if not p.payload.get("_meta")]  # fmt: skip
    store.client.close()
    if bare_sample and bare_sample < len(texts):
        import random

        texts = random.Random(0).sample(texts, bare_sample)
    from sentence_transformers import SentenceTransformer

    from codesense_ray.index.embedding import read_model_info

    info = read_model_info(cfg.embedding.model)
    model = SentenceTransformer(info.path, device="cpu")
    model.max_seq_length = info.max_seq_length
    results["load_bare"] = load1()
    t0 = time.perf_counter()
    model.encode(texts, batch_size=cfg.embedding.batch_size, normalize_embeddings=True, show_progress_bar=False)
    t_bare = time.perf_counter() - t0
    bare_rate = len(texts) / t_bare
    results.update(bare_texts=len(texts), bare_s=round(t_bare, 2), bare_chunks_per_s=round(bare_rate, 1), pipeline_vs_bare=round((n / t_full) / bare_rate, 3), load_end=load1())
    return results


# --- the driver: corpus once, one child per (round, code version) -----------------------------------------
def export_commit(ref: str, dest: Path) -> Path:
    """The tree of commit `ref` of this repository, unpacked under `dest` (no worktree left behind)."""
    archive = dest / "baseline.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), ref], check=True)
    out = dest / f"baseline-{ref}"
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return out


def snapshot_tree(dest: Path) -> Path:
    """This tree's package as it is now (uncommitted edits included), so later edits never leak into a running
    measurement (its Ray workers import lazily)."""
    out = dest / "current"
    shutil.copytree(ROOT / "codesense_ray", out / "codesense_ray", ignore=shutil.ignore_patterns("__pycache__"))
    return out


def run_child(code: Path, corpus: Path, libs: list[str], scratch: Path, bare_sample: int | None, extra: dict | None = None) -> dict:
    """One measurement of the code at `code` in a fresh process, on a private copy of the corpus (`extra`: more
    config sections, e.g. the in-process runner)."""
    work = Path(tempfile.mkdtemp(prefix="measure-", dir=scratch))
    repos = [{"id": lib, "path": str(work / "corpus" / lib)} for lib in libs]
    shutil.copytree(corpus, work / "corpus")
    import yaml

    (work / "codesense.yaml").write_text(yaml.safe_dump({"repositories": repos, **(extra or {})}))
    (work / "repos.json").write_text(json.dumps(repos))
    env = {**os.environ, **CHILD_ENV, "PYTHONPATH": str(code)}
    sample = ["--bare-sample", str(bare_sample)] if bare_sample else []
    proc = subprocess.run([sys.executable, __file__, "--measure", str(work), *sample], cwd=code, env=env, capture_output=True, text=True)
    shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"measurement of {code} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(rows: list[dict]) -> None:
    cols = ("variant", "round", "chunks", "full_s", "one_edit_s", "one_edit_ratio", "unchanged_ratio", "pipeline_vs_bare", "bare_texts", "bare_chunks_per_s", "peak_rss_mb", "load_full", "load_edit", "load_bare")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--libs", nargs="+", help="installed packages to index, one repository each (overrides --corpus)")
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="small", help="small ≈ 4.2k chunks, large ≥ 20k chunks")
    ap.add_argument("--baseline-ref", help="also measure this git commit's code (e.g. f63bed3), interleaved with this tree's")
    ap.add_argument("--rounds", type=int, default=1, help="measurements per code version")
    ap.add_argument("--bare-sample", type=int, help="time bare encode on this many of the chunks only (rate compared; saves time on --corpus large)")
    ap.add_argument("--in-process", action="store_true", help="also measure this tree with every run in-process (index.in_process_max_files: all; no Ray)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--measure", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.bare_sample)))
        return

    libs = args.libs or CORPORA[args.corpus]
    scratch = Path(tempfile.mkdtemp(prefix="codesense-bench-"))
    try:
        copy_libraries(libs, scratch / "corpus")
        current = snapshot_tree(scratch)
        variants: dict[str, tuple[Path, dict | None]] = {"current": (current, None)}
        if args.in_process:
            variants["current, in-process"] = (current, {"index": {"in_process_max_files": 10**9}})
        if args.baseline_ref:
            variants[f"baseline {args.baseline_ref}"] = (export_commit(args.baseline_ref, scratch), None)
        rows = []
        for rnd in range(args.rounds):
            order = list(variants) if rnd % 2 == 0 else list(reversed(variants))
            for name in order:
                code, extra = variants[name]
                row = {"variant": name, "round": rnd, **run_child(code, scratch / "corpus", libs, scratch, args.bare_sample, extra)}
                print(json.dumps(row), flush=True)
                rows.append(row)
        summarize(rows)
        if args.json:
            Path(args.json).write_text(json.dumps({"libs": libs, "rows": rows}, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
