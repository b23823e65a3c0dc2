"""Secrets stay out of the index: secret files are never read, secrets in text are redacted with exact lines."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from codesense_ray.sources.files import select_files
from codesense_ray.index.secrets import DEFAULT_SECRET_FILES, REDACTION_PREFIX, count_redactions, scrub_secrets
from tests.conftest import CODESENSE_BIN, write_config

SECRET_FILES = [
    ".env", ".env.production", ".env.local", "config/.env", "prod.env", ".envrc", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".ssh/id_ed25519",
    "server.pem", "tls/private.key", "cert.p12", "cert.pfx", "release.jks", "app.keystore", "putty.ppk", ".npmrc", ".yarnrc.yml", ".pypirc",
    ".netrc", "_netrc", ".git-credentials", ".pgpass", ".my.cnf", ".htpasswd", ".dockercfg", ".docker/config.json", "credentials.json",
    "deploy/credentials.json", ".aws/credentials", "client_secret_123.apps.json", "service-account-prod.json", "kubeconfig", "kubeconfig.prod",
    "cluster.kubeconfig", ".kube/config", "terraform.tfstate", "terraform.tfstate.backup", ".s3cfg", ".boto",
]  # fmt: skip
ORDINARY_FILES = ["env.py", "environment.ts", "keys.py", "key_store.go", "id_rsa.pub", "pem_utils.py", "credentials.py", "config.json", "kube.yaml", "README.md"]

SECRET_LINES = {
    "aws key id": 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"',
    "aws secret": 'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    "password": 'password = "hunter2hunter2"',
    "yaml password": "db_password: Sup3rS3cretValue!",
    "github token": 'GITHUB_TOKEN = "ghp_1234567890abcdefghijABCDEFGHIJ123456"',
    "stripe": 'stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"',
    "slack": 'SLACK = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"',
    "url credentials": 'DATABASE_URL = "postgres://admin:s3cr3tPassw0rd@db.internal:5432/app"',
    "jwt": 'TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"',
    "google api key": 'const apiKey = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY";',
    "env style": "export API_SECRET=9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc",
}
SECRET_VALUES = {
    "aws key id": "AKIAIOSFODNN7EXAMPLE", "aws secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "password": "hunter2hunter2",
    "yaml password": "Sup3rS3cretValue", "github token": "ghp_1234567890abcdefghij", "stripe": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "slack": "xoxb-123456789012", "url credentials": "s3cr3tPassw0rd", "jwt": "dozjgNryP4J3jVmNHl0w5N", "google api key": "AIzaSyD-9tSrke72",
    "env style": "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
}  # fmt: skip
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234567890abcdefghijklmnopqrstuvwxyzABCDEF\nQWERTYUIOPasdfghjkl0987654321zxcvbnmQWERTYUIOPasdfgh\n-----END RSA PRIVATE KEY-----"
CLEAN_CODE = [
    "def verify_token(token: str) -> bool:",
    "    return hmac.compare_digest(token, expected)",
    "password_field = form.get('password')",
    "api_key = os.environ[API_KEY_ENV]",
    "token = request.headers.get('authorization', '')",
    "for key, value in sorted(items.items()):",
    "url = f'https://{host}/v1/payments'",
]


@pytest.mark.parametrize("name", SECRET_FILES)
def test_secret_files_never_selected(tmp_path, name):
    """Every well-known secret file name is skipped as `secret_file` (never read), wherever it lives."""
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("SECRET=1\n")
    (tmp_path / "main.py").write_text("print('hi')\n")
    sel = select_files(tmp_path, max_file_bytes=10_000, max_line_length=1000, secret_files=DEFAULT_SECRET_FILES)
    assert [f.path for f in sel.files] == ["main.py"] and sel.skipped["secret_file"] == 1


@pytest.mark.parametrize("name", ORDINARY_FILES)
def test_ordinary_files_still_selected(tmp_path, name):
    """Source files whose names merely resemble secret files (env.py, id_rsa.pub, credentials.py) are indexed."""
    (tmp_path / name).write_text("value = 1\n")
    sel = select_files(tmp_path, max_file_bytes=10_000, max_line_length=1000, secret_files=DEFAULT_SECRET_FILES)
    assert [f.path for f in sel.files] == [name]


def test_secret_file_list_is_configurable(tmp_path):
    """An empty `secrets.exclude_files` indexes `.env` again; a custom pattern excludes its files."""
    (tmp_path / ".env").write_text("A=1\n")
    (tmp_path / "vault.txt").write_text("x\n")
    assert {f.path for f in select_files(tmp_path, max_file_bytes=10_000, max_line_length=1000).files} == {".env", "vault.txt"}
    sel = select_files(tmp_path, max_file_bytes=10_000, max_line_length=1000, secret_files=["vault.*"])
    assert [f.path for f in sel.files] == [".env"]


@pytest.mark.parametrize("kind", sorted(SECRET_LINES))
def test_secret_formats_redacted_in_place(kind):
    """Each secret format is replaced by a marker on its own line; surrounding lines and line count unchanged."""
    text = "\n".join(["# settings", SECRET_LINES[kind], "def f():", "    return 1", ""])
    out = scrub_secrets(text, "settings.py")
    lines = out.text.split("\n")
    assert len(lines) == len(text.split("\n")) and lines[0] == "# settings" and lines[2:] == ["def f():", "    return 1", ""]
    assert SECRET_VALUES[kind] not in out.text and REDACTION_PREFIX in lines[1]
    assert out.redactions and all(r.line == 2 for r in out.redactions) and count_redactions(out.text) == len(out.redactions)


def test_private_key_block_redacted_line_by_line():
    """A PEM private key's body lines are each replaced; BEGIN/END lines and the line count remain."""
    text = f"KEY = '''\n{PEM}\n'''\nx = 1"
    out = scrub_secrets(text, "keys.py")
    assert out.text.count("\n") == text.count("\n") and "MIIEpAIBAAK" not in out.text and "QWERTYUIOP" not in out.text
    assert [r.line for r in out.redactions] == [3, 4] and out.text.split("\n")[-1] == "x = 1"


