"""An index run: plan what changed, embed only that, carry the rest, check, swap the alias.

Like a `terraform plan` + `apply` for vectors: the live index is the state, the working trees are the
desired configuration, and only the diff (new / changed / deleted files) costs embedding time. The new
version is built beside the live one and promoted by an atomic alias swap (blue/green).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

from codesense_ray.index.chunk_reuse import ReusableVectors, count_gone, load_reusable_vectors
from codesense_ray.config import Config
from codesense_ray.index.embedding import ModelInfo
from codesense_ray.errors import CodesenseError, IndexingFailed, InvalidConfig, NoRollbackTarget
from codesense_ray.sources.files import SourceFile, file_hash, read_text, select_files
from codesense_ray.sources.repositories import RepositoryInfo, resolve_repositories, select_repositories
from codesense_ray.store.qdrant import FileEntry, IndexStore, meta_point_id
from codesense_ray.index.schema import INDEX_SCHEMA


@dataclass
class ReindexPlan:
    """The diff between the live index and the working tree of one repository (paths, sorted)."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def plan_reindex(live: dict[str, FileEntry], current: dict[str, str]) -> ReindexPlan:
    """Compare `live` (path → what the index holds) with `current` (path → content hash)."""
    plan = ReindexPlan()
    for path in sorted(current):
        entry = live.get(path)
        if entry is None:
            plan.new.append(path)
        elif entry.file_hash != current[path]:
            plan.changed.append(path)
        else:
            plan.unchanged.append(path)
    plan.deleted = sorted(set(live) - set(current))
    return plan


@dataclass
class RepoReport:
    """What one index run did to one repository."""

    repo_id: str
    status: str = "ok"  # ok | error | unchanged
    error: str | None = None
    ref: str | None = None
    files_seen: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0
    secrets_redacted: int = 0  # secrets replaced by a marker in the chunks embedded by this run


@dataclass
class IndexSummary:
    """The result of `codesense index` (printed as JSON with `--json`)."""

    collection: str | None
    previous: str | None
    alias: str
    repos: list[RepoReport]
    dropped_versions: list[str] = field(default_factory=list)
    removed_repos: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Repositories in the index but no longer in config, kept because `--prune` was not given.
    stale_repos: list[str] = field(default_factory=list)
    # Unfinished versions left by earlier runs that died (kill -9, OOM), removed by this run.
    partial_versions_removed: list[str] = field(default_factory=list)
    # The quality gate's verdict on the candidate (`--gate`); when it failed, `collection` is still the live
    # version and `candidate` names the new version, kept for inspection and never promoted.
    gate: GateVerdictLike | None = None
    candidate: str | None = None

    @property
    def gate_failed(self) -> bool:
        return self.gate is not None and not self.gate.passed

    @property
    def ok(self) -> bool:
        return all(r.status != "error" for r in self.repos)

    def totals(self) -> dict[str, int]:
        keys = ("files_seen", "files_new", "files_changed", "files_deleted", "chunks_embedded", "chunks_reused", "chunks_deleted", "chunks_total", "secrets_redacted")
        out = {k: sum(getattr(r, k) for r in self.repos) for k in keys}
        skipped: Counter[str] = Counter()
        for r in self.repos:
            skipped.update(r.skipped)
        out["files_skipped"] = sum(skipped.values())
        return out

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "alias": self.alias,
            "collection": self.collection,
            "previous": self.previous,
            "seconds": round(self.seconds, 3),
            "totals": self.totals(),
            "repos": [asdict(r) for r in self.repos],
            "dropped_versions": self.dropped_versions,
            "removed_repos": self.removed_repos,
            "stale_repos": self.stale_repos,
            "partial_versions_removed": self.partial_versions_removed,
            "gate": self.gate.to_dict() if self.gate is not None else None,
            "candidate": self.candidate,
        }


@dataclass
class RunPlan:
    """What one index run will do: per repository its report, the files to embed, the chunks to carry."""

    live: str | None
    compatible: bool  # the live vectors came from this model and schema
    reuse: bool  # incremental: unchanged files carried, changed files' chunks reusable
    reports: dict[str, RepoReport] = field(default_factory=dict)
    tasks: list[dict] = field(default_factory=list)
    # Points copied unchanged into the new version: unchanged files, and everything of repositories not indexed now.
    carry_ids: list[str] = field(default_factory=list)
    changed_ids: list[str] = field(default_factory=list)
    metas: dict[str, dict] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def indexed(self) -> set[str]:
        return {rid for rid, r in self.reports.items() if r.status != "error"}

    @property
    def nothing_changed(self) -> bool:
        return bool(self.live and self.reuse and not self.removed and all(self.reports[rid].status == "unchanged" for rid in self.indexed))

    def report_list(self) -> list[RepoReport]:
        return list(self.reports.values())


