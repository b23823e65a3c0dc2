"""Lone surrogates and invalid UTF-8 in queries and questions: 422 JSON over HTTP, one-line error in the CLI."""

from __future__ import annotations

import os
import subprocess

import pytest

from codesense_ray.answering.answerer import InvalidQuestion, check_question
from codesense_ray.retrieval.query_guard import InvalidQuery, check_query, invalid_unicode_at, utf8_problem
from tests.conftest import CODESENSE_BIN, write_config

SURROGATE_TEXTS = ["\ud800", "\udfff", "a\ud83d", "\ud83db", "x\udc80y", "ok " * 50 + "\udcff", "\ude00\ud83d", "é\ud800ß"]
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"abc\x80"]
VALID_TEXTS = ["plain", "é ü ß", "日本語のテキスト", "emoji 😀 ok", "\u200b zero width", "tab\tand\nnewline", "\U0010ffff"]


@pytest.mark.parametrize("text", SURROGATE_TEXTS)
def test_lone_surrogates_rejected(text):
    """Every lone surrogate, anywhere in the text, is a one-line InvalidQuery / InvalidQuestion naming the code point."""
    with pytest.raises(InvalidQuery, match=r"not valid Unicode: lone surrogate U\+D[89A-F][0-9A-F]{2}") as err:
        check_query(text, 4000)
    assert "\n" not in str(err.value)
    str(err.value).encode("utf-8")  # the message itself is printable
    with pytest.raises(InvalidQuestion, match="question is not valid Unicode"):
        check_question(text, 4000)


@pytest.mark.parametrize("text", VALID_TEXTS)
def test_valid_unicode_accepted(text):
    """Non-ASCII but valid text (accents, CJK, emoji, astral plane) passes unchanged."""
    assert invalid_unicode_at(text) is None
    assert check_query(text, 4000) == text


@pytest.mark.parametrize("data", INVALID_UTF8)
def test_invalid_utf8_bytes_named(data):
    """Invalid UTF-8 (bad start bytes, truncated sequences, encoded surrogates, overlongs) is reported with its byte."""
    problem = utf8_problem(data)
    assert problem and "not valid UTF-8" in problem and "byte 0x" in problem


@pytest.mark.parametrize("raw", [b'{"query": "\\ud800"}', b'{"query": "x\\udc80y"}', b'{"query": "\\ude00\\ud83d"}'])
def test_http_search_surrogate_escape_is_422(client_factory, raw):
    """A JSON \\u escape of a lone surrogate in /v1/search is a 422 JSON error, and search never runs."""
    client, handle = client_factory(auth_token=None)
    r = client.post("/v1/search", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "InvalidQuery" and handle.queries == []


@pytest.mark.parametrize("data", INVALID_UTF8)
@pytest.mark.parametrize("path, field", [("/v1/search", "query"), ("/v1/ask", "question")])
def test_http_invalid_utf8_body_is_422(client_factory, data, path, field):
    """Raw invalid UTF-8 inside a JSON string is a 422 JSON error on both endpoints (not a 400/500)."""
    client, handle = client_factory(auth_token=None)
    body = b'{"' + field.encode() + b'": "ab' + data + b'"}'
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert "not valid UTF-8" in r.json()["error"]["message"] and handle.queries == []


@pytest.mark.parametrize("raw", [b'{"question": "\\ud800"}', b'{"question": "why \\udfff"}', b'{"question": "\\ud83d", "stream": false}'])
def test_http_ask_surrogate_escape_is_422(client_factory, raw):
    """A lone surrogate in /v1/ask's question is a 422 InvalidQuestion JSON error."""
    client, _ = client_factory(auth_token=None)
    r = client.post("/v1/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["type"] == "InvalidQuestion"


@pytest.fixture
def cli_project(tmp_path):
    write_config(tmp_path, [{"id": "p", "path": "p"}])
    return tmp_path


@pytest.mark.parametrize("command", ["search", "ask"])
@pytest.mark.parametrize("data", [b"\xff", b"abc\xc3", b"\xed\xa0\x80 x", b"ok \xf8"])
def test_cli_invalid_utf8_argument_is_one_line(cli_project, command, data):
    """Undecodable bytes in the command-line query/question: exit 2, one stderr line, no traceback."""
    env = dict(os.environ, CODESENSE_HOME=str(cli_project / ".codesense"), LC_ALL="C.UTF-8")
    proc = subprocess.run([CODESENSE_BIN.encode(), command.encode(), data, b"--config", str(cli_project / "codesense.yaml").encode()], capture_output=True, env=env, timeout=120)
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "not valid Unicode" in err[0], err
