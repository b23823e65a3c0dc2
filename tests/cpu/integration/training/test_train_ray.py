"""`codesense train` for real: a Ray Train TorchTrainer on local Ray (CPU, one worker) fine-tunes LoRA on the
packaged Gemma 3 270M, the loss falls, the adapter is registered as `challenger`, and the `local` generator
loading `models:/codesense-student@challenger` answers differently from the base model."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.cpu.integration.training.conftest import link_models, write_dataset
from tests.conftest import CODESENSE_BIN, write_config

TRAIN = {"max_steps": 6, "batch_size": 4, "max_seq_length": 48, "learning_rate": 1e-3, "checkpoint_every": 3, "cpus_per_worker": 1}
PROMPT = [{"role": "system", "content": "Answer from the context; cite blocks as [n]."},
          {"role": "user", "content": "Context:\n[1] payments:app/auth/jwt.py:L1-L9\n\nQuestion: Where are JWT tokens verified?"}]


@pytest.mark.slow
def test_train_on_ray_lowers_loss_registers_challenger_and_changes_output(tmp_path, gemma_models_dir, monkeypatch):
    """Loss on a fixed probe batch is lower after 6 steps than before; checkpoints at steps 3 and 6; version 1 has
    alias challenger; the registered adapter (base + LoRA through the local generator) changes the next-token logits."""
    import torch

    from codesense_ray.answering.generators import GeneratorConfig, build_generator

    home = tmp_path / ".codesense"
    link_models(home, gemma_models_dir)
    write_dataset(tmp_path / "data" / "training" / "distilled")
    cfg = write_config(tmp_path, [], ray={"num_cpus": 2}, training={"train": TRAIN})
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CODESENSE_HOME"] = str(home)
    res = subprocess.run([CODESENSE_BIN, "train", "--config", str(cfg), "--json"], capture_output=True, text=True, env=env, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    m = doc["metrics"]
    assert m["probe_loss"] < m["probe_loss_before"], m
    assert [h["step"] for h in doc["history"]] == [3, 6]
    assert m["flavour"] == "lora" and m["tokens_per_s"] > 0 and m["peak_memory_mb"] > 100
    assert doc["version"] == 1 and doc["model"] == "codesense-student"

    # mlflow.set_tracking_uri (earlier tests in this process) exports MLFLOW_TRACKING_URI; the train subprocess ran
    # without it, so resolve the registry the same way here.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    os.environ["CODESENSE_HOME"] = str(home)  # the generator resolves the registry under this home
    try:
        base = build_generator(GeneratorConfig(backend="local", device="cpu", temperature=0.0, max_new_tokens=8), home)
        tuned = build_generator(GeneratorConfig(backend="local", device="cpu", temperature=0.0, max_new_tokens=8,
                                                adapter_path="models:/codesense-student@challenger"), home)
    finally:
        os.environ.pop("CODESENSE_HOME", None)
    assert tuned.model == "models:/codesense-student@challenger"
    with torch.inference_mode():
        base_logits = base._model(**base._inputs(PROMPT)).logits[0, -1]
        tuned_logits = tuned._model(**tuned._inputs(PROMPT)).logits[0, -1]
    assert (base_logits - tuned_logits).abs().max().item() > 1e-3
