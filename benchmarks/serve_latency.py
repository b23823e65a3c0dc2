"""HTTP latency of `codesense serve` (extractive generator) under concurrent clients, beside in-process latency.

Builds (or reuses) an index of real library code (≥ 5,000 chunks by default), measures `Retriever.search` and
`RagAnswerer.ask` in-process, then starts `codesense serve` and fires the same queries at concurrency 1, 8 and
32 against `/v1/search` and `/v1/ask`. Prints p50/p95/p99, errors, and the Serve overhead ratio.

    .venv/bin/python benchmarks/serve_latency.py [--project DIR] [--requests 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = str(Path(sys.executable).with_name("codesense"))

LIBS = ["httpx", "starlette", "click", "jinja2", "fastapi", "pydantic", "yaml", "pathspec", "tqdm", "rich"]
QUERIES = [
    "how are redirects followed",
    "parse command line options with a default value",
    "render a template with autoescape",
    "validate a model field with a custom validator",
    "where is the request timeout configured",
    "websocket accept and receive text",
    "progress bar update rate",
    "dump a python object to yaml",
    "match a path against gitignore patterns",
    "print a table with colored columns",
    "HTTP basic authentication header",
    "CORS middleware allowed origins",
]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    idx = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[idx]


def ms(values: list[float]) -> dict:
    return {"p50": round(pct(values, 50) * 1000, 1), "p95": round(pct(values, 95) * 1000, 1), "p99": round(pct(values, 99) * 1000, 1)}


def build_project(work: Path) -> Path:
    import importlib

    import yaml

    repos = []
    for lib in LIBS:
        try:
            mod = importlib.import_module(lib)
        except ImportError:
            continue
        src = Path(mod.__file__).parent
        shutil.copytree(src, work / "corpus" / lib, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
        repos.append({"id": lib, "path": f"corpus/{lib}"})
    cfg = {"repositories": repos, "tracing": {"backend": "none"}}
    (work / "codesense.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, CODESENSE_HOME=str(work / ".codesense"))
    subprocess.run([BIN, "index", "--config", str(work / "codesense.yaml"), "--no-progress", "--json"], check=True, env=env, stdout=subprocess.DEVNULL)
    return work


def in_process(cfg_path: Path, n: int) -> tuple[dict, dict, int]:
    from codesense_ray.config import load_config
    from codesense_ray.app.compose import build_answerer, build_retriever

    cfg = load_config(cfg_path)
    retriever = build_retriever(cfg, long_lived=True)
    answerer = build_answerer(cfg, retriever)
    chunks = retriever.store.count_chunks(retriever.store.live_collection())
    for q in QUERIES:  # warm-up
        retriever.search(q, k=10)
    search, ask = [], []
    for i in range(n):
        q = QUERIES[i % len(QUERIES)]
        t0 = time.perf_counter()
        retriever.search(q, k=10)
        search.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        answerer.ask(q)
        ask.append(time.perf_counter() - t0)
    retriever.store.client.close()
    return ms(search), ms(ask), chunks


def load(base: str, path: str, field: str, concurrency: int, n: int) -> dict:
    import httpx

    client = httpx.Client(base_url=base, timeout=120, limits=httpx.Limits(max_connections=concurrency))
    errors = 0
    lat: list[float] = []

    def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            r = client.post(path, json={field: QUERIES[i % len(QUERIES)]})
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        lat.append(time.perf_counter() - t0)
        if not ok:
            errors += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    client.close()
    return {**ms(lat), "errors": errors, "rps": round(n / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", type=Path, help="an already indexed project directory (else one is built in a tmp dir)")
    ap.add_argument("--requests", type=int, default=200, help="requests per (endpoint, concurrency)")
    ap.add_argument("--json")
    args = ap.parse_args()

    work = args.project or build_project(Path(tempfile.mkdtemp(prefix="codesense-serve-bench-")))
    os.environ["CODESENSE_HOME"] = str(work / ".codesense")
    cfg_path = work / "codesense.yaml"
    s_in, a_in, chunks = in_process(cfg_path, min(args.requests, 100))
    print(f"index: {chunks} chunks; in-process search {s_in}, ask {a_in} (ms)")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(work / "serve.log", "w")
    proc = subprocess.Popen([BIN, "serve", "--config", str(cfg_path), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    results = {"chunks": chunks, "in_process": {"search": s_in, "ask": a_in}, "serve": {}}
    try:
        for path, field in (("/v1/search", "query"), ("/v1/ask", "question")):
            load(base, path, field, 4, 24)  # warm-up
            for c in (1, 8, 32):
                r = load(base, path, field, c, args.requests)
                results["serve"][f"{path} c={c}"] = r
                print(f"{path:<11} c={c:<3} p50 {r['p50']:>7} ms  p95 {r['p95']:>7} ms  p99 {r['p99']:>7} ms  {r['rps']:>6} req/s  errors {r['errors']}")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    overhead = results["serve"]["/v1/search c=1"]["p50"] / s_in["p50"]
    results["serve_overhead_search_p50"] = round(overhead, 2)
    print(f"Serve overhead (search p50, c=1 vs in-process): {overhead:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
