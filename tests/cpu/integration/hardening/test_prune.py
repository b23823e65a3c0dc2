"""A config without repositories never wipes the index: removal needs --prune, an empty list is an error,
and a run whose every repository failed promotes nothing."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from codesense_ray.errors import InvalidConfig
from tests.conftest import CODESENSE_BIN, write_config
from tests.cpu.integration.hardening.conftest import REPO_A, REPO_B, IndexEnv, write_repo

pytestmark = pytest.mark.slow

A = {"id": "a", "path": "a"}
B = {"id": "b", "path": "b"}


@pytest.fixture
def two_repos(tmp_path, monkeypatch):
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    write_repo(tmp_path / "a", REPO_A)
    write_repo(tmp_path / "b", REPO_B)
    return IndexEnv(tmp_path, [A, B])


def test_removed_repository_kept_without_prune(two_repos):
    """Dropping a repository from config keeps its chunks (reported as stale) until --prune removes them."""
    first, snap = two_repos.index()
    assert first.ok and set(snap["repos"]) == {"a", "b"}
    two_repos.set_repositories([A])
    kept, snap = two_repos.index()
    assert kept.ok and kept.stale_repos == ["b"] and kept.removed_repos == []
    assert snap["repos"]["b"] == {"auth/session.py"}
    pruned, snap = two_repos.index(prune=True)
    assert pruned.removed_repos == ["b"] and pruned.stale_repos == [] and set(snap["repos"]) == {"a"}


@pytest.mark.parametrize("repositories", [[], None])
def test_empty_repository_list_is_an_error(two_repos, repositories):
    """An empty or missing `repositories:` list raises InvalidConfig and leaves the live index untouched."""
    _, before = two_repos.index()
    if repositories is None:
        write_config(two_repos.root, [], **two_repos.sections)
        text = (two_repos.root / "codesense.yaml").read_text().replace("repositories: []\n", "")
        (two_repos.root / "codesense.yaml").write_text(text)
    else:
        two_repos.set_repositories(repositories)
    with pytest.raises(InvalidConfig, match="repositories: the list is empty"):
        two_repos.index(prune=True)
    cfg, store, _ = two_repos.open()
    try:
        assert IndexEnv.snapshot(store) == before
    finally:
        store.client.close()


@pytest.mark.parametrize(
    "broken",
    [
        [{"id": "gone", "path": "does-not-exist"}],
        [{"id": "empty", "path": "empty"}],
        [{"id": "gone", "path": "does-not-exist"}, {"id": "file", "path": "a-file.txt"}],
    ],
)
def test_every_repository_failed_promotes_nothing(tmp_path, monkeypatch, broken):
    """First run with only failing repositories (missing, empty, not a directory): no version, not ok."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file.txt").write_text("x")
    env = IndexEnv(tmp_path, broken)
    summary, snap = env.index()
    assert not summary.ok and summary.collection is None and snap["live"] is None and snap["versions"] == []
    assert all(r.status == "error" for r in summary.repos)


def test_all_failed_keeps_previous_live_version(two_repos):
    """With a live index, a run where every repository fails keeps serving the same version unchanged."""
    _, before = two_repos.index()
    import shutil

    shutil.rmtree(two_repos.root / "a")
    shutil.rmtree(two_repos.root / "b")
    summary, after = two_repos.index()
    assert not summary.ok and summary.collection == before["live"] and after == before


def _cli(project, *args):
    env = dict(os.environ, CODESENSE_HOME=str(project / ".codesense"))
    return subprocess.run([CODESENSE_BIN, *args, "--config", str(project / "codesense.yaml")], capture_output=True, text=True, env=env, timeout=600)


def test_cli_end_to_end(tmp_path):
    """CLI repro: a first all-failed run exits 1 and search still says "no index yet"; an emptied config exits 2
    and keeps the index; a repository dropped from config survives until `index --prune`."""
    write_config(tmp_path, [{"id": "gone", "path": "nowhere"}], index={"in_process_max_files": 1000})
    failed = _cli(tmp_path, "index", "--json", "--no-progress")
    assert failed.returncode == 1 and json.loads(failed.stdout)["collection"] is None
    search = _cli(tmp_path, "search", "refund")
    assert search.returncode == 3 and search.stderr.strip() == "codesense: error: no index yet: run `codesense index`"

    write_repo(tmp_path / "a", REPO_A)
    write_repo(tmp_path / "b", REPO_B)
    write_config(tmp_path, [A, B], index={"in_process_max_files": 1000})
    assert _cli(tmp_path, "index", "--no-progress").returncode == 0
    write_config(tmp_path, [], index={"in_process_max_files": 1000})
    empty = _cli(tmp_path, "index", "--no-progress")
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1 and "repositories" in empty.stderr
    write_config(tmp_path, [A], index={"in_process_max_files": 1000})
    kept = _cli(tmp_path, "index", "--no-progress")
    assert kept.returncode == 0 and "(remove them with --prune): b" in kept.stdout
    hits = json.loads(_cli(tmp_path, "search", "rotate session cookie", "--json").stdout)["hits"]
    assert any(h["repo"] == "b" for h in hits)
    pruned = json.loads(_cli(tmp_path, "index", "--prune", "--json", "--no-progress").stdout)
    assert pruned["removed_repos"] == ["b"]
    hits = json.loads(_cli(tmp_path, "search", "rotate session cookie", "--json").stdout)["hits"]
    assert hits and all(h["repo"] == "a" for h in hits)
