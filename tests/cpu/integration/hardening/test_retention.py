"""Retention counts only verified-complete versions; versions left by killed runs are removed by the next run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import CODESENSE_BIN, ROOT
from tests.cpu.integration.hardening.conftest import REPO_A, IndexEnv, write_repo

pytestmark = pytest.mark.slow

# A run killed after writing part of its new version (kill -9 semantics: no cleanup code runs).
KILLED_RUN = """
import os, sys
from tests.cpu.integration.hardening.conftest import IndexEnv
env = IndexEnv.__new__(IndexEnv)
env.root = __import__("pathlib").Path(sys.argv[1])
cfg, store, indexer = env.open()
real = indexer.embed_and_write

def write_then_die(tasks, collection, on_rows, **kwargs):
    real(tasks[:1], collection, on_rows, **kwargs)
    os._exit(9)

indexer.embed_and_write = write_then_die
indexer.run(full=True)
"""


def _killed_run(root) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CODESENSE_HOME=str(root / ".codesense"))
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(root)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 9, proc.stderr[-2000:]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    write_repo(tmp_path / "a", REPO_A)
    return IndexEnv(tmp_path, [{"id": "a", "path": "a"}], index={"in_process_max_files": 1000, "retention": 1})


def test_killed_runs_do_not_displace_the_last_good_version(project):
    """Complete run, two killed --full runs, complete run: the previous complete version is kept (retention 1),
    the two partial versions are removed and reported."""
    first, snap1 = project.index()
    _killed_run(project.root)
    _killed_run(project.root)
    cfg, store, _ = project.open()
    try:
        versions = store.versions()
        partial = [v for v in versions if not store.is_complete(v)]
        assert len(versions) == 3 and len(partial) == 2 and store.live_collection() == first.collection
    finally:
        store.client.close()
    last, snap = project.index(full=True)
    assert sorted(last.partial_versions_removed) == sorted(partial)
    assert snap["versions"] == [first.collection, last.collection] and snap["live"] == last.collection
    assert last.dropped_versions == []


@pytest.mark.parametrize("retention", [0, 2])  # none kept; two kept and one dropped
def test_retention_counts_complete_versions_only(project, retention):
    """With N complete runs and partial ones in between, exactly `retention` older complete versions remain."""
    project.sections["index"]["retention"] = retention
    project.set_repositories([{"id": "a", "path": "a"}])
    completes = []
    for _ in range(3):
        s, _ = project.index(full=True)
        completes.append(s.collection)
        _killed_run(project.root)
    s, snap = project.index(full=True)
    expected = completes[len(completes) - retention :] if retention else []
    assert snap["versions"] == expected + [s.collection]
    assert len(s.partial_versions_removed) == 1


def test_unchanged_run_still_cleans_partials(project):
    """A run that changes nothing (no new version) still removes a partial version left by a killed run."""
    first, _ = project.index()
    _killed_run(project.root)
    again, snap = project.index()
    assert again.collection == first.collection and len(again.partial_versions_removed) == 1
    assert snap["versions"] == [first.collection]


def test_cli_reports_removed_partials(project):
    """`codesense index --json` lists the removed unfinished versions; the human summary names them."""
    project.index()
    _killed_run(project.root)
    env = dict(os.environ, CODESENSE_HOME=str(project.root / ".codesense"))
    proc = subprocess.run([CODESENSE_BIN, "index", "--full", "--json", "--no-progress", "--config", str(project.root / "codesense.yaml")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)["partial_versions_removed"]) == 1
