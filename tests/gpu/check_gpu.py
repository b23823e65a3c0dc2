"""GPU check (run on a lent GPU machine; see tests/gpu/README.md): the embedding stage on CUDA.

Proves on real hardware what CPU tests cannot: `embedding.device: auto` selects CUDA inside the Ray Data
embedding stage (`EmbedChunks`), GPU vectors match the CPU reference, and measures chunks/s at several
batch sizes against the same chunks on this machine's CPU cores (side by side, one run).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from codesense_ray.config import EmbeddingConfig
    from codesense_ray.index.stages import EmbedChunks, add_sparse_vectors

    gpu = ROOT / ".gpu"
    texts = [json.loads(line) for line in gzip.open(gpu / "chunks.jsonl.gz", "rt")]
    ref = np.load(gpu / "ref.npy")
    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}, device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'}")
    print(f"{len(texts)} real chunks")
    results = {}
    for device, batch_sizes in (("auto", (32, 128, 512)), ("cpu", (32,))):
        for bs in batch_sizes:
            cfg = EmbeddingConfig(model=str(gpu / "minilm-fp16"), device=device, batch_size=bs)
            stage = EmbedChunks(cfg)
            picked = stage.embedder.device
            sample = texts if picked != "cpu" else texts[:1024]
            stage({"embed_text": sample[:64]})  # warm-up (CUDA context, kernels)
            if picked != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = stage({"embed_text": sample, "payload_json": [json.dumps({"header": "", "text": t, "path": "x.py"}) for t in sample]})
            if picked != "cpu":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            vecs = out["vector"]
            cos = float(np.min(np.sum(vecs[: len(ref)] * ref, axis=1)))
            sparse = add_sparse_vectors(dict(out))
            key = f"{picked} bs={bs}"
            results[key] = {"chunks_per_s": round(len(sample) / dt, 1), "min_cos_vs_cpu_ref": round(cos, 5), "dim": int(vecs.shape[1])}
            print(f"{key:<14} {len(sample) / dt:>9.1f} chunks/s   min cosine vs CPU fp32 reference {cos:.5f}   sparse rows {len(sparse['sparse_indices'])}")
            assert (device == "auto") == (picked.startswith("cuda")), f"device auto picked {picked}"
            assert cos > 0.995, "GPU vectors differ from the CPU reference"
    out_dir = Path(os.environ.get("OUT", "/tmp"))
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
