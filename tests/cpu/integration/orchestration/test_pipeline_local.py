"""`codesense pipeline run --local` end to end: KFP local runner → Ray jobs on a private head → DVC + index → search."""

from __future__ import annotations

import json
import shutil
import socket
from urllib.parse import urlsplit

import pytest

from tests.conftest import PAYMENTS
from tests.cpu.integration.orchestration.conftest import git, run_cli, write_yaml

pytestmark = pytest.mark.slow


def test_pipeline_run_local_converges_indexes_and_search_finds_the_code(tmp_path, codesense_main, capsys, monkeypatch):
    """A file:// repository goes through converge and index as Ray jobs; the head started for the run is gone; search links use the cloned SHA."""
    source = tmp_path / "sources" / "payments"
    shutil.copytree(PAYMENTS, source)
    git(source, "init", "-q", "-b", "main")
    git(source, "add", "-A")
    git(source, "commit", "-q", "-m", "payments service")
    sha = git(source, "rev-parse", "HEAD")
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    cfg = write_yaml(project / "codesense.yaml", {"repositories": [{"url": source.as_uri(), "id": "payments", "web_url": "https://gitlab.example.com/team/payments"}]})

    proc = run_cli(["pipeline", "run", "--local", "--config", str(cfg), "--json"], cwd=project, env={"CODESENSE_HOME": str(home)}, timeout=900)

    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["started_head"] is True and result["index"]["status"] == "SUCCEEDED"
    summary = result["index"]["summary"]
    assert summary["ok"] and summary["totals"]["chunks_total"] > 0 and summary["repos"][0]["ref"] == sha
    assert result["index"]["details"]["metadata"]["data_version"].endswith(".dir")  # lineage: which DVC snapshot was indexed
    assert (project / "data" / "raw" / "payments" / "app" / "auth" / "jwt.py").is_file() and (project / "data" / "raw.dvc").is_file()
    assert any((home / "dvc-remote").rglob("*"))
    dash = urlsplit(result["ray_address"])
    with pytest.raises(OSError):
        socket.create_connection((dash.hostname, dash.port), timeout=2).close()  # the run's own head was stopped

    monkeypatch.setenv("CODESENSE_HOME", str(home))
    assert codesense_main(["search", "verify JWT token signature", "--config", str(cfg), "-k", "5", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    jwt = [h for h in hits if h["path"] == "app/auth/jwt.py"]
    assert jwt and f"/-/blob/{sha}/app/auth/jwt.py#L" in jwt[0]["url"]
