"""Index runs on real components: local Ray Data, embedded Qdrant, the packaged MiniLM model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from codesense_ray.config import load_config
from codesense_ray.index.embedding import SentenceTransformerEmbedder
from codesense_ray.errors import IndexingFailed, IndexNotBuilt, RepositoryNotFound
from codesense_ray.app.compose import build_indexer
from codesense_ray.retrieval.retriever import Retriever
from codesense_ray.store.qdrant import IndexStore, open_client
from tests.conftest import PAYMENTS, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray for the module: index runs reuse it instead of starting their own."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def embedder():
    cfg = load_config(Path(__file__).resolve().parents[3] / "codesense.yaml")
    return SentenceTransformerEmbedder(cfg.embedding)


class Env:
    """A project's config, store, indexer and retriever sharing one embedded Qdrant client."""

    def __init__(self, config_path: Path, embedder) -> None:
        self.cfg = load_config(config_path)
        self.store = IndexStore(open_client(self.cfg), self.cfg.index.collection, embedded=True)
        self.indexer = build_indexer(self.cfg, self.store)
        self.retriever = Retriever(self.store, embedder, self.cfg.search)

    def paths(self, repo: str | None = None) -> set[str]:
        live = self.store.live_collection()
        return {p.payload["path"] for p in self.store.scroll(live) if not p.payload.get("_meta") and (repo is None or p.payload["repo_id"] == repo)}

    def ids(self, repo: str) -> set[str]:
        live = self.store.live_collection()
        return {str(p.id) for p in self.store.scroll(live) if p.payload["repo_id"] == repo}


@pytest.fixture
def env(project, embedder):
    e = Env(project / "codesense.yaml", embedder)
    yield e
    e.store.client.close()


def test_search_before_index_says_so(env):
    """Searching an empty store raises IndexNotBuilt with the hint to run `codesense index`."""
    with pytest.raises(IndexNotBuilt, match="run `codesense index`"):
        env.retriever.search("authorization")


def test_index_then_search_finds_jwt_verification(env):
    """A first run embeds every chunk, swaps the alias, and search ranks the JWT module for a JWT question."""
    s = env.indexer.run()
    t = s.totals()
    assert s.ok and s.previous is None and env.store.live_collection() == s.collection
    assert t["chunks_embedded"] == t["chunks_total"] > 20 and t["chunks_reused"] == 0
    assert s.repos[0].skipped.get("lock_file", 0) >= 1 and s.repos[0].skipped.get("ignored", 0) >= 1
    hits = env.retriever.search("How are JWT bearer tokens verified?", k=5)
    assert any(h.path == "app/auth/jwt.py" for h in hits)
    top = hits[0]
    assert top.url.startswith("https://gitlab.example.com/team/payments/-/blob/main/")
    assert top.url.endswith(f"#L{top.start_line}-{top.end_line}") or top.start_line == top.end_line


def test_reindex_unchanged_embeds_nothing_and_keeps_serving(env):
    """Re-indexing unchanged files embeds 0 chunks and keeps the same live collection."""
    first = env.indexer.run()
    second = env.indexer.run()
    assert second.totals()["chunks_embedded"] == 0
    assert second.collection == first.collection
    assert second.totals()["chunks_total"] == first.totals()["chunks_total"]


def test_edit_one_file_embeds_only_its_chunks(env, project):
    """Editing one file re-embeds exactly that file's chunks; all others are carried with their vectors."""
    first = env.indexer.run()
    target = project / "payments" / "app" / "auth" / "permissions.py"
    target.write_text(target.read_text() + "\n\ndef audit_permission_change(user_id: str) -> None:\n    \"\"\"Record a permission change.\"\"\"\n    return None\n")
    second = env.indexer.run()
    t1, t2 = first.totals(), second.totals()
    assert second.collection != first.collection and second.previous == first.collection
    assert t2["files_changed"] == 1 and t2["files_new"] == 0
    live = env.store.live_collection()
    n_target = sum(1 for p in env.store.scroll(live) if p.payload.get("path") == "app/auth/permissions.py")
    # Chunk-level reuse: only the appended function's chunk (and a neighbour it merged into) is embedded.
    assert 1 <= t2["chunks_embedded"] <= 2 < n_target
    assert t2["chunks_reused"] == t2["chunks_total"] - t2["chunks_embedded"]
    assert t2["chunks_reused"] >= t1["chunks_total"] - t2["chunks_deleted"]
    hits = env.retriever.search("audit_permission_change", k=3)
    assert hits[0].path == "app/auth/permissions.py"


