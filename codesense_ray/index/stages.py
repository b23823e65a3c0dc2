"""Ray Data stages as plain callables (layer 2): load once in `__init__`, transform a batch in `__call__`.

No `import ray` here: each stage is a pure batch → batch function that the pipeline adapter maps over a
Dataset, and that tests can call directly.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from codesense_ray.config import EmbeddingConfig
from codesense_ray.index.schema import chunk_record
from codesense_ray.index.lexical import definition_names, document_sparse_vector, path_suffixes
from codesense_ray.sources.safe_open import read_inside
from codesense_ray.index.secrets import count_redactions


def _rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: batch[k][i] for k in keys} for i in range(n)]


def _column(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class ChunkFiles:
    """files → chunks. Reads each file, chunks it with tree-sitter under the embedding model's token bound.

    Input rows: repo_id, path, abs_path, language, file_hash, web_url, ref.
    Output rows: id, repo_id, path, embed_text, payload_json.
    """

    def __init__(self, model: str, max_tokens: int, min_tokens: int, redact_secrets: bool = True) -> None:
        from codesense_ray.index.embedding import TokenCounter

        self.count_tokens = TokenCounter(model)
        self.redact_secrets = redact_secrets
        self.max_tokens = max_tokens
        self.min_tokens = min_tokens

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from codesense_ray.chunking import chunk_file
        from codesense_ray.sources.files import decode_source, file_hash

        out: dict[str, list] = {k: [] for k in ("id", "repo_id", "path", "embed_text", "payload_json")}
        for row in _rows(batch):
            row = {k: _column(v) for k, v in row.items()}
            try:
                text = decode_source(read_inside(row["abs_path"], row.get("root") or None))  # never out of the repository
            except (OSError, UnicodeDecodeError):
                continue  # vanished or changed to binary since planning: the next run sees it
            fhash = file_hash(text)  # of the file as it is: the plan compares it with the working tree
            line_count = len(text.rstrip("\n").split("\n"))
            if self.redact_secrets:
                from codesense_ray.index.secrets import scrub_secrets

                text = scrub_secrets(text, row["path"]).text  # same lines, secrets replaced: citations stay exact
            chunks = chunk_file(
                text, row["path"], row["language"], max_tokens=self.max_tokens, min_tokens=self.min_tokens, count_tokens=self.count_tokens
            )
            for chunk in chunks:
                rec = chunk_record(chunk, repo_id=row["repo_id"], web_url=row["web_url"] or None, ref=row["ref"] or None, file_hash=fhash)
                rec["def_names"] = definition_names(rec["definitions"])
                rec["line_count"] = line_count
                rec["path_tails"] = path_suffixes(row["path"])
                rec["redactions"] = count_redactions(chunk.text)
                out["id"].append(rec["id"])
                out["repo_id"].append(row["repo_id"])
                out["path"].append(row["path"])
                out["embed_text"].append(chunk.embed_text)
                out["payload_json"].append(json.dumps(rec))
        return out


class EmbedChunks:
    """chunks → chunks + dense vectors. One model copy per actor; batches are sorted by length inside.

    `reuse` maps reuse keys (`chunk_reuse.embed_hash` of the embedded text) to stored vectors: those chunks
    keep their vector and only the rest reach the model. The model is loaded on the first chunk that needs
    it, so a run that reuses everything never loads it — unless `eager`: a Ray Data actor loads it in its
    constructor, while the parse actors chunk the first files, instead of after the first batch arrives.
    Adds columns `vector`, `embed_hash`, `reused`.
    """

    def __init__(
        self, cfg: EmbeddingConfig | dict, threads: int | None = None, reuse: dict[str, list[float]] | None = None, eager: bool = False
    ) -> None:
        self.cfg = cfg if isinstance(cfg, EmbeddingConfig) else EmbeddingConfig.model_validate(cfg)
        self.threads = threads
        self.reuse = reuse or {}
        self._embedder = self._load() if eager else None

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = self._load()
        return self._embedder

    def _load(self):
        from codesense_ray.index.embedding import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(self.cfg, threads=self.threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from codesense_ray.index.chunk_reuse import embed_or_reuse

        texts = [str(t) for t in batch["embed_text"]]
        batch = dict(batch)
        batch["vector"], batch["embed_hash"], batch["reused"] = embed_or_reuse(texts, self.reuse, lambda todo: self.embedder.embed_documents(todo))
        return batch


def written_rows(batch: dict[str, Any], rows: list[dict] | None = None) -> list[dict[str, Any]]:
    """What the indexer counts for each written chunk (never its text): repo, path, reuse key, whether the vector
    was reused, and how many secrets were redacted in it (from `rows`' payloads, or the batch's `redactions`)."""
    n = len(batch["repo_id"])
    redactions = [r["payload"].get("redactions", 0) for r in rows] if rows is not None else list(batch.get("redactions", [0] * n))
    return [
        {"repo_id": str(r), "path": str(p), "embed_hash": str(h), "reused": bool(u), "redactions": int(x)}
        for r, p, h, u, x in zip(batch["repo_id"], batch["path"], batch["embed_hash"], batch["reused"], redactions)
    ]


def add_sparse_vectors(batch: dict[str, Any]) -> dict[str, Any]:
    """chunks → chunks + code-aware sparse (BM25 tf) vectors, indices and values as JSON lists."""
    indices, values = [], []
    for payload_json in batch["payload_json"]:
        rec = json.loads(payload_json)
        idx, val = document_sparse_vector(rec["header"] + "\n" + rec["text"], rec["path"])
        indices.append(json.dumps(idx))
        values.append(json.dumps(val))
    batch = dict(batch)
    batch["sparse_indices"] = indices
    batch["sparse_values"] = values
    batch.pop("embed_text", None)
    return batch


def rows_for_store(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """A finished batch as rows for `IndexStore.upsert_rows`."""
    rows = []
    for i, pid in enumerate(batch["id"]):
        rows.append(
            {
                "id": str(pid),
                "vector": batch["vector"][i],
                "sparse_indices": json.loads(batch["sparse_indices"][i]),
                "sparse_values": json.loads(batch["sparse_values"][i]),
                "payload": json.loads(batch["payload_json"][i]),
            }
        )
    return rows


class WriteToQdrant:
    """Server mode only: parallel writers, each with its own client (embedded Qdrant allows one process)."""

    def __init__(self, url: str, api_key: str | None, collection: str, timeout_s: float = 30.0) -> None:
        from qdrant_client import QdrantClient

        from codesense_ray.store.qdrant import IndexStore

        self.store = IndexStore(QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s)), alias="", embedded=False)
        self.collection = collection

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = rows_for_store(batch)
        self.store.upsert_rows(self.collection, rows)
        out = {k: list(batch[k]) for k in ("repo_id", "path", "embed_hash", "reused")}
        out["redactions"] = [r["payload"].get("redactions", 0) for r in rows]
        return out
