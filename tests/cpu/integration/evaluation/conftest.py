"""Fixtures for the evaluation harness: the local judge server and a shared MLflow SQLite store."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "YES")

from judge_server import JudgeServer  # noqa: E402


@pytest.fixture
def judge_server():
    server = JudgeServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory) -> str:
    """One SQLite tracking store for the session: creating MLflow's schema takes seconds, so it is done once."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    path: Path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{path}"
