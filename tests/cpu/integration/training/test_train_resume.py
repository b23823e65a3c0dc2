"""Resuming a fine-tuning run continues the same optimisation: the checkpoint holds AdamW's moments and step
counters, the learning-rate schedule's position and the step, and a resumed run trains on the batches and
dropout masks an uninterrupted run would have — in process and through Ray Train's restore of a named run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CODESENSE_BIN, write_config
from tests.cpu.integration.training.conftest import tiny_llama, write_dataset

STEPS = 6


def _spec(tmp_path: Path, **kw):
    from codesense_ray.training.trainer import TrainSpec

    base = tmp_path / "tiny-base" if (tmp_path / "tiny-base").is_dir() else tiny_llama(tmp_path)
    data = write_dataset(tmp_path / "data")
    return TrainSpec(model_dir=str(base), base_model=str(base), train_path=str(data / "train.jsonl"), validation_path=str(data / "validation.jsonl"),
                     max_steps=STEPS, batch_size=2, max_seq_length=32, learning_rate=5e-3, lr_schedule="linear", warmup_steps=1,
                     checkpoint_every=3, lora_dropout=0.1, **kw)


def _train(spec, keep: Path) -> dict[int, Path]:
    """Run the loop in process; keep every checkpoint under `keep/<step>`."""
    from codesense_ray.training.trainer import run_training_loop

    kept: dict[int, Path] = {}

    def report(metrics, checkpoint):
        if checkpoint:
            kept[metrics["step"]] = Path(shutil.copytree(checkpoint, keep / str(metrics["step"])))

    run_training_loop(spec, report)
    return kept


def _saved(checkpoint: Path) -> tuple[dict, dict]:
    import torch

    from codesense_ray.training.trainer import OPTIMIZER_STATE, TRAINER_STATE

    return torch.load(checkpoint / OPTIMIZER_STATE, weights_only=True), json.loads((checkpoint / TRAINER_STATE).read_text())


@pytest.mark.slow
def test_resumed_loop_continues_the_uninterrupted_optimisation(tmp_path):
    """Resuming from the step-3 checkpoint reproduces the uninterrupted run's losses of steps 4-6 and ends with
    the same AdamW moments, step counters and schedule position; without the optimizer state it does not."""
    import torch

    from codesense_ray.training.trainer import OPTIMIZER_STATE, build_model, build_optimizer, restore_optimizer

    spec = _spec(tmp_path)
    straight = _train(spec, tmp_path / "straight")
    assert sorted(straight) == [3, 6]
    mid_opt, mid_state = _saved(straight[3])
    assert mid_state["step"] == 3 and len(mid_state["losses"]) == 3
    assert mid_opt["scheduler"]["last_epoch"] == 3 and {int(s["step"]) for s in mid_opt["optimizer"]["state"].values()} == {3}

    # What a resumed worker loads is exactly what was saved.
    model, _, _ = build_model(_spec(tmp_path, resume_from=str(straight[3])))
    optimizer, scheduler = build_optimizer([p for p in model.parameters() if p.requires_grad], spec)
    assert restore_optimizer(straight[3], optimizer, scheduler)
    for i, saved in mid_opt["optimizer"]["state"].items():
        assert torch.equal(optimizer.state_dict()["state"][i]["exp_avg"], saved["exp_avg"])
        assert torch.equal(optimizer.state_dict()["state"][i]["exp_avg_sq"], saved["exp_avg_sq"])

    resumed = _train(_spec(tmp_path, resume_from=str(straight[3])), tmp_path / "resumed")
    assert sorted(resumed) == [6]
    end_opt, end_state = _saved(straight[6])
    got_opt, got_state = _saved(resumed[6])
    assert got_state["step"] == STEPS and got_state["losses"][:3] == mid_state["losses"]
    assert got_state["losses"] == pytest.approx(end_state["losses"], rel=1e-4, abs=1e-5)
    assert got_opt["scheduler"]["last_epoch"] == end_opt["scheduler"]["last_epoch"] == STEPS
    for i, want in end_opt["optimizer"]["state"].items():
        assert int(got_opt["optimizer"]["state"][i]["step"]) == STEPS
        assert torch.allclose(got_opt["optimizer"]["state"][i]["exp_avg"], want["exp_avg"], rtol=1e-4, atol=1e-7)

    # Control: the same resume with cold moments (an adapter-only checkpoint) drifts from the uninterrupted run.
    cold = Path(shutil.copytree(straight[3], tmp_path / "cold-3"))
    (cold / OPTIMIZER_STATE).unlink()
    cold_opt, _ = _saved(_train(_spec(tmp_path, resume_from=str(cold)), tmp_path / "cold")[6])
    first = next(iter(end_opt["optimizer"]["state"]))
    assert int(cold_opt["optimizer"]["state"][first]["step"]) == STEPS - 3
    assert not torch.allclose(cold_opt["optimizer"]["state"][first]["exp_avg"], end_opt["optimizer"]["state"][first]["exp_avg"], rtol=1e-3)


@pytest.mark.slow
def test_ray_train_run_started_again_under_its_name_resumes(tmp_path):
    """`codesense train --run-name R` stopped after 2 steps, then started again with `--max-steps 4`: Ray Train
    hands the workers the step-2 checkpoint (the history keeps its report), the second run writes one checkpoint,
    at step 4, that says the optimizer was restored and carries AdamW step counters and a schedule at 4 and the
    first run's two losses; the registered adapter holds no optimizer state."""
    from codesense_ray.training.trainer import OPTIMIZER_STATE

    home = tmp_path / ".codesense"
    base = tiny_llama(tmp_path)
    write_dataset(tmp_path / "data" / "training" / "distilled")
    train = {"base_model": str(base), "batch_size": 2, "max_seq_length": 32, "checkpoint_every": 2, "cpus_per_worker": 1,
             "learning_rate": 5e-3, "lr_schedule": "linear"}
    cfg = write_config(tmp_path, [], ray={"num_cpus": 2}, training={"train": train})
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CODESENSE_HOME"] = str(home)

    def train_run(*args: str) -> dict:
        res = subprocess.run([CODESENSE_BIN, "train", "--config", str(cfg), "--json", "--run-name", "student-r1", *args],
                             capture_output=True, text=True, env=env, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads(res.stdout)

    first = train_run("--max-steps", "2", "--no-register")
    assert first["metrics"]["step"] == 2
    _, first_state = _saved(_latest_checkpoint(home / "train" / "student-r1"))
    second = train_run("--max-steps", "4")
    assert [h["step"] for h in second["history"]] == [2, 4] and second["metrics"]["step"] == 4 and second["version"] == 1
    assert len([p for p in (home / "train" / "student-r1").glob("checkpoint_*") if p.is_dir()]) == 2
    opt, state = _saved(_latest_checkpoint(home / "train" / "student-r1"))
    assert state["step"] == 4 and state["optimizer_restored"] is True
    assert state["losses"][:2] == first_state["losses"] and len(state["losses"]) == 4
    assert opt["scheduler"]["last_epoch"] == 4
    assert {int(s["step"]) for s in opt["optimizer"]["state"].values()} == {4}
    assert not (Path(second["adapter_dir"]) / OPTIMIZER_STATE).exists()
    assert (Path(second["adapter_dir"]) / "adapter_model.safetensors").is_file()


def _latest_checkpoint(run_dir: Path) -> Path:
    from codesense_ray.training.trainer import TRAINER_STATE

    found = [p.parent for p in run_dir.glob(f"checkpoint_*/{TRAINER_STATE}")]
    assert found, f"no checkpoint under {run_dir}"
    return max(found, key=lambda p: json.loads((p / TRAINER_STATE).read_text())["step"])
