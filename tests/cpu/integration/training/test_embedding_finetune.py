"""`codesense embeddings finetune`: mines pairs from the configured repositories, trains the packaged MiniLM a few
steps, logs and registers it in MLflow; `embedding.model: models:/...` then loads it like any other model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CODESENSE_HOME"] = str(home)
    return env


@pytest.mark.slow
def test_finetune_registers_a_model_that_config_can_select(tmp_path, mlflow_home):
    """Two training steps on pairs mined from the payments fixture give a registered 384-dim model that
    `embedding.model: models:/codesense-embedding@challenger` loads, and whose vectors differ from the base model's."""
    from codesense_ray.config import load_config
    from codesense_ray.index.embedding import SentenceTransformerEmbedder, read_model_info

    shutil.copytree(PAYMENTS, tmp_path / "payments")
    training = {"embedding": {"max_steps": 2, "batch_size": 4, "max_seq_length": 32, "exclude_datasets": [], "output_dir": "ft-model"}}
    cfg_path = write_config(tmp_path, [{"id": "payments", "path": "payments"}], training=training)
    res = subprocess.run([CODESENSE_BIN, "embeddings", "finetune", "--config", str(cfg_path), "--json"],
                         capture_output=True, text=True, env=_env(mlflow_home), timeout=1500)
    assert res.returncode == 0, res.stderr[-2000:]
    payload = json.loads(res.stdout)
    assert payload["pairs"]["docstring"] > 0 and payload["pairs"]["raise"] > 0
    assert payload["steps"] == 2 and payload["version"] == 1
    assert payload["uri"] == "models:/codesense-embedding@challenger"
    assert (tmp_path / "ft-model" / "modules.json").is_file() and (tmp_path / "ft-model" / "pairs.jsonl").is_file()

    write_config(tmp_path, [{"id": "payments", "path": "payments"}], embedding={"model": payload["uri"], "device": "cpu"})
    cfg = load_config(cfg_path)
    info = read_model_info(cfg.embedding.model)
    assert info.name == "models:/codesense-embedding/1" and info.dimension == 384
    tuned = SentenceTransformerEmbedder(cfg.embedding).embed_queries(["where is the refund issued?"])
    base = SentenceTransformerEmbedder(cfg.embedding.model_copy(update={"model": "all-MiniLM-L6-v2"})).embed_queries(["where is the refund issued?"])
    assert tuned.shape == (1, 384)
    assert not np.allclose(tuned, base, atol=1e-6)


def test_unknown_registered_embedding_model_is_a_config_error(tmp_path, mlflow_home):
    """`embedding.model` naming a registry alias that does not exist: one line naming the key, exit 2."""
    write_config(tmp_path, [{"id": "payments", "path": str(PAYMENTS)}], embedding={"model": "models:/codesense-embedding@champion"})
    res = subprocess.run([CODESENSE_BIN, "index", "--config", str(tmp_path / "codesense.yaml"), "--no-progress"],
                         capture_output=True, text=True, env=_env(mlflow_home), timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith("codesense: error: embedding.model: models:/codesense-embedding@champion")
