"""Fixtures for the answer path: local servers speaking OpenAI / Gemini / Langfuse, a shared MLflow SQLite store."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

from fake_servers import LangfuseState, gemini_route, langfuse_route, openai_route, start  # noqa: E402


@pytest.fixture
def openai_server():
    server, state = start(openai_route)
    yield server, state
    server.stop()


@pytest.fixture
def gemini_server():
    server, state = start(gemini_route)
    yield server, state
    server.stop()


@pytest.fixture
def langfuse_server():
    # A fresh key pair per test: the Langfuse SDK keeps one client per public key for the whole process.
    keys = LangfuseState(public_key=f"pk-lf-{uuid.uuid4().hex[:8]}", secret_key=f"sk-lf-{uuid.uuid4().hex[:8]}")
    server, state = start(langfuse_route, langfuse=keys)
    yield server, keys
    server.stop()


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One SQLite tracking store for the session: creating MLflow's schema takes seconds, so it is done once."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    path: Path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{path}"