@pytest.mark.parametrize("line", CLEAN_CODE)
def test_ordinary_code_untouched(line):
    """Code that talks about tokens, passwords and keys without holding one is left exactly as it is."""
    assert scrub_secrets(line, "app.py").text == line


def test_secret_lines_in_many_places_keep_line_numbers():
    """Secrets on many lines of one file: every other line keeps its number and content."""
    lines = []
    for i in range(40):
        lines.append(SECRET_LINES[sorted(SECRET_LINES)[i % len(SECRET_LINES)]] if i % 3 == 0 else f"value_{i} = {i}")
    out = scrub_secrets("\n".join(lines), "many.py").text.split("\n")
    assert len(out) == 40 and all(out[i] == lines[i] for i in range(40) if i % 3)
    assert all(REDACTION_PREFIX in out[i] for i in range(0, 40, 3))


@pytest.mark.slow
def test_index_search_and_ask_never_see_secrets(tmp_path):
    """End to end through the CLI: secret files are skipped, secrets redacted, counted in `index --json`,
    absent from `search --json` and `ask --json`; citations of the file keep their exact line numbers."""
    repo = tmp_path / "svc"
    (repo / "app").mkdir(parents=True)
    (repo / ".env").write_text("STRIPE_SECRET=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n")
    (repo / "id_rsa").write_text(PEM + "\n")
    (repo / "deploy.pem").write_text(PEM + "\n")
    (repo / ".npmrc").write_text("//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789\n")
    settings = "\n".join(["# Payment gateway settings", 'GATEWAY_URL = "https://pay.example.com"', SECRET_LINES["aws key id"], SECRET_LINES["stripe"], "", "def gateway_timeout() -> int:", '    """Payment gateway timeout in seconds."""', "    return 30", ""])
    (repo / "app" / "settings.py").write_text(settings)
    write_config(tmp_path, [{"id": "svc", "path": "svc", "web_url": "https://github.com/acme/svc", "ref": "main"}], index={"in_process_max_files": 1000})
    env = dict(os.environ, CODESENSE_HOME=str(tmp_path / ".codesense"))

    def cli(*args):
        proc = subprocess.run([CODESENSE_BIN, *args, "--config", str(tmp_path / "codesense.yaml"), "--json"], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    summary = json.loads(cli("index", "--no-progress"))
    assert summary["totals"]["secrets_redacted"] >= 2 and summary["repos"][0]["skipped"]["secret_file"] == 4
    out = cli("search", "stripe payment gateway settings", "-k", "5")
    hits = json.loads(out)["hits"]
    assert hits and {h["path"] for h in hits} == {"app/settings.py"}
    answer = cli("ask", "What are the payment gateway settings?")
    for leaked in ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AKIAIOSFODNN7EXAMPLE", "MIIEpAIBAAK", "npm_abcdefghij"):
        assert leaked not in out and leaked not in answer
    from codesense_ray.config import load_config
    from codesense_ray.store.qdrant import IndexStore, open_client

    cfg = load_config(tmp_path / "codesense.yaml")
    store = IndexStore(open_client(cfg), cfg.index.collection, embedded=not cfg.qdrant.url)
    try:
        chunks = [p.payload for p in store.scroll(store.live_collection()) if not p.payload.get("_meta")]
    finally:
        store.client.close()
    source = settings.split("\n")
    for c in chunks:
        stored = c["text"].split("\n")
        assert len(stored) == c["end_line"] - c["start_line"] + 1
        for offset, line in enumerate(stored):  # each stored line is the source line, or that line with a secret masked
            original = source[c["start_line"] - 1 + offset]
            assert line == original or (REDACTION_PREFIX in line and line.split("=")[0] == original.split("=")[0])
