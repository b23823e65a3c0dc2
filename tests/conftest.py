"""Shared fixtures: offline environment, tmp projects with their own config and state directory."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PAYMENTS = FIXTURES / "payments-service"
CODESENSE_BIN = str(Path(sys.executable).with_name("codesense"))


def write_config(project: Path, repositories: list[dict], **sections) -> Path:
    """A codesense.yaml in `project` whose embedded Qdrant lives inside it."""
    data = {"repositories": repositories, "qdrant": {"path": str(project / ".codesense" / "qdrant")}, **sections}
    path = project / "codesense.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """A tmp project holding a copy of the sample payments service and a config indexing it."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    shutil.copytree(PAYMENTS, tmp_path / "payments")
    write_config(tmp_path, [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}])
    return tmp_path


@pytest.fixture(autouse=True)
def _mlflow_env_does_not_leak():
    """`mlflow.set_tracking_uri` exports MLFLOW_TRACKING_URI: restore it after each test so none leaks into the next."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
