"""The issue's repro end to end: a poisoned docstring in an indexed file never reaches a user as a link.

An indexed file carries `Payment token docs: <HTTPS://EVIL.EXAMPLE/steal-upper> (verify here)` in a docstring; the
extractive answerer quotes docstrings. `codesense ask` (text and --json) and the real Serve app (JSON and SSE) must
answer from that file, cite it with its exact permalink, and show the docstring without its link.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import httpx
import pytest

from tests.serving import running_serve
from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config

pytestmark = pytest.mark.slow
QUESTION = "How is the payment token verified?"
PERMALINK_PREFIX = "https://gitlab.example.com/team/payments/-/blob/main/app/payments/payment_token.py#L"
POISONED = '''import hmac


def verify_payment_token(token: str, secret: bytes) -> bool:
    """Payment token docs: <HTTPS://EVIL.EXAMPLE/steal-upper> (verify here)

    Verifies the payment token signature in constant time before the payment is captured.
    """
    body, _, signature = token.rpartition(".")
    expected = hmac.new(secret, body.encode(), "sha256").hexdigest()
    return hmac.compare_digest(expected, signature)
'''


def evil_free(text: str) -> bool:
    return "evil.example" not in text.lower()


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """The sample payments service plus the poisoned file, indexed once for the module."""
    project = tmp_path_factory.mktemp("poisoned")
    shutil.copytree(PAYMENTS, project / "payments")
    (project / "payments" / "app" / "payments").mkdir(exist_ok=True)
    (project / "payments" / "app" / "payments" / "payment_token.py").write_text(POISONED)
    write_config(
        project,
        [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
        index={"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        tracing={"backend": "none"},
    )
    env = dict(os.environ, CODESENSE_HOME=str(project / ".codesense"))
    cfg = str(project / "codesense.yaml")
    subprocess.run([CODESENSE_BIN, "index", "--config", cfg, "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    return project, env, cfg


def ask(poisoned, *extra):
    _, env, cfg = poisoned
    proc = subprocess.run([CODESENSE_BIN, "ask", QUESTION, "--config", cfg, *extra], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_cli_text_answer_has_no_foreign_link(poisoned):
    """`codesense ask`: the docstring is quoted without its link; the only link is codesense's own permalink."""
    proc = ask(poisoned)
    assert evil_free(proc.stdout) and evil_free(proc.stderr)
    assert "(verify here)" in proc.stdout and "[unverified reference removed]" in proc.stdout
    assert f"Source: {PERMALINK_PREFIX}" in proc.stdout


def test_cli_json_answer_has_no_foreign_link(poisoned):
    """`codesense ask --json`: nowhere in the document (answer, sources, removed-reference diagnostics) is the link."""
    proc = ask(poisoned, "--json")
    doc = json.loads(proc.stdout)
    assert evil_free(proc.stdout)
    assert "(verify here)" in doc["answer"] and any(s["url"].startswith(PERMALINK_PREFIX) for s in doc["sources"])
    assert doc["citations"]["invalid"] and "[unverified reference removed]" in doc["answer"]



@pytest.fixture(scope="module")
def served(poisoned):
    """`codesense serve` on the poisoned index (extractive generator, as on the embedded default)."""
    project, env, cfg = poisoned
    with running_serve(cfg, env, project, timeout_s=240) as base:
        yield httpx.Client(base_url=base, timeout=120)


def test_serve_json_answer_has_no_foreign_link(served):
    """POST /v1/ask: the JSON body carries the cited docstring without its link, and the exact permalink."""
    r = served.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200 and evil_free(r.text)
    body = r.json()
    assert "(verify here)" in body["answer"] and f"Source: {PERMALINK_PREFIX}" in body["answer"]


def test_serve_sse_sends_only_verified_text(served):
    """POST /v1/ask with stream=true: no event carries the link, and the tokens add up to exactly the final answer."""
    with served.stream("POST", "/v1/ask", json={"question": QUESTION, "stream": True}) as r:
        assert r.status_code == 200
        raw = "".join(r.iter_text())
    assert evil_free(raw)
    events = [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\n")[1].removeprefix("data: "))) for b in raw.strip().split("\n\n")]
    kinds = [k for k, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and "token" in kinds
    streamed = "".join(d["text"] for k, d in events if k == "token")
    assert streamed == events[-1][1]["answer"] and "(verify here)" in streamed
