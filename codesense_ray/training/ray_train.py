"""Adapter: fine-tuning as a Ray Train `TorchTrainer` job. The only training module that imports Ray.

`plan_training(cfg)` checks everything a user can get wrong (base model, dataset, CUDA) before any worker
starts and returns a `TrainSpec`; `fit(cfg, spec)` runs the workers and returns the adapter and the metrics.
Each worker asks for `cpus_per_worker` CPUs and, on CUDA, `gpus_per_worker` of a GPU: 0.25 means four
workers share one time-sliced GPU, the same way a pod requests `nvidia.com/gpu` on a time-sliced node.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesense_ray.errors import InvalidConfig
from codesense_ray.training.data import dataset_files, load_examples
from codesense_ray.config.training import TrainingConfig, training_config  # noqa: F401
from codesense_ray.training.trainer import OPTIMIZER_STATE, TrainSpec


@dataclass
class TrainResult:
    """What a finished training run produced: the adapter directory and its metrics (last and per report)."""

    adapter_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    spec: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"adapter_dir": str(self.adapter_dir), "metrics": self.metrics, "history": self.history, "seconds": round(self.seconds, 2)}


def dataset_dir(cfg, override: str | None = None) -> Path:
    tcfg = training_config(cfg)
    if override:
        return cfg.resolve_path(override)
    if tcfg.train.dataset:
        return cfg.resolve_path(tcfg.train.dataset)
    return cfg.resolve_path(tcfg.distill.output_dir) / tcfg.distill.name


def resolve_base_model(base_model: str, gguf_file: str | None, home: Path) -> Path:
    """The transformers directory of the student base (the packaged GGUF is converted once, then cached)."""
    from codesense_ray.answering.generators.local import resolve_model_dir

    try:
        model_dir = resolve_model_dir(base_model, gguf_file, home)
    except InvalidConfig as err:
        raise InvalidConfig(f"training.train.base_model: {err}".replace("generator.local_model: ", "")) from None
    if not (model_dir / "config.json").is_file():
        raise InvalidConfig(f"training.train.base_model: {base_model!r} is not a transformers model directory (no config.json)")
    return model_dir


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _unsloth_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("unsloth") is not None


def plan_training(cfg, *, max_steps: int | None = None, dataset: str | None = None) -> TrainSpec:
    """Validate the configuration and the data, resolve the base model; raise one clear error otherwise."""
    t = training_config(cfg).train
    data_dir = dataset_dir(cfg, dataset)
    train_path, validation_path = dataset_files(data_dir)
    load_examples(train_path)  # empty or malformed data fails here, before any model loads
    if validation_path is not None:
        load_examples(validation_path)
    cuda = _cuda_available()
    if t.device == "cuda" and not cuda:
        raise InvalidConfig("training.train.device: `cuda` requested but no CUDA GPU is visible (torch.cuda.is_available() is False)")
    device = "cuda" if t.device == "cuda" or (t.device == "auto" and cuda) else "cpu"
    if t.quantization == "4bit" and device != "cuda":
        raise InvalidConfig("training.train.quantization: `4bit` (QLoRA) needs a CUDA GPU; use `none` on CPU")
    model_dir = resolve_base_model(t.base_model, t.gguf_file, cfg.home)
    return TrainSpec(
        model_dir=str(model_dir),
        base_model=t.base_model,
        gguf_file=t.gguf_file,
        train_path=str(train_path),
        validation_path=str(validation_path) if validation_path else None,
        device=device,
        quantization=t.quantization,
        use_unsloth=device == "cuda" and t.use_unsloth == "auto" and _unsloth_installed(),
        lora_r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        target_modules=list(t.target_modules),
        max_steps=max_steps or t.max_steps,
        batch_size=t.batch_size,
        max_seq_length=t.max_seq_length,
        learning_rate=t.learning_rate,
        lr_schedule=t.lr_schedule,
        warmup_steps=t.warmup_steps,
        seed=t.seed,
        checkpoint_every=min(t.checkpoint_every, max_steps or t.max_steps),
    )


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs inside every Ray Train worker: device and rank from Ray, the loop from `trainer.py`."""
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from codesense_ray.training.trainer import TrainSpec, run_training_loop

    ctx = ray.train.get_context()
    spec = TrainSpec.from_dict(config)
    if spec.device.startswith("cuda"):
        spec.device = str(ray.train.torch.get_device())
    resume = ray.train.get_checkpoint()  # set when Ray restarts a failed worker, or a run is started again under its name
    if resume is not None:
        spec.resume_from = resume.to_directory()

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None)

    world = ctx.get_world_size()
    prepare = ray.train.torch.prepare_model if world > 1 else None
    run_training_loop(spec, report, rank=ctx.get_world_rank(), world_size=world, prepare_model=prepare)


def check_run_name(run_name: str | None) -> None:
    """A run name is a directory under the storage path: no separators, no leading dot."""
    if run_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", run_name):
        raise InvalidConfig(f"--run-name: {run_name!r} is not a run name (letters, digits, '.', '_', '-')")


def fit(cfg, spec: TrainSpec, *, output: Path | None = None, run_name: str | None = None) -> TrainResult:
    """Run the `TorchTrainer` on the configured Ray (local by default) and copy the final adapter to `output`.

    A `run_name` that already has checkpoints under the storage path resumes that run: Ray Train hands the latest
    checkpoint to the workers (`ray.train.get_checkpoint()`), which restore the adapter, the optimizer and
    schedule state and the step, and continue to `spec.max_steps`."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from codesense_ray.index.pipeline import init_ray

    t = training_config(cfg).train
    check_run_name(run_name)
    use_gpu = spec.device.startswith("cuda")
    resources: dict[str, float] = {"CPU": t.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = t.gpus_per_worker
    storage = cfg.resolve_path(t.output_dir) if t.output_dir else Path(cfg.home) / "train"
    storage.mkdir(parents=True, exist_ok=True)
    name = run_name or time.strftime("student-%Y%m%d-%H%M%S")
    init_ray(cfg)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec.to_dict(),
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=t.max_failures),
        ),
    )
    started = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - started
    if result.error is not None:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    target = output or storage / name / "adapter"
    shutil.rmtree(target, ignore_errors=True)
    with result.checkpoint.as_directory() as ckpt:
        shutil.copytree(ckpt, target, ignore=shutil.ignore_patterns(OPTIMIZER_STATE))  # the adapter, not the training state
    history = result.metrics_dataframe.to_dict("records") if result.metrics_dataframe is not None else [result.metrics]
    keep = ("step", "loss", "probe_loss_before", "probe_loss", "tokens_per_s", "peak_memory_mb", "trainable_params", "flavour", "learning_rate")
    history = [{k: row.get(k) for k in keep if k in row} for row in history]
    metrics = {k: result.metrics.get(k) for k in keep if k in result.metrics}
    return TrainResult(adapter_dir=target, metrics=metrics, history=history, seconds=seconds, spec=spec.to_dict())
