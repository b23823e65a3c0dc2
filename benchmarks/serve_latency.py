"""`codesense serve` under concurrent clients (extractive generator), beside the same calls in-process.

Builds (or reuses) an index of real library code (≥ 5,000 chunks), measures `Retriever.search`, `RagAnswerer.ask`
and the chat-completions path in-process (one after another), then starts `codesense serve` and drives
`/v1/search`, `/v1/ask` and `/v1/chat/completions` at concurrency 1, 8 and 32 from an asyncio load generator on
the same machine. Every request carries a distinct query (the query cache never hides the model); one extra cell
repeats 12 queries to show the cache. Prints p50/p95/p99, req/s and errors per cell, and the load average.

BEFORE/AFTER in one run: `--baseline-ref REF` extracts REF's tree (`git archive`) and serves it as well, from a copy
of the same index; both servers are up at once and the cells alternate between them (after, before, after, ...),
so background load hits both alike.

    .venv/bin/python benchmarks/serve_latency.py --baseline-ref f63bed3      # full: ~8 minutes
    .venv/bin/python benchmarks/serve_latency.py --quick                      # ~2 minutes, this code only
    .venv/bin/python benchmarks/serve_latency.py --project DIR --json out.json  # reuse an indexed project
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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
CONCURRENCY = (1, 8, 32)


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str

    def body(self, text: str) -> dict:
        if self.name == "search":
            return {"query": text}
        if self.name == "ask":
            return {"question": text}
        return {"model": "codesense", "messages": [{"role": "user", "content": text}]}


ENDPOINTS = (Endpoint("search", "/v1/search"), Endpoint("ask", "/v1/ask"), Endpoint("chat", "/v1/chat/completions"))


class QueryStream:
    """Distinct query texts in a fixed order: request i of a cell gets the same text on every server."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> list[str]:
        start, self.next = self.next, self.next + n
        return [f"{QUERIES[i % len(QUERIES)]} (case {i})" for i in range(start, start + n)]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))]


def summary(latencies: list[float], wall: float, errors: int) -> dict:
    ms = {f"p{p}": round(pct(latencies, p) * 1000, 1) for p in (50, 95, 99)}
    return ms | {"rps": round(len(latencies) / wall, 1) if wall else 0.0, "errors": errors, "n": len(latencies)}


def loadavg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# --- the index ------------------------------------------------------------------------------------
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


# --- in-process -----------------------------------------------------------------------------------
def in_process(cfg_path: Path, n: int, stream: QueryStream) -> tuple[dict, int]:
    """The same three calls without HTTP or Ray, one after another (what one process does on its own)."""
    from codesense_ray.app.compose import build_answerer, build_retriever
    from codesense_ray.app.serve.chat import ChatCompletionRequest, completion_body, plan_chat, scoped_answerer
    from codesense_ray.config import load_config

    cfg = load_config(cfg_path)
    retriever = build_retriever(cfg, long_lived=True)
    answerer = build_answerer(cfg, retriever)
    chunks = retriever.store.count_chunks(retriever.store.live_collection())

    def chat(text: str) -> dict:
        plan = plan_chat(ChatCompletionRequest(**ENDPOINTS[2].body(text)), cfg.chat)
        answer = scoped_answerer(answerer, plan.context).ask(plan.question, k=plan.k, repo_ids=plan.repo_ids)
        return completion_body(answer.to_dict(), plan.model, 0, "bench")

    calls = {"search": lambda q: retriever.search(q, k=10), "ask": answerer.ask, "chat": chat}
    for q in QUERIES:  # warm-up: model, replica, caches of the interpreter
        answerer.ask(q)
    results = {}
    for name, call in calls.items():
        latencies = []
        started = time.perf_counter()
        for q in stream.take(n):
            t0 = time.perf_counter()
            call(q)
            latencies.append(time.perf_counter() - t0)
        results[name] = summary(latencies, time.perf_counter() - started, 0)
    retriever.store.client.close()
    return results, chunks


