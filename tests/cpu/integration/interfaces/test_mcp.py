"""`codesense mcp` through the `mcp` SDK's own client, over stdio and streamable HTTP, on a real embedded index.

Each transport starts the server once (a module fixture runs a scripted session and records every result); the
tests then assert on the records. Path traversal attempts: `../`, absolute paths, a symlink that replaced an
indexed file after indexing, an unindexed file that exists on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from codesense_ray.interfaces.mcp_server import InvalidArgument, safe_relative_path
from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config

TOKEN = "mcp-test-token"
SECRET = "TOP-SECRET-OUTSIDE-THE-REPO"

# (label, tool, arguments): run in one session per transport.
CALLS = [
    ("search", "search_code", {"query": "verify bearer token", "repo": "payments", "k": 3}),
    ("ask", "ask_codebase", {"question": "How are bearer tokens verified?", "repo": "payments"}),
    ("read", "read_lines", {"repo": "payments", "path": "app/auth/jwt.py", "start": 1, "end": 5}),
    ("read_clamped", "read_lines", {"repo": "payments", "path": "./app/auth/jwt.py", "start": 2, "end": 100000 // 200}),
    ("dotdot", "read_lines", {"repo": "payments", "path": "../secret.txt", "start": 1, "end": 1}),
    ("dotdot_inner", "read_lines", {"repo": "payments", "path": "app/../../secret.txt", "start": 1, "end": 1}),
    ("absolute", "read_lines", {"repo": "payments", "path": "/etc/passwd", "start": 1, "end": 1}),
    ("symlink", "read_lines", {"repo": "payments", "path": "app/config.py", "start": 1, "end": 1}),
    ("unindexed", "read_lines", {"repo": "payments", "path": "debug.log", "start": 1, "end": 1}),
    ("bad_range", "read_lines", {"repo": "payments", "path": "app/auth/jwt.py", "start": 9, "end": 3}),
    ("past_end", "read_lines", {"repo": "payments", "path": "app/auth/jwt.py", "start": 99999, "end": 99999}),
    ("unknown_repo", "read_lines", {"repo": "nope", "path": "app/auth/jwt.py", "start": 1, "end": 2}),
    ("search_unknown_repo", "search_code", {"query": "jwt", "repo": "nope"}),
    ("bad_k", "search_code", {"query": "jwt", "k": 0}),
    ("bad_type", "read_lines", {"repo": "payments", "path": "app/auth/jwt.py", "start": "one", "end": 2}),
    ("missing_arg", "read_lines", {"repo": "payments", "path": "app/auth/jwt.py"}),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The sample service indexed; then an indexed file is swapped for a symlink to a secret outside the repo."""
    root = tmp_path_factory.mktemp("mcp")
    shutil.copytree(PAYMENTS, root / "payments")
    cfg = write_config(
        root,
        [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}],
        index={"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        serve={"auth_token_env": "CODESENSE_MCP_TOKEN"},
        tracing={"backend": "none"},
    )
    env = dict(os.environ, CODESENSE_HOME=str(root / ".codesense"), CODESENSE_MCP_TOKEN=TOKEN)
    subprocess.run([CODESENSE_BIN, "index", "--config", str(cfg), "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    (root / "secret.txt").write_text(SECRET + "\n")
    (root / "payments" / "app" / "config.py").unlink()
    (root / "payments" / "app" / "config.py").symlink_to(root / "secret.txt")
    return root, cfg, env


async def _session(client) -> dict:
    from mcp_types import TextResourceContents

    out: dict = {"tools": sorted(t.name for t in (await client.list_tools()).tools)}
    resources = (await client.list_resources()).resources
    out["resources"] = [str(r.uri) for r in resources]
    contents = (await client.read_resource("codesense://repositories/payments")).contents
    out["resource_payments"] = json.loads(contents[0].text) if isinstance(contents[0], TextResourceContents) else None
    for label, tool, args in CALLS:
        result = await client.call_tool(tool, args)
        text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
        out[label] = {"is_error": bool(result.is_error), "text": text, "data": result.structured_content}
    return out


@pytest.fixture(scope="module")
def stdio_records(project):
    """One stdio session: the SDK client spawns `codesense mcp` and runs every scripted call."""
    from mcp import Client, StdioServerParameters

    _, cfg, env = project
    params = StdioServerParameters(command=CODESENSE_BIN, args=["mcp", "--config", str(cfg)], env=env)

    async def run():
        async with Client(params, read_timeout_seconds=120) as client:
            return await _session(client)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def http_server(project):
    """`codesense mcp --transport http` on a free port, with the API token from serve.auth_token_env."""
    root, cfg, env = project
    port = _free_port()
    log = open(root / "mcp-http.log", "w")
    proc = subprocess.Popen([CODESENSE_BIN, "mcp", "--config", str(cfg), "--transport", "http", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError((root / "mcp-http.log").read_text()[-3000:])
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def http_records(http_server):
    """One streamable-HTTP session with the bearer token, running every scripted call."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def run():
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {TOKEN}"})
        async with http, Client(streamable_http_client(http_server, http_client=http), read_timeout_seconds=120) as client:
            return await _session(client)

    return asyncio.run(run())


@pytest.fixture(scope="module", params=["stdio", "http"])
def records(request):
    return request.getfixturevalue(f"{request.param}_records")



@pytest.mark.slow
def test_lists_three_tools_and_the_repository_resource(records):
    """The server offers search_code, ask_codebase, read_lines and one resource per indexed repository."""
    assert records["tools"] == ["ask_codebase", "read_lines", "search_code"]
    assert records["resources"] == ["codesense://repositories/payments"]
    assert records["resource_payments"]["id"] == "payments" and records["resource_payments"]["ref"] == "4f1c2ab"


@pytest.mark.slow
def test_search_code_returns_ranked_hits_with_pinned_links(records):
    """search_code finds the JWT module first, with a commit-pinned GitHub link and the chunk's exact lines."""
    r = records["search"]
    assert not r["is_error"]
    hits = r["data"]["hits"]
    assert len(hits) == 3 and hits[0]["path"] == "app/auth/jwt.py"
    jwt = (PAYMENTS / "app" / "auth" / "jwt.py").read_text().splitlines()
    assert hits[0]["text"] == "\n".join(jwt[hits[0]["start_line"] - 1 : hits[0]["end_line"]])
    assert hits[0]["url"].startswith("https://github.com/acme/payments/blob/4f1c2ab/app/auth/jwt.py#L")


@pytest.mark.slow
def test_ask_codebase_answers_with_verified_sources(records):
    """ask_codebase returns the answer text with its verified sources (extractive generator)."""
    r = records["ask"]
    assert not r["is_error"]
    body = r["data"]
    assert body["sources"] and body["citations"]["invalid"] == []
    assert "https://github.com/acme/payments/blob/4f1c2ab/" in body["answer"]


@pytest.mark.slow
def test_read_lines_returns_exact_lines_and_link(records):
    """read_lines returns lines 1..5 of an indexed file exactly as on disk, with the permalink; a long end is clamped."""
    expected = (PAYMENTS / "app" / "auth" / "jwt.py").read_text().splitlines()
    r = records["read"]
    assert not r["is_error"]
    assert r["data"]["text"] == "\n".join(expected[:5]) and r["data"]["stale"] is False
    assert r["data"]["url"] == "https://github.com/acme/payments/blob/4f1c2ab/app/auth/jwt.py#L1-L5"
    clamped = records["read_clamped"]["data"]
    assert clamped["path"] == "app/auth/jwt.py" and clamped["end_line"] == len(expected) == clamped["line_count"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "label, reason",
    [
        ("dotdot", "contains '..'"),
        ("dotdot_inner", "contains '..'"),
        ("absolute", "is absolute"),
        ("symlink", "resolves outside repository 'payments'"),
        ("unindexed", "is not an indexed file"),
    ],
)
def test_path_traversal_attempts_are_refused(records, label, reason):
    """`../`, absolute paths, a symlink out of the repo and unindexed files are tool errors; the secret never leaks."""
    r = records[label]
    assert r["is_error"] and reason in r["text"]
    assert SECRET not in r["text"] and "root:" not in r["text"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "label, reason",
    [
        ("bad_range", "need 1 <= start <= end"),
        ("past_end", "past the end of app/auth/jwt.py"),
        ("unknown_repo", "unknown repository 'nope'"),
        ("search_unknown_repo", "unknown repository 'nope'"),
        ("bad_k", "k\n  Input should be greater than or equal to 1"),
        ("bad_type", "start\n  Input should be a valid integer"),
        ("missing_arg", "end\n  Field required"),
    ],
)
def test_bad_arguments_are_tool_errors_naming_the_argument(records, label, reason):
    """Bad ranges, unknown repositories, out-of-bounds k, wrong types and missing arguments are errors naming the cause."""
    r = records[label]
    assert r["is_error"] and reason in r["text"], r["text"]


@pytest.mark.slow
def test_http_without_token_is_401(http_server):
    """The streamable-HTTP endpoint refuses requests without the bearer token (same JSON body as the API)."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(http_server, json=init, headers=headers | {"Accept": "application/json, text/event-stream"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "~/x", "a\\..\\b", "", ".", "a\x00b"])
def test_safe_relative_path_rejects(path):
    """Path normalisation refuses anything that could leave the repository root."""
    with pytest.raises(InvalidArgument, match="path:"):
        safe_relative_path(path)


def test_safe_relative_path_normalises():
    """Harmless spellings (`./`, doubled slashes) normalise to the indexed form."""
    assert safe_relative_path("./app//auth/jwt.py") == "app/auth/jwt.py"


def test_http_off_loopback_needs_a_token():
    """Serving the index over HTTP on a non-loopback address without a token is refused at start."""
    from codesense_ray.errors import CodesenseError
    from codesense_ray.interfaces.mcp_server import check_http_exposure

    with pytest.raises(CodesenseError, match="needs a bearer token"):
        check_http_exposure("0.0.0.0", None, "CODESENSE_API_TOKEN")
    check_http_exposure("127.0.0.1", None, None)


def test_cli_without_index_is_a_one_line_error(tmp_path):
    """`codesense mcp` before any index run exits 3 with one line on stderr and nothing on stdout."""
    cfg = write_config(tmp_path, [{"id": "payments", "path": str(PAYMENTS)}])
    env = dict(os.environ, CODESENSE_HOME=str(tmp_path / ".codesense"))
    proc = subprocess.run([CODESENSE_BIN, "mcp", "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["codesense: error: no index yet: run `codesense index`"]


def test_cli_http_off_loopback_without_token_is_refused(tmp_path):
    """`codesense mcp --transport http --host 0.0.0.0` without a configured token refuses to start."""
    cfg = write_config(tmp_path, [{"id": "payments", "path": str(PAYMENTS)}])
    env = dict(os.environ, CODESENSE_HOME=str(tmp_path / ".codesense"))
    proc = subprocess.run([CODESENSE_BIN, "mcp", "--config", str(cfg), "--transport", "http", "--host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "needs a bearer token off loopback" in proc.stderr and proc.stdout == ""