def test_deleted_file_chunks_are_gone(env, project):
    """Deleting a file removes its chunks from the live index."""
    env.indexer.run()
    assert "app/db/models.py" in env.paths()
    (project / "payments" / "app" / "db" / "models.py").unlink()
    s = env.indexer.run()
    assert s.totals()["files_deleted"] == 1 and s.totals()["chunks_deleted"] > 0
    assert "app/db/models.py" not in env.paths()


def test_failure_in_embed_stage_leaves_old_index_serving(env, project):
    """A failure midway through embedding leaves the alias on the old collection, still searchable."""
    first = env.indexer.run()
    real = env.indexer.embed_and_write

    def failing(tasks, collection, on_rows, **kwargs):
        def explode(rows):
            on_rows(rows)
            raise RuntimeError("injected embed failure")

        real(tasks, collection, explode, **kwargs)

    env.indexer.embed_and_write = failing
    (project / "payments" / "app" / "auth" / "jwt.py").write_text("def changed():\n    return 1\n")
    with pytest.raises(IndexingFailed, match="previous index still serving"):
        env.indexer.run()
    assert env.store.live_collection() == first.collection
    assert env.store.versions() == [first.collection]  # the partial version was dropped
    assert env.retriever.search("verify JWT token signature", k=3)
    env.indexer.embed_and_write = real
    s = env.indexer.run()  # the next run completes
    assert s.ok and s.collection != first.collection and s.totals()["files_changed"] == 1


def test_one_repo_reindex_never_touches_another(project, embedder):
    """`--repo a` re-embeds only a; b's points (ids) are carried unchanged into the new version."""
    shutil.copytree(PAYMENTS, project / "other")
    # Stages in-process (the other tests here run them on Ray Data): what is tested is which repository is touched.
    write_config(project, [{"id": "payments", "path": "payments"}, {"id": "other", "path": "other"}], index={"in_process_max_files": 1000})
    env = Env(project / "codesense.yaml", embedder)
    env.indexer.run()
    other_ids = env.ids("other")
    (project / "payments" / "README.md").write_text("# Payments\n\nRewritten readme about refunds.\n")
    s = env.indexer.run(["payments"])
    assert [r.repo_id for r in s.repos] == ["payments"]
    assert env.ids("other") == other_ids
    assert s.totals()["chunks_embedded"] >= 1
    with pytest.raises(RepositoryNotFound, match="unknown repository 'nope'"):
        env.indexer.run(["nope"])
    hits = env.retriever.search("refunds readme", k=5, repo_ids=["other"])
    assert hits and all(h.repo == "other" for h in hits)
    env.store.client.close()


def test_missing_repository_is_reported_and_others_indexed(project, embedder):
    """A missing or empty repository is reported with status error; the others are indexed."""
    (project / "empty").mkdir()
    write_config(
        project, [{"id": "payments", "path": "payments"}, {"id": "ghost", "path": "does-not-exist"}, {"id": "empty", "path": "empty"}],
        index={"in_process_max_files": 1000},  # stages in-process: the report is the same on Ray Data
    )
    env = Env(project / "codesense.yaml", embedder)
    s = env.indexer.run()
    status = {r.repo_id: (r.status, r.error) for r in s.repos}
    assert status["payments"][0] == "ok"
    assert status["ghost"][0] == "error" and "does not exist" in status["ghost"][1]
    assert status["empty"][0] == "error" and "no indexable files" in status["empty"][1]
    assert not s.ok and env.paths("payments")
    env.store.client.close()


def test_retention_drops_old_versions(project, embedder):
    """After several changing runs only the live version plus `retention` older ones remain."""
    write_config(project, [{"id": "payments", "path": "payments"}], index={"retention": 1, "in_process_max_files": 1000})
    env = Env(project / "codesense.yaml", embedder)
    readme = project / "payments" / "README.md"
    for i in range(3):
        readme.write_text(f"# Payments v{i}\n")
        env.indexer.run()
    versions = env.store.versions()
    assert len(versions) == 2 and versions[-1] == env.store.live_collection()
    env.store.client.close()
