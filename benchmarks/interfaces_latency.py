"""Latency of the other ways in, beside `/v1/ask`: OpenAI-compatible chat (plain and streamed) and MCP over stdio.

Indexes the sample payments service (extractive generator), starts `codesense serve`, and sends the same questions
sequentially to `/v1/ask`, `/v1/chat/completions` and `/v1/chat/completions` with `stream: true` (time to first
content chunk and to `[DONE]`). Then stops Serve (embedded Qdrant has one user) and runs `codesense mcp` over stdio
with the `mcp` SDK's client: `search_code`, `read_lines`, `ask_codebase`. Prints p50/p95 in milliseconds.

    .venv/bin/python benchmarks/interfaces_latency.py [--requests 30] [--json out.json]

The load table (concurrency 1/8/32) is `benchmarks/serve_latency.py`'s job; this one shows what the protocol
adapters add on top of the same answer path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = str(Path(sys.executable).with_name("codesense"))
QUESTIONS = [
    "How are bearer tokens verified?",
    "Where are card payments authorised?",
    "How is the database session created?",
    "Which permissions does a refund need?",
    "Where is the JWT signing key loaded?",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(samples: list[float]) -> dict:
    s = sorted(samples)
    return {"n": len(s), "p50_ms": round(statistics.median(s) * 1000, 1), "p95_ms": round(s[max(0, int(0.95 * len(s)) - 1)] * 1000, 1)}


def _project(root: Path, env: dict) -> Path:
    shutil.copytree(ROOT / "tests" / "fixtures" / "payments-service", root / "payments")
    from tests.conftest import write_config

    cfg = write_config(root, [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}], tracing={"backend": "none"})
    subprocess.run([BIN, "index", "--config", str(cfg), "--no-progress"], check=True, env=env, capture_output=True)
    return cfg


def bench_http(cfg: Path, env: dict, n: int) -> dict:
    import httpx

    port = _free_port()
    log = open(cfg.parent / "serve.log", "w")
    proc = subprocess.Popen([BIN, "serve", "--config", str(cfg), "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        client = httpx.Client(base_url=base, timeout=60)
        out: dict[str, list[float]] = {"ask": [], "chat": [], "chat_stream_first_chunk": [], "chat_stream_done": []}
        for i in range(n + 2):  # two warm-up rounds, not counted
            q = QUESTIONS[i % len(QUESTIONS)]
            t = time.perf_counter()
            client.post("/v1/ask", json={"question": q}).raise_for_status()
            ask = time.perf_counter() - t
            t = time.perf_counter()
            client.post("/v1/chat/completions", json={"model": "codesense", "messages": [{"role": "user", "content": q}]}).raise_for_status()
            chat = time.perf_counter() - t
            t, first = time.perf_counter(), None
            with client.stream("POST", "/v1/chat/completions", json={"model": "codesense", "stream": True, "messages": [{"role": "user", "content": q}]}) as r:
                for line in r.iter_lines():
                    if first is None and '"content": "' in line and '"content": ""' not in line:
                        first = time.perf_counter() - t
            done = time.perf_counter() - t
            if i >= 2:
                out["ask"].append(ask)
                out["chat"].append(chat)
                out["chat_stream_first_chunk"].append(first or done)
                out["chat_stream_done"].append(done)
        return {k: _stats(v) for k, v in out.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def bench_mcp(cfg: Path, env: dict, n: int) -> dict:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=BIN, args=["mcp", "--config", str(cfg)], env=env)

    async def run() -> dict:
        out: dict[str, list[float]] = {"search_code": [], "read_lines": [], "ask_codebase": []}
        t = time.perf_counter()
        async with Client(params, read_timeout_seconds=120) as client:
            startup = time.perf_counter() - t
            for i in range(n + 2):
                q = QUESTIONS[i % len(QUESTIONS)]
                calls = {
                    "search_code": {"query": q, "k": 5},
                    "read_lines": {"repo": "payments", "path": "app/auth/jwt.py", "start": 1, "end": 40},
                    "ask_codebase": {"question": q},
                }
                for name, args in calls.items():
                    t = time.perf_counter()
                    result = await client.call_tool(name, args)
                    if result.is_error:
                        raise RuntimeError(f"{name}: {result.content}")
                    if i >= 2:
                        out[name].append(time.perf_counter() - t)
        return {"startup_s": round(startup, 1)} | {k: _stats(v) for k, v in out.items()}

    return asyncio.run(run())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = dict(os.environ, CODESENSE_HOME=str(root / ".codesense"))
        cfg = _project(root, env)
        result = {"http": bench_http(cfg, env, args.requests), "mcp_stdio": bench_mcp(cfg, env, args.requests)}
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
