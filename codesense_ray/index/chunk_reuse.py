"""Chunk-level vector reuse: inside a changed file, a chunk whose embedded text did not change keeps its vector.

File-level reuse (carry every point of an unchanged file) already skips most of the work of an incremental
run; but appending one function to a 2,000-line module would still re-embed all of its chunks. Like a
Docker build cache keyed by the exact content of each layer, the key here is a hash of *exactly what the
model saw* — the chunk's header plus its text (`Chunk.embed_text`) — so a chunk that moved down a few lines
reuses its vector (its payload, line numbers included, is rewritten), while one whose header or merged
neighbours changed is embedded again.

Pure logic apart from `load_reusable_vectors`, which reads the live version through an `IndexStore`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from codesense_ray.store.base import VectorStore as IndexStore

# Ids per retrieve request when reading stored vectors back.
RETRIEVE_BATCH = 256


def embed_hash(embed_text: str) -> str:
    """The reuse key of a chunk: sha256 of the exact text sent to the embedding model."""
    return hashlib.sha256(embed_text.encode("utf-8", "surrogatepass")).hexdigest()


def stored_embed_hash(payload: Mapping) -> str:
    """The reuse key of a stored point, rebuilt from its payload (header + text, as `Chunk.embed_text` joins them)."""
    header, text = payload.get("header") or "", payload.get("text") or ""
    return embed_hash(f"{header}\n{text}" if header else text)


@dataclass
class ReusableVectors:
    """Stored dense vectors of the chunks of changed files, by reuse key, and which keys each file held."""

    by_hash: dict[str, list[float]] = field(default_factory=dict)
    old_hashes: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_hash)


def load_reusable_vectors(store: "IndexStore", collection: str, chunk_ids: Sequence[str]) -> ReusableVectors:
    """Read the dense vectors (and reuse keys) of `chunk_ids` from `collection` — the old chunks of changed files."""
    out = ReusableVectors()
    ids = list(chunk_ids)
    for i in range(0, len(ids), RETRIEVE_BATCH):
        for _, payload, vector in store.dense_points(collection, ids[i : i + RETRIEVE_BATCH], ["repo_id", "path", "header", "text"]):
            key = stored_embed_hash(payload)
            out.old_hashes.setdefault((payload["repo_id"], payload["path"]), []).append(key)
            if vector is not None:
                out.by_hash[key] = list(vector)
    return out


def embed_or_reuse(
    texts: Sequence[str], reuse: Mapping[str, Sequence[float]], embed: Callable[[list[str]], np.ndarray]
) -> tuple[np.ndarray, list[str], list[bool]]:
    """Vectors for `texts`: stored ones where the reuse key is known, `embed` called only for the rest.

    Returns (vectors as float32 rows in input order, reuse keys, reused flags).
    """
    hashes = [embed_hash(t) for t in texts]
    reused = [h in reuse for h in hashes]
    todo = [i for i, r in enumerate(reused) if not r]
    fresh = embed([texts[i] for i in todo]) if todo else None
    if fresh is not None:
        dim = fresh.shape[1]
    elif texts:
        dim = len(reuse[hashes[0]])
    else:
        dim = 0
    vectors = np.empty((len(texts), dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        if reused[i]:
            vectors[i] = np.asarray(reuse[h], dtype=np.float32)
    if fresh is not None:
        vectors[todo] = fresh
    return vectors, hashes, reused


def count_gone(old_hashes: Mapping[tuple[str, str], Sequence[str]], new_hashes: Mapping[tuple[str, str], Sequence[str]]) -> int:
    """Old chunks of changed files whose embedded text no longer exists in the new version of the file (multiset)."""
    gone = 0
    for key, old in old_hashes.items():
        left = Counter(old)
        left.subtract(Counter(new_hashes.get(key, ())))
        gone += sum(n for n in left.values() if n > 0)
    return gone
