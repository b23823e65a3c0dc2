"""Fine-tuning speed on CPU: LoRA on the packaged Gemma 3 270M with the project's own training loop.

Measures tokens/s (non-padding tokens through forward + backward + optimiser step, model load excluded), peak RSS
of the process, and the probe loss before/after, at a few batch × sequence shapes. Timings on this shared machine
are noisy; compare shapes within one run.

    .venv/bin/python benchmarks/training_throughput.py [--steps 8] [--shapes 4x40,4x128] [--home DIR] [--json out.json]

`--home` reuses an already converted Gemma (`DIR/models/gemma3-270m`); otherwise it is converted once into
`$CODESENSE_HOME` (or `.codesense/`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    ("Where are JWT tokens verified?", "In `verify_token` of app/auth/jwt.py [1]."),
    ("How is a refund issued?", "`issue_refund` creates a refund record and calls the gateway [1]."),
    ("Where are settings loaded?", "`load_settings` reads the environment [2]."),
    ("What signs outgoing requests?", "The `sign_request` helper adds an HMAC header [1]."),
    ("How are idempotency keys stored?", "In the `IdempotencyStore` table with a TTL [1]."),
    ("Who revokes API keys?", "`revoke_key` marks the key revoked and clears the cache [1]."),
]


def write_data(directory: Path, context_words: int) -> Path:
    filler = " ".join(["def handler(request): return process(request)"] * max(1, context_words // 5))
    rows = [{"messages": [{"role": "system", "content": "Answer from the context; cite blocks as [n]."},
                          {"role": "user", "content": f"Context:\n[1] payments:app/auth/jwt.py:L1-L40\n{filler}\n\nQuestion: {q}"},
                          {"role": "assistant", "content": a}]} for q, a in QUESTIONS]
    path = directory / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--shapes", default="4x40,4x128", help="comma-separated BATCHxSEQ")
    ap.add_argument("--home", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from codesense_ray.training.ray_train import resolve_base_model
    from codesense_ray.training.trainer import TrainSpec, train_in_process

    home = Path(args.home or os.environ.get("CODESENSE_HOME") or ROOT / ".codesense")
    t0 = time.perf_counter()
    model_dir = resolve_base_model("packaged-gemma3-270m", None, home)
    print(f"base model {model_dir} ready in {time.perf_counter() - t0:.1f}s")
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    results = []
    for shape in args.shapes.split(","):
        batch, seq = (int(x) for x in shape.lower().split("x"))
        data = write_data(tmp, seq)
        spec = TrainSpec(model_dir=str(model_dir), base_model="packaged-gemma3-270m", train_path=str(data), device="cpu", max_steps=args.steps,
                         batch_size=batch, max_seq_length=seq, learning_rate=1e-3, checkpoint_every=args.steps)
        started = time.perf_counter()
        out = train_in_process(spec, tmp / f"adapter-{shape}")
        final = out["final"]
        row = {"shape": f"{batch}x{seq}", "steps": args.steps, "tokens_per_s": round(final["tokens_per_s"], 1),
               "peak_rss_mb": round(final["peak_memory_mb"], 1), "probe_loss_before": round(final["probe_loss_before"], 4),
               "probe_loss_after": round(final["probe_loss"], 4), "wall_s_with_load": round(time.perf_counter() - started, 1),
               "trainable_params": final["trainable_params"]}
        results.append(row)
        print(json.dumps(row))
    print(f"\n{'shape':>8} {'tokens/s':>10} {'peak RSS MB':>12} {'probe loss':>20}")
    for r in results:
        print(f"{r['shape']:>8} {r['tokens_per_s']:>10.1f} {r['peak_rss_mb']:>12.1f} {r['probe_loss_before']:>9.3f} → {r['probe_loss_after']:<8.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch_threads": __import__("torch").get_num_threads(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