class GateVerdictLike(Protocol):
    """What the indexer needs of a gate's verdict (`evaluation.gate.GateVerdict`)."""

    @property
    def passed(self) -> bool: ...

    def to_dict(self) -> dict: ...


#: Evaluates a built, verified candidate version (by collection name) before the alias may move to it.
IndexGate = Callable[[str], GateVerdictLike]


class EmbedAndWrite(Protocol):
    """Chunks, embeds and writes file tasks into a collection, reporting each written chunk
    ({"repo_id", "path", "embed_hash", "reused"}); chunks whose reuse key is in `reuse` keep that vector."""

    def __call__(self, tasks: list[dict], collection: str, on_rows: Callable[[list[dict]], None], reuse: dict[str, list[float]] | None = None) -> None: ...


class Indexer:
    """Runs index passes over the configured repositories into an `IndexStore`.

    `embed_and_write` is the heavy part (the Ray Data pipeline in production); it is passed in so the
    planning, carrying and swap logic stay testable and independent of Ray.
    """

    def __init__(self, cfg: Config, store: IndexStore, model: ModelInfo, embed_and_write: EmbedAndWrite) -> None:
        self.cfg = cfg
        self.store = store
        self.model = model
        self.embed_and_write = embed_and_write

    def run(
        self,
        repo_ids: Iterable[str] = (),
        *,
        full: bool = False,
        prune: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
        gate: IndexGate | None = None,
    ) -> IndexSummary:
        """Index the selected repositories (all when none given): plan → build → verify → gate → promote.

        Raises `IndexingFailed` on a failed write (the previous index keeps serving). Repositories that are in
        the index but no longer in config are carried over (reported as `stale_repos`) unless `prune` is set: a
        config that lost its repositories must not wipe the index. When every selected repository fails, nothing
        is promoted. With `gate`, the candidate version is evaluated after it is built and verified and before
        the alias moves; a failing verdict leaves the alias where it was and keeps the candidate (named in the
        summary).
        """
        started = time.monotonic()
        plan = self.plan(repo_ids, full=full, prune=prune)
        if not plan.indexed:
            # Every selected repository failed: promoting a version now would serve an empty (first run) or
            # merely copied index. The summary reports the errors; `ok` is false, so the CLI exits 1.
            return IndexSummary(plan.live, plan.live, self.store.alias, plan.report_list(), seconds=time.monotonic() - started, stale_repos=plan.stale)
        if plan.nothing_changed:
            return self._keep_live(plan.live, plan.reports, plan.metas, started, plan.stale)
        collection = self.build(plan, on_progress)
        verdict = gate(collection) if gate is not None else None
        if verdict is not None and not verdict.passed:
            # The candidate stays unmarked: never a rollback target, removed by the next run.
            self._count_totals(plan, collection)
            return IndexSummary(
                plan.live, plan.live, self.store.alias, plan.report_list(), removed_repos=plan.removed,
                seconds=time.monotonic() - started, gate=verdict, candidate=collection,
            )  # fmt: skip
        return self.promote(plan, collection, started, verdict)

    def plan(self, repo_ids: Iterable[str] = (), *, full: bool = False, prune: bool = False) -> RunPlan:
        """Scan the selected repositories and diff them against the live version: what to embed, carry, delete."""
        infos = resolve_repositories(self.cfg)
        if not infos:
            raise InvalidConfig("repositories: the list is empty, nothing to index (the existing index is left as it is)")
        repo_ids = list(repo_ids)
        selected = select_repositories(infos, repo_ids) if repo_ids else infos
        live = self.store.live_collection()
        live_metas = self.store.repo_metas(live) if live else {}
        compatible = live is not None and self._compatible(live, live_metas)
        if live and not compatible:
            # A different embedding model: no stored vector can be reused, so every repository is rebuilt.
            selected, full = infos, True
        plan = RunPlan(live=live, compatible=compatible, reuse=compatible and not full)
        manifests = self.store.manifests(live) if compatible else {}
        for info in selected:
            self._plan_repository(info, plan, manifests.get(info.id, {}) if plan.reuse else {})
        gone = sorted(set(live_metas) - {i.id for i in infos})
        plan.removed = gone if prune and not repo_ids else []
        plan.stale = [] if plan.removed else gone
        # Other repositories (and those whose scan failed) are carried over untouched, metadata included.
        for rid in sorted((set(manifests) | set(live_metas)) - plan.indexed - set(plan.removed)):
            plan.carry_ids.extend(cid for entry in manifests.get(rid, {}).values() for cid in entry.chunk_ids)
            plan.carry_ids.append(meta_point_id(rid))
        return plan

    def _plan_repository(self, info: RepositoryInfo, plan: RunPlan, old: dict[str, FileEntry]) -> None:
        """Scan one repository and diff it against `old`, its manifest in the live version (empty: rebuild it)."""
        report = plan.reports[info.id] = RepoReport(info.id, ref=info.ref)
        try:
            files = self._scan(info, report)
        except CodesenseError as err:
            report.status, report.error = "error", str(err)
            return
        diff = plan_reindex(old, {path: fhash for path, (fhash, _) in files.items()})
        report.files_new, report.files_changed = len(diff.new), len(diff.changed)
        report.files_unchanged, report.files_deleted = len(diff.unchanged), len(diff.deleted)
        for path in diff.unchanged:
            plan.carry_ids.extend(old[path].chunk_ids)
        for path in diff.changed:
            plan.changed_ids.extend(old[path].chunk_ids)  # their vectors may be reused chunk by chunk
        report.chunks_reused = sum(len(old[p].chunk_ids) for p in diff.unchanged)
        # Changed files add the old chunks whose embedded text is gone, once the new chunks are known.
        report.chunks_deleted = sum(len(old[p].chunk_ids) for p in diff.deleted)
        if plan.reuse and not (diff.new or diff.changed or diff.deleted):
            report.status = "unchanged"
        plan.tasks.extend(self._task(info, path, *files[path]) for path in diff.new + diff.changed)
        plan.metas[info.id] = self._meta(info, report)

    def build(self, plan: RunPlan, on_progress: Callable[[int, int], None] | None = None) -> str:
        """Fill a new version beside the live one (carry, reuse, embed, metadata) and verify its point count.

        Returns the candidate's collection name. On any failure the partial version is dropped and
        `IndexingFailed` says the previous index is still serving.
        """
        live = plan.live
        collection = self.store.create_version(self.model.dimension)
        try:
            carried = self.store.copy_points(live, collection, ids=plan.carry_ids) if live and plan.compatible else 0
            reusable = load_reusable_vectors(self.store, live, plan.changed_ids) if live and plan.reuse and plan.changed_ids else ReusableVectors()
            written = self._embed(plan.tasks, collection, plan.reports, on_progress, reusable)
            for rid, meta in plan.metas.items():
                meta["chunks"] = plan.reports[rid].chunks_reused + plan.reports[rid].chunks_embedded
                self.store.write_repo_meta(collection, meta)
            self._verify(collection, expected=carried + written + len(plan.metas))
        except BaseException as err:
            # Leave the alias where it was: the previous version keeps serving. Drop the partial one.
            try:
                self.store.drop(collection)
            except Exception:
                pass
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            raise IndexingFailed(f"index run failed, previous index still serving ({live or 'none'}): {err}") from err
        return collection

    def promote(self, plan: RunPlan, collection: str, started: float, verdict: GateVerdictLike | None = None) -> IndexSummary:
        """Mark the verified (and gated) version complete, move the alias to it atomically, apply retention."""
        self.store.mark_complete(collection)  # a version that may serve, and later be a rollback target
        previous = self.store.swap_alias(collection)
        partial = self.store.drop_partial_versions()
        dropped = self.store.drop_old_versions(self.cfg.index.retention)
        self._count_totals(plan, collection)
        return IndexSummary(
            collection, previous, self.store.alias, plan.report_list(), dropped, plan.removed, time.monotonic() - started, plan.stale, partial,
            gate=verdict,
        )  # fmt: skip

    def _count_totals(self, plan: RunPlan, collection: str) -> None:
        """Chunks per repository, counted in the built version itself (one pass for every repository)."""
        manifests = self.store.manifests(collection)
        for rid in plan.indexed:
            plan.reports[rid].chunks_total = sum(len(entry.chunk_ids) for entry in manifests.get(rid, {}).values())

    def _keep_live(self, live: str, reports: dict[str, RepoReport], metas: dict[str, dict], started: float, stale: list[str]) -> IndexSummary:
        """Nothing changed: keep serving the live version as it is (no copy, no swap).

        Only the repository metadata is refreshed in place (a new commit with identical files moves `ref`).
        """
        current = self.store.repo_metas(live)
        for rid, meta in metas.items():
            reports[rid].chunks_total = reports[rid].chunks_reused  # every chunk in its live manifest: nothing changed
            if current.get(rid, {}).get("ref") != meta["ref"]:
                meta["chunks"] = reports[rid].chunks_total
                self.store.write_repo_meta(live, meta)
        partial = self.store.drop_partial_versions()
        return IndexSummary(
            live, live, self.store.alias, list(reports.values()), seconds=time.monotonic() - started, stale_repos=stale, partial_versions_removed=partial
        )

    # --- steps ------------------------------------------------------------------------------------
    def _compatible(self, live: str, metas: dict[str, dict]) -> bool:
        """Vectors can be reused only if they came from the same model, size and payload schema."""
        if self.store.dimension(live) != self.model.dimension:
            return False
        return all(m.get("model") == self.model.name and m.get("schema") == INDEX_SCHEMA for m in metas.values())

    def _scan(self, info: RepositoryInfo, report: RepoReport) -> dict[str, tuple[str, SourceFile]]:
        """Select and hash the repository's files: path → (content hash, file)."""
        root = info.path
        if root is None or not Path(root).exists():
            hint = " (run `codesense converge` first)" if info.host_kind != "local" and info.clone_url else ""
            raise CodesenseError(f"repository '{info.id}': directory {root} does not exist{hint}")
        if not Path(root).is_dir():
            raise CodesenseError(f"repository '{info.id}': {root} is not a directory")
        idx = self.cfg.index
        selection = select_files(
            Path(root), max_file_bytes=idx.max_file_bytes, max_line_length=idx.max_line_length, exclude=idx.exclude, secret_files=self.cfg.secrets.exclude_files
        )
        skipped = Counter(selection.skipped)
        files: dict[str, tuple[str, SourceFile]] = {}
        for sf in selection.files:
            try:
                files[sf.path] = (file_hash(read_text(sf, root)), sf)
            except (OSError, UnicodeDecodeError):
                skipped["unreadable"] += 1
        report.skipped = dict(skipped)
        report.files_seen = len(files)
        if not files:
            raise CodesenseError(f"repository '{info.id}': no indexable files in {root}")
        return files

    @staticmethod
    def _task(info: RepositoryInfo, path: str, fhash: str, sf: SourceFile) -> dict:
        return {
            "repo_id": info.id,
            "path": path,
            "abs_path": str(sf.abs_path),
            "root": str(info.path),
            "language": sf.language,
            "file_hash": fhash,
            "web_url": info.web_url or "",
            "ref": info.ref or "",
        }

    def _meta(self, info: RepositoryInfo, report: RepoReport) -> dict:
        return {
            "repo_id": info.id,
            "ref": info.ref,
            "web_url": info.web_url,
            "host_kind": info.host_kind,
            "root": str(info.path) if info.path else None,
            "model": self.model.name,
            "schema": INDEX_SCHEMA,
            "files": report.files_seen,
            "indexed_at": time.time(),
        }

    def _embed(self, tasks: list[dict], collection: str, reports: dict[str, RepoReport], on_progress, reusable: ReusableVectors) -> int:
        total_files = len(tasks)
        new_hashes: dict[tuple[str, str], list[str]] = {}
        written = 0

        def on_rows(rows: list[dict]) -> None:
            nonlocal written
            written += len(rows)
            for row in rows:
                report = reports[row["repo_id"]]
                if row.get("reused"):
                    report.chunks_reused += 1
                else:
                    report.chunks_embedded += 1
                new_hashes.setdefault((row["repo_id"], row["path"]), []).append(row.get("embed_hash", ""))
                report.secrets_redacted += int(row.get("redactions", 0))
            if on_progress:
                on_progress(len(new_hashes), total_files)

        self.embed_and_write(tasks, collection, on_rows, reuse=reusable.by_hash)
        for rid, report in reports.items():
            report.chunks_deleted += count_gone({k: v for k, v in reusable.old_hashes.items() if k[0] == rid}, new_hashes)
        return written

    def _verify(self, collection: str, expected: int) -> None:
        """The new version must hold exactly what was carried plus what was written before it may serve."""
        actual = self.store.count(collection)
        if actual != expected:
            raise IndexingFailed(f"point count check failed for {collection}: expected {expected}, found {actual}")


def rollback(store: IndexStore, to: str | None = None) -> dict:
    """Move the alias back to a retained version in one atomic operation: `to`, or the newest one older than live.

    Like `kubectl rollout undo`: the retained versions are the revision history (`index.retention` of them).
    Raises `NoRollbackTarget` when there is nothing to go back to or `to` is not a retained version.
    """
    live = store.live_collection()
    versions = store.versions()
    # Only verified, promotable versions: not partial runs, not candidates that failed their gate.
    retained = [v for v in versions if v != live and store.is_complete(v)]
    if to is None:
        older = [v for v in retained if live is None or v < live]
        if not older:
            raise NoRollbackTarget(f"no retained version older than {live or 'the live one'} to roll back to (retained: {', '.join(retained) or 'none'})")
        to = older[-1]
    elif to not in retained:
        raise NoRollbackTarget(f"{to} is not a retained version of {store.alias} (retained: {', '.join(retained) or 'none'}; live: {live or 'none'})")
    previous = store.swap_alias(to)
    return {"alias": store.alias, "previous": previous, "collection": to, "retained": [v for v in store.versions() if v != to]}
