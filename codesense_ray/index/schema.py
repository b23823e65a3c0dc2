"""The records that flow through indexing: a chunk of a file as a flat payload, with its deterministic id.

`Chunk` and `Definition` are defined by the chunker (`codesense_ray.chunking.records`, so that chunking
needs nothing from `index`) and re-exported here; `chunk_record` turns a chunk into the one flat dict every
later layer (Ray Data rows, Qdrant payloads, search hits) shares.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict
from typing import Any

from codesense_ray.chunking.records import Chunk, Definition

__all__ = ["DENSE", "INDEX_SCHEMA", "KEYWORD_FIELDS", "META_KEY", "SPARSE", "Chunk", "Definition", "chunk_id", "chunk_record", "content_hash"]

#: Version of the stored layout (payload fields, vector names, tokenisation). A live index of another schema is
#: rebuilt in full on the next run instead of mixing layouts.
INDEX_SCHEMA = 2
#: Named vectors of every point: the dense embedding and the sparse lexical (BM25-style, IDF by Qdrant) vector.
DENSE = "dense"
SPARSE = "lexical"
#: Payload flag of the one vector-less metadata point per repository (ref, host, root, when indexed).
META_KEY = "_meta"
#: Payload fields searched by exact keyword match (indexed as keyword fields on a Qdrant server).
KEYWORD_FIELDS = ("repo_id", "path", "def_names", "path_tails", "language")

# Fixed namespace: chunk ids must be identical across machines and runs (idempotent re-indexing).
_CHUNK_NAMESPACE = uuid.UUID("8c7a3f0e-3c1b-4b7e-9a8e-6a2f51d0c0de")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def chunk_id(repo_id: str, path: str, start_line: int, end_line: int, text_hash: str) -> str:
    """Deterministic point id from (repo, path, span, content): same chunk, same id, on every run."""
    return str(uuid.uuid5(_CHUNK_NAMESPACE, f"{repo_id}\x00{path}\x00{start_line}\x00{end_line}\x00{text_hash}"))


def chunk_record(chunk: Chunk, *, repo_id: str, web_url: str | None, ref: str | None, file_hash: str) -> dict[str, Any]:
    """A chunk plus its repository metadata, as one flat dict (a Ray Data row and a Qdrant payload)."""
    h = content_hash(chunk.text)
    return {
        "id": chunk_id(repo_id, chunk.path, chunk.start_line, chunk.end_line, h),
        "repo_id": repo_id,
        "path": chunk.path,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "language": chunk.language,
        "symbol": chunk.symbol,
        "kind": chunk.kind,
        "text": chunk.text,
        "header": chunk.header,
        "definitions": [asdict(d) for d in chunk.definitions],
        "web_url": web_url,
        "ref": ref,
        "content_hash": h,
        "file_hash": file_hash,
        "oversized": chunk.oversized,
    }
