"""Prepare the GPU check's inputs here (CPU), so the device run needs no network and no Ray.

Writes `.gpu/` (git-ignored via .git/info/exclude): the packaged MiniLM in fp16 (fits the device tool's 64 MiB
transfer limit), the chunks the pipeline's own `ChunkFiles` stage makes from real library code, CPU reference
vectors for the first 256 chunks, and pydantic wheels the device image lacks.

    .venv/bin/python tests/gpu/prepare_gpu_check.py
"""

from __future__ import annotations

import gzip
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / ".gpu"
LIBS = ["httpx", "starlette", "click", "jinja2"]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from codesense_ray.index.embedding import read_model_info
    from codesense_ray.sources.files import select_files
    from codesense_ray.index.stages import ChunkFiles

    OUT.mkdir(exist_ok=True)
    info = read_model_info("all-MiniLM-L6-v2")
    stage = ChunkFiles("all-MiniLM-L6-v2", max_tokens=info.max_seq_length, min_tokens=48)
    texts: list[str] = []
    for lib in LIBS:
        root = Path(importlib.import_module(lib).__file__).parent
        sel = select_files(root, max_file_bytes=1_000_000, max_line_length=1000)
        rows = {"repo_id": [], "path": [], "abs_path": [], "language": [], "file_hash": [], "web_url": [], "ref": []}
        for sf in sel.files:
            for key, value in (("repo_id", lib), ("path", sf.path), ("abs_path", str(sf.abs_path)), ("language", sf.language), ("file_hash", ""), ("web_url", ""), ("ref", "")):
                rows[key].append(value)
        texts.extend(stage(rows)["embed_text"])
    with gzip.open(OUT / "chunks.jsonl.gz", "wt") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(info.path, device="cpu")
    model.max_seq_length = info.max_seq_length
    np.save(OUT / "ref.npy", model.encode(texts[:256], normalize_embeddings=True))
    model.half().save(str(OUT / "minilm-fp16"))
    wheels = OUT / "whl"
    wheels.mkdir(exist_ok=True)
    for pkg in ("pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types", "typing-inspection"):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
             "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64", "-d", str(wheels), pkg],
            check=True,
        )
    print(f"{len(texts)} chunks from {', '.join(LIBS)} → {OUT}")


if __name__ == "__main__":
    main()
