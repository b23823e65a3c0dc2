"""Issue 2's integration test: `ray job submit ... -- python jobs/index.py` against a local head, then search."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PAYMENTS, ROOT
from tests.cpu.integration.orchestration.conftest import write_yaml

pytestmark = pytest.mark.slow


def test_ray_job_submit_indexes_payments_and_search_finds_jwt(ray_head, tmp_path, codesense_main, capsys, monkeypatch):
    """`ray job submit --working-dir <project> -- python jobs/index.py --config <tmp yaml>` exits 0; `codesense search` then finds app/auth/jwt.py."""
    shutil.copytree(PAYMENTS, tmp_path / "payments")
    home = tmp_path / "home"
    cfg = write_yaml(
        tmp_path / "codesense.yaml",
        {
            "repositories": [{"id": "payments", "path": str(tmp_path / "payments"), "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
            "qdrant": {"path": str(home / "qdrant")},
        },
    )
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    if (Path.home() / ".ray" / "auth_token").is_file():
        # Ray 2.5x heads enable token auth when ~/.ray/auth_token exists; the CLI sends it only in token mode.
        env.setdefault("RAY_AUTH_MODE", "token")
    runtime_env = json.dumps({"env_vars": {"CODESENSE_HOME": str(home)}})
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address", ray_head.dashboard_url, "--working-dir", str(ROOT),
         "--runtime-env-json", runtime_env, "--", "python", "jobs/index.py", "--config", str(cfg)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "succeeded" in proc.stdout.lower()

    monkeypatch.setenv("CODESENSE_HOME", str(home))
    code = codesense_main(["search", "where are JWT tokens verified?", "--config", str(cfg), "-k", "5", "--json"])
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert code == 0
    jwt = [h for h in hits if h["path"] == "app/auth/jwt.py"]
    assert jwt and jwt[0]["url"].startswith("https://gitlab.example.com/team/payments/-/blob/main/app/auth/jwt.py#L")
