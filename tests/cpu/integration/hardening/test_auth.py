"""Auth cannot silently turn off: empty/unset token variables refuse to start; tokens compare safely.

End-to-end checks through the real Serve app are in test_serve_hardening.py.
"""

from __future__ import annotations

import subprocess

import pytest

from codesense_ray.errors import InvalidConfig
from codesense_ray.app.serve.http_guard import bearer_token_matches, require_auth_token
from tests.conftest import CODESENSE_BIN, write_config

TOKEN = "tok-123"


@pytest.mark.parametrize("value", [None, "", " ", "\t", "\n", "  \n  "])
def test_unset_or_blank_token_variable_refuses(monkeypatch, value):
    """A configured token variable that is unset or blank raises InvalidConfig naming the variable."""
    monkeypatch.delenv("CS_TOKEN_X", raising=False)
    if value is not None:
        monkeypatch.setenv("CS_TOKEN_X", value)
    with pytest.raises(InvalidConfig, match="CS_TOKEN_X") as err:
        require_auth_token("CS_TOKEN_X")
    assert "\n" not in str(err.value) and "refusing to serve" in str(err.value)


def test_token_resolution(monkeypatch):
    """No configured variable means no auth; a set variable yields its value without surrounding whitespace."""
    assert require_auth_token(None) is None and require_auth_token("") is None
    monkeypatch.setenv("CS_TOKEN_Y", "abc\n")
    assert require_auth_token("CS_TOKEN_Y") == "abc"


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"BeArEr {TOKEN}", f"  Bearer   {TOKEN}  ", f"Bearer {TOKEN}\t"],
)
def test_scheme_is_case_insensitive(header):
    """The Bearer scheme matches in any case and with extra whitespace around the credentials."""
    assert bearer_token_matches(header, TOKEN)


@pytest.mark.parametrize(
    "header",
    [
        None, "", "Bearer", "Bearer ", TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN.upper()}", f"Bearer{TOKEN}", f"Bearer {TOKEN} {TOKEN}", "Bearer tök-123", "Bearer \udcff", f"Bearer\u00a0{TOKEN}",
    ],
)
def test_wrong_credentials_rejected(header):
    """Missing, wrong-scheme, near-miss, non-ASCII and undecodable credentials never match."""
    assert not bearer_token_matches(header, TOKEN)


def test_empty_configured_token_never_matches():
    """An empty expected token matches nothing (defence in depth behind require_auth_token)."""
    assert not bearer_token_matches("Bearer ", "") and not bearer_token_matches("Bearer x", "")


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/redoc", "/metrics", "/v1/search", "/nope"])
def test_every_path_but_healthz_needs_the_token(client_factory, path):
    """With auth on, docs, the OpenAPI schema, metrics, the API and unknown paths answer 401 JSON without a token."""
    client, _ = client_factory()
    r = client.post(path, json={"query": "x"}) if path == "/v1/search" else client.get(path)
    assert r.status_code == 401 and r.json()["error"]["type"] == "Unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_openapi_with_token(client_factory):
    """The schema is served to a caller holding the token (lower-case scheme accepted)."""
    client, _ = client_factory()
    r = client.get("/openapi.json", headers={"Authorization": f"bearer {TOKEN}"})
    assert r.status_code == 200 and "/v1/search" in r.json()["paths"]


def test_healthz_without_token_reveals_liveness_only(client_factory):
    """With auth on, /healthz without a token says only `ok`; with the token it reports index and generator."""
    client, _ = client_factory()
    anonymous = client.get("/healthz")
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    wrong = client.get("/healthz", headers={"Authorization": "Bearer nope"})
    assert wrong.json() == {"status": "ok"}
    full = client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert full["index"]["repos"] == {"payments": "4f1c2ab"} and full["generator"] == {"name": "extractive"}


def test_healthz_no_index_without_token_is_terse(client_factory):
    """Not ready: 503 with the status only (no hints) for anonymous callers."""
    client, _ = client_factory(ready=False)
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "no_index"}


def test_auth_off_keeps_details(client_factory):
    """Without auth configured, /healthz reports details and the API is open (unchanged behaviour)."""
    client, _ = client_factory(auth_token=None)
    assert client.get("/healthz").json()["index"]["collection"] == "codesense__1"
    assert client.post("/v1/search", json={"query": "jwt"}).status_code == 200


def test_ingress_refuses_missing_token():
    """The ingress itself refuses to build when auth is configured but no token reached it."""
    from codesense_ray.errors import CodesenseError
    from codesense_ray.app.serve.deployments import Ingress

    with pytest.raises(CodesenseError, match="CS_TOKEN_Z"):
        Ingress(None, None, {"serve": {"auth_token_env": "CS_TOKEN_Z"}, "tracing": {"backend": "none"}}, auth_token="")


@pytest.mark.parametrize("value", [None, ""])
def test_cli_serve_refuses_to_start(tmp_path, value):
    """`codesense serve` with the token variable unset or empty exits 2 with one line naming it (nothing starts)."""
    import os

    write_config(tmp_path, [{"id": "p", "path": "p"}], serve={"auth_token_env": "CS_SERVE_TOKEN"})
    env = {k: v for k, v in os.environ.items() if k != "CS_SERVE_TOKEN"}
    if value is not None:
        env["CS_SERVE_TOKEN"] = value
    env["CODESENSE_HOME"] = str(tmp_path / ".codesense")
    proc = subprocess.run([CODESENSE_BIN, "serve", "--config", str(tmp_path / "codesense.yaml")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "CS_SERVE_TOKEN" in lines[0] and "refusing to serve" in lines[0]
