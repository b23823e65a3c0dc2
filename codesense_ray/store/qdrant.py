"""Qdrant index store: versioned collections behind one alias, same code for embedded and server Qdrant.

Blue/green for vectors: every index run fills a new collection `<alias>__<version>`, checks it, and then
moves the alias in one atomic operation — readers never see a half-built index, and a failed run leaves
the alias (the "Service selector") on the old, complete collection.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from qdrant_client import QdrantClient, models

from codesense_ray.config import Config, resolve_secret
from codesense_ray.errors import InvalidConfig, StorageLocked
from codesense_ray.index.schema import DENSE, KEYWORD_FIELDS, META_KEY, SPARSE  # noqa: F401  (re-exported)
from codesense_ray.store.base import FileEntry, VectorStore  # noqa: F401  (re-exported)

_META_NAMESPACE = uuid.UUID("0b5c3d58-8d6f-4bb4-a3c5-2f0c7b1e9a41")
# Collection metadata flag: False while a version is being filled, True once the run verified it. A run that
# dies (kill -9, OOM, node loss) leaves False behind, so retention can tell a partial version from a rollback
# target. Versions written before the flag existed have no metadata and count as complete.
COMPLETE_KEY = "codesense_complete"


def open_client(cfg: Config) -> QdrantClient:
    """Embedded storage (one process at a time) or a Qdrant server, by configuration only."""
    if cfg.qdrant.url:
        return QdrantClient(url=cfg.qdrant.url, api_key=resolve_secret(cfg.qdrant.api_key_env), timeout=int(cfg.qdrant.timeout_s))
    path = cfg.qdrant_path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidConfig(f"qdrant.path: {path} is a file (or under one), not a directory") from None
    except PermissionError:
        raise InvalidConfig(f"qdrant.path: cannot create {path} (permission denied)") from None
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as err:
        if "already accessed" in str(err):
            raise StorageLocked(
                f"embedded index {path} is in use by another codesense process (stop it, or configure `qdrant.url` to share a Qdrant server)"
            ) from None
        raise


def embedded_sqlite(client: QdrantClient, collection: str) -> sqlite3.Connection | None:
    """The SQLite database an embedded (local-mode) collection persists its points in; None on a server.

    Reaches into qdrant-client's local mode (`QdrantLocal.collections[name].storage.storage`): there is no
    public handle. If a client release moves it, None comes back and writes stay correct, only slower.
    """
    collection_obj = getattr(getattr(client, "_client", None), "collections", {}).get(collection)
    conn = getattr(getattr(collection_obj, "storage", None), "storage", None)
    return conn if isinstance(conn, sqlite3.Connection) else None


def meta_point_id(repo_id: str) -> str:
    return str(uuid.uuid5(_META_NAMESPACE, repo_id))


def new_version_name(alias: str) -> str:
    return f"{alias}__{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}"


def _repo_filter(repo_ids: Iterable[str]) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="repo_id", match=models.MatchAny(any=list(repo_ids)))])


class IndexStore:
    """The versioned collections behind `alias` in one Qdrant: embedded (local mode) or a server.

    Implements `VectorStore`. `embedded` is what the configuration chose (`qdrant.url` unset): embedded Qdrant
    scans every point in Python per query and ignores payload indexes; a server builds keyword indexes.
    """

    def __init__(self, client: QdrantClient, alias: str, *, embedded: bool) -> None:
        self.client = client
        self.alias = alias
        self.embedded = embedded

    # --- versions and the alias -------------------------------------------------------------------
    def live_collection(self) -> str | None:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == self.alias:
                return a.collection_name
        return None

    def versions(self) -> list[str]:
        """Collections of this alias, oldest first (names sort by their UTC timestamp)."""
        prefix = f"{self.alias}__"
        return sorted(c.name for c in self.client.get_collections().collections if c.name.startswith(prefix))

    def create_version(self, dimension: int) -> str:
        name = new_version_name(self.alias)
        self.client.create_collection(
            name,
            vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={COMPLETE_KEY: False},
        )
        self._write_without_syncing(name)
        if not self.embedded:  # embedded Qdrant ignores payload indexes (and warns); the server needs them
            for field in KEYWORD_FIELDS:
                self.client.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        return name

    def swap_alias(self, collection: str) -> str | None:
        """Point the alias at `collection` in one atomic request; returns the previous collection."""
        previous = self.live_collection()
        ops: list[Any] = []
        if previous:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=self.alias)))
        self.client.update_collection_aliases(change_aliases_operations=ops)
        return previous

    def mark_complete(self, collection: str) -> None:
        """Record that `collection` was filled and verified: only such versions are rollback targets.

        Embedded: the version's writes are flushed to disk first, so a version marked complete survives a power loss.
        """
        self._sync_to_disk(collection)
        self.client.update_collection(collection, metadata={COMPLETE_KEY: True})

    def _write_without_syncing(self, collection: str) -> None:
        """Embedded: let a version being filled commit without an fsync per point.

        Local mode commits every point in its own SQLite transaction; with the default rollback journal each
        commit waits for the disk (2-7 ms here, most of the cost of carrying unchanged points into a new version).
        A write-ahead log with `synchronous=NORMAL` makes commits append-only and still atomic: a killed process
        loses nothing it committed, only an OS crash or power loss can drop the last commits, and an unfinished
        version is never served (it is not complete until `mark_complete` has flushed it).
        """
        conn = embedded_sqlite(self.client, collection)
        if conn is not None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

    def _sync_to_disk(self, collection: str) -> None:
        """Embedded: copy the write-ahead log into the database file and fsync it; later commits sync again."""
        conn = embedded_sqlite(self.client, collection)
        if conn is not None:
            conn.execute("PRAGMA wal_checkpoint(FULL)")
            conn.execute("PRAGMA synchronous=FULL")

    def is_complete(self, collection: str) -> bool:
        metadata = self.client.get_collection(collection).config.metadata or {}
        return bool(metadata.get(COMPLETE_KEY, True))

    def drop_old_versions(self, retention: int) -> list[str]:
        """Keep the live version and the `retention` newest older *complete* ones; drop older complete ones.

        Partial versions never count towards retention (see `drop_partial_versions`).
        """
        live = self.live_collection()
        versions = self.versions()
        if live not in versions:
            return []
        older = [v for v in versions if v < live and self.is_complete(v)]
        keep = set(older[len(older) - retention :]) if retention else set()
        dropped = [v for v in older if v not in keep]
        for name in dropped:
            self.client.delete_collection(name)
        return dropped

    def drop_partial_versions(self) -> list[str]:
        """Drop versions left unfinished by runs that died before verifying them (never the live one)."""
        live = self.live_collection()
        partial = [v for v in self.versions() if v != live and not self.is_complete(v)]
        for name in partial:
            self.client.delete_collection(name)
        return partial

    def drop(self, collection: str) -> None:
        if self.client.collection_exists(collection) and collection != self.live_collection():
            self.client.delete_collection(collection)

    def dimension(self, collection: str) -> int:
        params = self.client.get_collection(collection).config.params.vectors
        return params[DENSE].size if isinstance(params, dict) else params.size

    # --- reading ----------------------------------------------------------------------------------
    def scroll(
        self, collection: str, flt: models.Filter | None = None, *, with_vectors: bool = False, payload: Any = True, batch: int = 1000
    ) -> Iterator[models.Record]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                collection, scroll_filter=flt, limit=batch, offset=offset, with_payload=payload, with_vectors=with_vectors
            )
            yield from points
            if offset is None:
                return

    def manifests(self, collection: str) -> dict[str, dict[str, FileEntry]]:
        """repo id → file path → content hash and chunk ids, read back from the collection itself in one pass.

        Deriving the manifest from the index (not a side file) means it can never disagree with what is
        actually served, even after an interrupted run. One unfiltered scroll of four payload fields: embedded
        Qdrant evaluates filters point by point in Python, so a filtered scroll per repository cost a full pass each.
        """
        out: dict[str, dict[str, FileEntry]] = {}
        for p in self.scroll(collection, payload=["repo_id", "path", "file_hash", META_KEY]):
            if p.payload.get(META_KEY):
                continue
            files = out.setdefault(p.payload["repo_id"], {})
            files.setdefault(p.payload["path"], FileEntry(p.payload["file_hash"], [])).chunk_ids.append(str(p.id))
        return out

    def repo_metas(self, collection: str) -> dict[str, dict]:
        flt = models.Filter(must=[models.FieldCondition(key=META_KEY, match=models.MatchValue(value=True))])
        return {p.payload["repo_id"]: p.payload for p in self.scroll(collection, flt)}

    def count(self, collection: str, flt: models.Filter | None = None) -> int:
        return self.client.count(collection, count_filter=flt, exact=True).count

    def count_chunks(self, collection: str, repo_id: str | None = None) -> int:
        must: list[Any] = [models.FieldCondition(key="repo_id", match=models.MatchValue(value=repo_id))] if repo_id else []
        not_meta = [models.FieldCondition(key=META_KEY, match=models.MatchValue(value=True))]
        return self.count(collection, models.Filter(must=must, must_not=not_meta))

    # --- writing ----------------------------------------------------------------------------------
    def upsert_rows(self, collection: str, rows: list[dict]) -> int:
        """Write embedded chunk rows: {"id", "vector", "sparse_indices", "sparse_values", "payload"}."""
        if not rows:
            return 0
        points = [
            models.PointStruct(
                id=r["id"],
                vector={
                    DENSE: [float(x) for x in r["vector"]],
                    SPARSE: models.SparseVector(indices=[int(i) for i in r["sparse_indices"]], values=[float(v) for v in r["sparse_values"]]),
                },
                payload=r["payload"],
            )
            for r in rows
        ]
        self.client.upsert(collection, points=points, wait=True)
        return len(points)

    def copy_points(self, src: str, dst: str, *, ids: list[str] | None = None, batch: int = 512) -> int:
        """Carry points (vectors and payload, unchanged) into another version: reuse, never re-embed.

        `ids`: these points (ids `src` does not hold are skipped); None: every point. Returns how many were copied.
        """
        copied = 0
        for records in self._read_points(src, ids, batch):
            if records:
                self.client.upsert(dst, points=[models.PointStruct(id=r.id, vector=r.vector or {}, payload=r.payload) for r in records], wait=True)
                copied += len(records)
        return copied

    def _read_points(self, collection: str, ids: list[str] | None, batch: int) -> Iterator[list[models.Record]]:
        """`ids` (or every point) of `collection` with payload and vectors, `batch` at a time."""
        if ids is not None:
            for i in range(0, len(ids), batch):
                yield self.client.retrieve(collection, ids=ids[i : i + batch], with_payload=True, with_vectors=True)
            return
        offset = None
        while True:
            records, offset = self.client.scroll(collection, limit=batch, offset=offset, with_payload=True, with_vectors=True)
            yield records
            if offset is None:
                return

    def dense_points(self, collection: str, ids: Sequence[str], fields: Sequence[str]) -> list[tuple[str, dict, list[float] | None]]:
        """(id, payload with `fields`, dense vector) of points `ids` of `collection` (chunk-level vector reuse)."""
        out = []
        for rec in self.client.retrieve(collection, ids=list(ids), with_payload=list(fields), with_vectors=[DENSE]):
            vector = (rec.vector or {}).get(DENSE) if isinstance(rec.vector, dict) else rec.vector
            out.append((str(rec.id), rec.payload, vector))
        return out

    def write_repo_meta(self, collection: str, meta: dict) -> None:
        """A vector-less point per repository: ref, host, root, when indexed (read by status and links)."""
        payload = {**meta, META_KEY: True, "indexed_at": meta.get("indexed_at") or time.time()}
        self.client.upsert(collection, points=[models.PointStruct(id=meta_point_id(meta["repo_id"]), vector={}, payload=payload)], wait=True)

    def pinned(self, collection: str) -> IndexStore:
        """A view of this store whose queries read `collection` instead of the alias (to evaluate a candidate)."""
        return PinnedVersion(self.client, collection, embedded=self.embedded)

    # --- queries on the live version (the retrieval side of `VectorStore`) ---------------------------
    def dense_search(self, vectors: Sequence[Sequence[float]], n: int, repo_ids: Sequence[str] = ()) -> list[list[str]]:
        """Per query vector, the ids of the `n` nearest chunks (cosine), best first; one batched request."""
        flt = _repo_filter(repo_ids) if repo_ids else None
        requests = [models.QueryRequest(query=[float(x) for x in v], using=DENSE, limit=n, filter=flt) for v in vectors]
        return [[str(p.id) for p in r.points] for r in self.client.query_batch_points(self.alias, requests=requests)]

    def sparse_search(self, indices: Sequence[int], values: Sequence[float], n: int, repo_ids: Sequence[str] = ()) -> list[str]:
        """Ids of the `n` best chunks by the IDF-weighted sparse dot product, best first."""
        if not indices:
            return []
        res = self.client.query_points(
            self.alias,
            query=models.SparseVector(indices=list(indices), values=list(values)),
            using=SPARSE,
            limit=n,
            query_filter=_repo_filter(repo_ids) if repo_ids else None,
            with_payload=False,
        )
        return [str(p.id) for p in res.points]

    def keyword_matches(self, key: str, values: Sequence[str], repo_ids: Sequence[str], fields: Sequence[str], limit: int) -> list[tuple[str, dict]]:
        """(id, payload with `fields`) of up to `limit` chunks whose keyword list `key` holds any of `values`."""
        must: list[Any] = [models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))]
        if repo_ids:
            must.append(models.FieldCondition(key="repo_id", match=models.MatchAny(any=list(repo_ids))))
        records, _ = self.client.scroll(self.alias, scroll_filter=models.Filter(must=must), limit=limit, with_payload=list(fields))
        return [(str(r.id), r.payload) for r in records]

    def payloads(self, ids: Sequence[str]) -> dict[str, dict]:
        """Full payloads of the live version's points `ids` (unknown ids are absent)."""
        if not ids:
            return {}
        return {str(r.id): r.payload for r in self.client.retrieve(self.alias, ids=list(ids), with_payload=True)}

    def line_count(self, repo_id: str, path: str) -> int | None:
        """Lines of an indexed file in the live version (None when that path is not indexed for the repository)."""
        flt = models.Filter(
            must=[
                models.FieldCondition(key="repo_id", match=models.MatchValue(value=repo_id)),
                models.FieldCondition(key="path", match=models.MatchValue(value=path)),
            ]
        )
        records, _ = self.client.scroll(self.alias, scroll_filter=flt, limit=64, with_payload=["line_count", "end_line"])
        if not records:
            return None
        return max(r.payload.get("line_count") or r.payload.get("end_line", 0) for r in records)


class PinnedVersion(IndexStore):
    """An `IndexStore` fixed on one collection version: "live" is that version, whatever the alias says.

    Used by the index gate to evaluate a candidate before the alias moves to it.
    """

    def live_collection(self) -> str | None:
        return self.alias if self.client.collection_exists(self.alias) else None
