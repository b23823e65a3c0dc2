"""GPU check for fine-tuning (run on a lent GPU machine; not collected by pytest). One command, < 5 minutes:

    PYTHONPATH=. python3 tests/gpu/check_training_gpu.py [--steps 30] [--batch 8] [--seq 256]

What it proves on real hardware, with the project's own training loop (`codesense_ray/training/trainer.py`):
- LoRA (bf16) and QLoRA (bitsandbytes 4-bit NF4) train on CUDA: loss on a fixed probe batch falls; tokens/s and
  peak GPU memory for each;
- unsloth (when installed) for LoRA and QLoRA: the same numbers, side by side;
- a Ray Train `TorchTrainer` worker asking for a *fraction* of a GPU (`resources_per_worker={"GPU": 0.25}`) is
  scheduled on the GPU and trains there (the time-sliced-node setup).

The base model has the exact shape of Gemma 3 270M (18 layers, hidden 640, vocab 262144) with random weights built
from its config: no download is possible on the device machine, and throughput and memory depend on the shape,
not on the weight values. Missing packages (bitsandbytes, unsloth, ray) turn their rows into "skipped: ...".
Prints a compact table and writes `$OUT/training_gpu_check.json` (or /tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

WORDS = ("how where what is are the a token jwt verify refund issue settings load sign request payment service handler "
         "config database retry queue worker cache user session auth scope key rotate revoke webhook invoice ledger").split()


def build_base(root: Path) -> Path:
    """A Gemma 3 270M-shaped model with random weights and a word-level tokenizer, saved as a transformers dir."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "[1]", "`", ".", ":", "?"] + WORDS
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    cfg = Gemma3TextConfig(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4,
                           num_key_value_heads=1, head_dim=256, max_position_embeddings=32768, sliding_window=512,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(cfg).to(torch.bfloat16)
    out = root / "gemma3-270m-shape"
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def write_data(root: Path, n: int = 64) -> Path:
    import random

    rng = random.Random(0)
    rows = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(12))
        ctx = " ".join(rng.choice(WORDS) for _ in range(150))
        a = f"the {rng.choice(WORDS)} {rng.choice(WORDS)} is in `{rng.choice(WORDS)}` [1] ."
        rows.append({"messages": [{"role": "system", "content": "answer from the context cite [1]"},
                                  {"role": "user", "content": f"{ctx} ? {q}"}, {"role": "assistant", "content": a}]})
    path = root / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_flavour(model_dir: Path, data: Path, *, quant: str, unsloth: bool, steps: int, batch: int, seq: int) -> dict:
    import torch

    from codesense_ray.training.trainer import TrainSpec, run_training_loop

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    spec = TrainSpec(model_dir=str(model_dir), base_model=str(model_dir), train_path=str(data), device="cuda", quantization=quant,
                     use_unsloth=unsloth, max_steps=steps, batch_size=batch, max_seq_length=seq, learning_rate=5e-4,
                     checkpoint_every=steps, probe_examples=8)
    reports: list[dict] = []
    started = time.perf_counter()
    final = run_training_loop(spec, lambda m, ckpt: reports.append(m))
    return {"flavour": final["flavour"], "tokens_per_s": round(final["tokens_per_s"], 1), "peak_gpu_mb": round(final["peak_memory_mb"], 1),
            "probe_loss_before": round(final["probe_loss_before"], 4), "probe_loss_after": round(final["probe_loss"], 4),
            "loss_fell": final["probe_loss"] < final["probe_loss_before"], "seconds": round(time.perf_counter() - started, 1)}


def run_ray_fractional(model_dir: Path, data: Path, steps: int, batch: int, seq: int, gpu_share: float = 0.25) -> dict:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from codesense_ray.training.ray_train import train_loop_per_worker
    from codesense_ray.training.trainer import TrainSpec

    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        spec = TrainSpec(model_dir=str(model_dir), base_model=str(model_dir), train_path=str(data), device="cuda", max_steps=steps,
                         batch_size=batch, max_seq_length=seq, learning_rate=5e-4, checkpoint_every=steps)
        started = time.perf_counter()
        trainer = TorchTrainer(train_loop_per_worker, train_loop_config=spec.to_dict(),
                               scaling_config=ScalingConfig(num_workers=1, use_gpu=True, resources_per_worker={"CPU": 1, "GPU": gpu_share}),
                               run_config=RunConfig(name="gpu-check", storage_path=tempfile.mkdtemp(prefix="raytrain-")))
        result = trainer.fit()
        m = result.metrics
        return {"flavour": f"ray-train {m.get('flavour')} GPU={gpu_share}", "tokens_per_s": round(m["tokens_per_s"], 1),
                "peak_gpu_mb": round(m["peak_memory_mb"], 1), "probe_loss_before": round(m["probe_loss_before"], 4),
                "probe_loss_after": round(m["probe_loss"], 4), "loss_fell": m["probe_loss"] < m["probe_loss_before"],
                "seconds": round(time.perf_counter() - started, 1), "checkpoint": result.checkpoint is not None}
    finally:
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    args = ap.parse_args()
    import torch

    env = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-"}
    for pkg in ("transformers", "peft", "bitsandbytes", "unsloth", "ray"):
        env[pkg] = find_spec(pkg) is not None
    print("env:", json.dumps(env))
    if not env["cuda"]:
        print("no CUDA GPU visible: nothing to check")
        return 1
    root = Path(tempfile.mkdtemp(prefix="codesense-train-gpu-"))
    model_dir = build_base(root)
    data = write_data(root)
    plan = [("lora bf16", "none", False, None), ("qlora 4bit", "4bit", False, "bitsandbytes"),
            ("unsloth lora", "none", True, "unsloth"), ("unsloth qlora", "4bit", True, "unsloth")]
    rows = []
    for label, quant, unsloth, needs in plan:
        if needs and not env[needs]:
            rows.append({"case": label, "status": f"skipped: {needs} not installed"})
            continue
        if quant == "4bit" and not env["bitsandbytes"]:
            rows.append({"case": label, "status": "skipped: bitsandbytes not installed"})
            continue
        try:
            rows.append({"case": label, "status": "ok", **run_flavour(model_dir, data, quant=quant, unsloth=unsloth, steps=args.steps, batch=args.batch, seq=args.seq)})
        except Exception as exc:  # noqa: BLE001 - one failing flavour must not hide the others
            traceback.print_exc()
            rows.append({"case": label, "status": f"error: {type(exc).__name__}: {str(exc)[:160]}"})
    if env["ray"]:
        try:
            rows.append({"case": "ray fractional", "status": "ok", **run_ray_fractional(model_dir, data, max(5, args.steps // 3), args.batch, args.seq)})
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            rows.append({"case": "ray fractional", "status": f"error: {type(exc).__name__}: {str(exc)[:160]}"})
    else:
        rows.append({"case": "ray fractional", "status": "skipped: ray not installed"})

    print(f"\n{'case':<16} {'status':<10} {'tokens/s':>10} {'peak GPU MB':>12} {'probe loss':>19} {'s':>6}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['case']:<16} {r['status']}")
            continue
        print(f"{r['case']:<16} {'ok':<10} {r['tokens_per_s']:>10.1f} {r['peak_gpu_mb']:>12.1f} "
              f"{r['probe_loss_before']:>8.3f} → {r['probe_loss_after']:<8.3f} {r['seconds']:>6.1f}")
    out = Path(os.environ.get("OUT", "/tmp")) / "training_gpu_check.json"
    out.write_text(json.dumps({"env": env, "args": vars(args), "rows": rows}, indent=2))
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"].startswith("error") or (r["status"] == "ok" and not r["loss_fell"])]
    print(f"\n{len(ok)} ran, {len(failed)} failed; results in {out}")
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