# --- servers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_checkout(ref: str, work: Path) -> Path:
    """The tree of REF (`git archive`, so no worktree is registered in the repository), reused when present."""
    where = work / f"baseline-{ref}"
    if not where.exists():
        where.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def copy_home(work: Path, name: str) -> Path:
    """A fresh private copy of the index: embedded Qdrant admits one process, and two servers read the same data."""
    home = work / f".codesense-{name}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(work / ".codesense", home, ignore=shutil.ignore_patterns("*.lock", ".lock"))
    return home


@contextlib.contextmanager
def serving(code: Path, home: Path, cfg_path: Path, log_path: Path):
    """`codesense serve` importing `code` (a checkout of this repository); yields the base URL once healthy."""
    import httpx

    port = free_port()
    env = dict(os.environ, CODESENSE_HOME=str(home), PYTHONPATH=str(code))
    env.pop("RAY_ADDRESS", None)
    with open(log_path, "w") as log:
        # cwd = the checkout: Ray puts the driver's working directory first on its workers' sys.path, so from
        # another directory the replicas would import that directory's code, whatever PYTHONPATH says.
        proc = subprocess.Popen([BIN, "serve", "--config", str(cfg_path), "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(code))
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 400
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                        break
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"codesense serve ({code}) did not become healthy; see {log_path}")
                time.sleep(1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- load -----------------------------------------------------------------------------------------
async def drive(base: str, endpoint: Endpoint, texts: list[str], concurrency: int) -> dict:
    """Send `texts` to `endpoint` keeping `concurrency` requests in flight; latency, req/s and errors."""
    import httpx

    latencies: list[float] = []
    errors = 0
    pending = iter(texts)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for text in pending:
                t0 = time.perf_counter()
                try:
                    ok = (await client.post(endpoint.path, json=endpoint.body(text))).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return summary(latencies, wall, errors)


def cell_requests(concurrency: int, per_cell: int) -> int:
    # Enough requests that every client sends several (c=32 needs more than c=1 to reach a steady state).
    return max(per_cell, concurrency * 6) if concurrency > 1 else max(10, per_cell // 3)


def run_cells(servers: dict[str, str], stream: QueryStream, per_cell: int, rounds: int) -> dict:
    """Every (endpoint, concurrency) cell on every server, alternating servers cell by cell; `rounds` passes."""
    results: dict[str, dict[str, list[dict]]] = {name: {} for name in servers}
    for name, base in servers.items():  # warm-up: first requests load the in-memory replica and JIT paths
        for endpoint in ENDPOINTS:
            asyncio.run(drive(base, endpoint, QUERIES, 4))
    for r in range(rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        for endpoint in ENDPOINTS:
            for c in CONCURRENCY:
                texts = stream.take(cell_requests(c, per_cell))
                for name in order:
                    res = asyncio.run(drive(servers[name], endpoint, texts, c)) | {"load": loadavg()}
                    results[name].setdefault(f"{endpoint.name} c={c}", []).append(res)
                    print(f"  [{name:<6}] {endpoint.path:<21} c={c:<3} p50 {res['p50']:>7} p95 {res['p95']:>7} p99 {res['p99']:>7} ms "
                          f"{res['rps']:>6} req/s  errors {res['errors']}  load {res['load']}", flush=True)
    for name, base in servers.items():
        texts = QUERIES * max(1, per_cell // len(QUERIES))
        res = asyncio.run(drive(base, ENDPOINTS[0], texts, 8)) | {"load": loadavg()}
        results[name]["search c=8 repeated"] = [res]
        print(f"  [{name:<6}] /v1/search (12 queries repeated) c=8 p50 {res['p50']} p95 {res['p95']} ms {res['rps']} req/s", flush=True)
    return {name: {cell: merge(runs) for cell, runs in cells.items()} for name, cells in results.items()}


def merge(runs: list[dict]) -> dict:
    """Rounds of one cell: the median round by req/s (a round hit by a load spike does not decide)."""
    runs = sorted(runs, key=lambda r: r["rps"])
    return runs[len(runs) // 2] | {"rounds": len(runs)}


# --- report ---------------------------------------------------------------------------------------
def report(results: dict) -> None:
    inproc = results["in_process"]
    print(f"\nindex: {results['chunks']} chunks; load average before {results['load_before']}, after {results['load_after']}")
    print("| endpoint | c | variant | p50 ms | p95 ms | p99 ms | req/s | errors | Serve / in-process req/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for endpoint in ENDPOINTS:
        ip = inproc[endpoint.name]
        print(f"| {endpoint.name} | 1 | in-process | {ip['p50']} | {ip['p95']} | {ip['p99']} | {ip['rps']} | 0 | 1.0 |")
        for c in CONCURRENCY:
            for variant, cells in results["serve"].items():
                r = cells[f"{endpoint.name} c={c}"]
                ratio = r["rps"] / ip["rps"] if ip["rps"] else float("nan")
                print(f"| {endpoint.name} | {c} | {variant} | {r['p50']} | {r['p95']} | {r['p99']} | {r['rps']} | {r['errors']} | {ratio:.2f} |")
    after = results["serve"]["after"]
    search8, search32 = after["search c=8"], after["search c=32"]
    best = {e.name: max(after[f"{e.name} c={c}"]["rps"] for c in CONCURRENCY) for e in ENDPOINTS}
    goals = {
        "search c32 req/s >= c8 req/s": search32["rps"] >= search8["rps"],
        "search p95 at c8 <= 80 ms": search8["p95"] <= 80,
        **{f"{e} best Serve req/s >= 0.8 x in-process": best[e] >= 0.8 * inproc[e]["rps"] for e in best},
    }
    results["goals"] = goals
    print("\n" + "\n".join(f"{'PASS' if ok else 'FAIL'}  {goal}" for goal, ok in goals.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--project", type=Path, help="an already indexed project directory (else one is built in a tmp dir)")
    ap.add_argument("--requests", type=int, default=None, help="requests per cell at c=8 (default 96; --quick 48)")
    ap.add_argument("--rounds", type=int, default=None, help="passes over the cells; each cell reports its median round (default 2; --quick 1)")
    ap.add_argument("--baseline-ref", help="also serve this git ref (e.g. f63bed3) from a worktree, alternating cells with this code")
    ap.add_argument("--quick", action="store_true", help="fewer requests, one round (about 2 minutes without a baseline)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    per_cell = args.requests or (48 if args.quick else 96)
    rounds = args.rounds or (1 if args.quick else 2)

    work = args.project or build_project(Path(tempfile.mkdtemp(prefix="codesense-serve-bench-")))
    cfg_path = work / "codesense.yaml"
    os.environ["CODESENSE_HOME"] = str(work / ".codesense")
    results: dict = {"load_before": loadavg()}
    stream = QueryStream()
    results["in_process"], results["chunks"] = in_process(cfg_path, max(12, per_cell // 3), stream)
    for name, r in results["in_process"].items():
        print(f"in-process {name:<6} p50 {r['p50']} p95 {r['p95']} p99 {r['p99']} ms {r['rps']} req/s", flush=True)

    with contextlib.ExitStack() as stack:
        servers = {"after": stack.enter_context(serving(ROOT, copy_home(work, "after"), cfg_path, work / "serve-after.log"))}
        if args.baseline_ref:
            code = baseline_checkout(args.baseline_ref, work)
            servers["before"] = stack.enter_context(serving(code, copy_home(work, "before"), cfg_path, work / "serve-before.log"))
        results["serve"] = run_cells(servers, stream, per_cell, rounds)
    results["load_after"] = loadavg()
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
