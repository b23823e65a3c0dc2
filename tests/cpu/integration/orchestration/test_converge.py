"""`codesense converge`: file:// git repositories cloned into data/raw/, pinned, recorded, versioned with DVC."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codesense_ray.config import load_config
from codesense_ray.orchestration.converge import converge
from codesense_ray.orchestration.data_versioning import DvcProject, version_raw_data
from codesense_ray.errors import MissingCredentials
from codesense_ray.config.orchestration import ConvergeConfig, DvcConfig, S3RemoteConfig
from codesense_ray.sources.repositories import REF_FILE, read_ref_history, resolve_repositories
from tests.cpu.integration.orchestration.conftest import git, write_yaml


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def config_for(project: Path, repos: list[dict]) -> Path:
    return write_yaml(project / "codesense.yaml", {"repositories": repos})


def test_converge_clones_at_pinned_refs_records_sha_and_strips_git(project, make_repo):
    """HEAD, a pinned commit and a pinned tag land in data/raw/<id>/ with their SHA in .codesense-ref and no .git."""
    app = make_repo("app")
    first = app.commit({"main.py": "print('v1')\n"}, "v1")
    app.tag("v1.0")
    head = app.commit({"main.py": "print('v2')\n", "lib/util.py": "X = 1\n"}, "v2")
    cfg_path = config_for(
        project,
        [{"url": app.url}, {"url": app.url, "id": "app-pinned", "ref": first}, {"url": app.url, "id": "app-tag", "ref": "v1.0"}],
    )
    summary = converge(load_config(cfg_path), dvc_cfg=DvcConfig(enabled=False))

    assert summary.ok, summary.to_dict()
    by_id = {r.id: r for r in summary.repos}
    assert {r.status for r in summary.repos} == {"cloned"}
    assert (by_id["app"].commit, by_id["app-pinned"].commit, by_id["app-tag"].commit) == (head, first, first)
    raw = project / "data" / "raw"
    assert (raw / "app" / "lib" / "util.py").read_text() == "X = 1\n"
    assert (raw / "app-pinned" / "main.py").read_text() == "print('v1')\n" and not (raw / "app-pinned" / "lib").exists()
    for rid, history in (("app", [head, first]), ("app-pinned", [first]), ("app-tag", [first])):
        assert read_ref_history(raw / rid) == history  # the snapshot's commit, then its ancestors (converge.history)
        assert not (raw / rid / ".git").exists()
    refs = {info.id: info.ref for info in resolve_repositories(load_config(cfg_path))}
    assert refs["app"] == head  # links use the recorded commit when the entry pins nothing


def test_converge_is_idempotent_and_follows_new_commits(project, make_repo):
    """A second run leaves unchanged snapshots alone; a new upstream commit updates only that repository."""
    a, b = make_repo("a"), make_repo("b")
    a.commit({"a.py": "A = 1\n"})
    b_sha = b.commit({"b.py": "B = 1\n"})
    cfg = load_config(config_for(project, [{"url": a.url}, {"url": b.url}]))
    off = DvcConfig(enabled=False)
    converge(cfg, dvc_cfg=off)
    marker = project / "data" / "raw" / "b" / "b.py"
    before = marker.stat().st_mtime_ns

    again = converge(cfg, dvc_cfg=off)
    assert [r.status for r in again.repos] == ["unchanged", "unchanged"]

    new_a = a.commit({"a.py": "A = 2\n"})
    third = converge(cfg, dvc_cfg=off)
    status = {r.id: (r.status, r.commit, r.previous) for r in third.repos}
    assert status["a"][0] == "updated" and status["a"][1] == new_a
    assert status["b"] == ("unchanged", b_sha, b_sha)
    assert (project / "data" / "raw" / "a" / "a.py").read_text() == "A = 2\n"
    assert marker.stat().st_mtime_ns == before


def test_converge_records_history_so_freshness_counts_commits_behind(project, make_repo):
    """With a depth-1 snapshot, converge still records `converge.history` commit ids: an index built three commits
    ago is 3 behind (`codesense_index_commits_behind`), one outside the recorded history has no count, only `behind`."""
    from codesense_ray.monitoring.metrics import freshness_gauge_values
    from codesense_ray.monitoring.state import converged_histories, current_refs

    repo = make_repo("svc")
    shas = [repo.commit({"svc.py": f"V = {i}\n"}, f"v{i}") for i in range(5)]
    cfg = load_config(write_yaml(project / "codesense.yaml", {"repositories": [{"url": repo.url}], "converge": {"history": 4}}))
    assert converge(cfg, dvc_cfg=DvcConfig(enabled=False)).ok
    histories = converged_histories(cfg)
    assert histories == {"svc": shas[::-1][:4]}
    gauges = lambda indexed: freshness_gauge_values({"svc": {"ref": indexed}}, current_refs(cfg), histories=histories)  # noqa: E731
    assert gauges(shas[1][:7])["codesense_index_commits_behind"] == [({"repo": "svc"}, 3.0)]
    assert gauges(shas[4])["codesense_index_commits_behind"] == [({"repo": "svc"}, 0.0)]
    older = gauges(shas[0])  # five commits back, the history holds four
    assert older["codesense_index_commits_behind"] == [] and older["codesense_index_behind"] == [({"repo": "svc"}, 1.0)]


def test_failing_repository_is_reported_and_others_converge(project, make_repo, codesense_main, capsys, monkeypatch):
    """A repository that cannot be cloned is `failed` with git's reason; the others converge; exit code 1."""
    good = make_repo("good")
    good.commit({"ok.py": "OK = True\n"})
    missing = (project.parent / "sources" / "missing").as_uri()
    cfg_path = config_for(project, [{"url": missing, "id": "missing"}, {"url": good.url}])
    monkeypatch.chdir(project)

    code = codesense_main(["converge", "--config", str(cfg_path), "--json"])
    payload = json.loads(capsys.readouterr().out)

    assert code == 1 and payload["ok"] is False
    repos = {r["id"]: r for r in payload["repos"]}
    assert repos["missing"]["status"] == "failed" and "does not appear to be a git repository" in repos["missing"]["error"]
    assert repos["good"]["status"] == "cloned" and (project / "data" / "raw" / "good" / "ok.py").is_file()
    assert payload["dvc"]["status"] == "pushed"  # what did converge is still versioned


def test_converge_prunes_repositories_dropped_from_config(project, make_repo):
    """A data/raw/<id> whose repository left the config is removed (and reported), like terraform destroying a dropped resource."""
    keep, drop = make_repo("keep"), make_repo("drop")
    keep.commit({"k.py": "K = 1\n"})
    drop.commit({"d.py": "D = 1\n"})
    off = DvcConfig(enabled=False)
    converge(load_config(config_for(project, [{"url": keep.url}, {"url": drop.url}])), dvc_cfg=off)
    summary = converge(load_config(config_for(project, [{"url": keep.url}])), dvc_cfg=off)
    assert summary.removed == ["drop"]
    assert sorted(p.name for p in (project / "data" / "raw").iterdir()) == ["keep"]


def test_dvc_round_trip_restores_identical_content(project, make_repo):
    """converge → dvc push to the local remote → delete data/raw and the cache → dvc pull → identical file hashes."""
    repo = make_repo("svc")
    repo.commit({"svc/app.py": "def handler():\n    return 42\n", "README.md": "# svc\n", "deep/a/b/c.txt": "c\n"})
    cfg = load_config(config_for(project, [{"url": repo.url}]))
    summary = converge(cfg)
    assert summary.ok and summary.dvc.status == "pushed" and summary.data_version.endswith(".dir")
    raw = project / "data" / "raw"
    expected = tree_hashes(raw)
    remote = cfg.home / "dvc-remote"
    assert remote.is_dir() and any(remote.rglob("*"))

    shutil.rmtree(raw)
    shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
    DvcProject(project).pull()

    assert tree_hashes(raw) == expected
    assert (raw / "svc" / REF_FILE).read_text().strip() == summary.repos[0].commit
    # Nothing machine-specific is in the shareable config: the local remote lives in config.local.
    assert "dvc-remote" not in (project / ".dvc" / "config").read_text()
    assert "dvc-remote" in (project / ".dvc" / "config.local").read_text()


def test_dvc_in_a_git_project_uses_scm_and_keeps_credentials_out(tmp_path, make_repo, monkeypatch):
    """In a git work tree DVC initialises with SCM: data/raw is git-ignored, raw.dvc is what git tracks, S3 keys stay in config.local."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    project = tmp_path / "gitproject"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    repo = make_repo("svc")
    repo.commit({"a.py": "A = 1\n"})
    cfg = load_config(config_for(project, [{"url": repo.url}]))
    converge(cfg, dvc_cfg=DvcConfig(enabled=False))
    monkeypatch.setenv("TEST_S3_KEY", "AKIA-test")
    monkeypatch.setenv("TEST_S3_SECRET", "s3cr3t")
    s3 = S3RemoteConfig(bucket="ml-data", endpoint_url="https://minio.example.com", access_key_id_env="TEST_S3_KEY", secret_access_key_env="TEST_S3_SECRET")

    result = version_raw_data(cfg, DvcConfig(s3=s3, push=False), project / "data" / "raw")

    assert result.status == "committed" and result.remote_url == "s3://ml-data/codesense", result
    assert "/raw" in (project / "data" / ".gitignore").read_text().split()
    shared, local = (project / ".dvc" / "config").read_text(), (project / ".dvc" / "config.local").read_text()
    assert "s3://ml-data/codesense" in shared and "minio.example.com" in shared and "s3cr3t" not in shared and "AKIA" not in shared
    assert "s3cr3t" in local and "AKIA-test" in local
    ignored = subprocess.run(["git", "check-ignore", ".dvc/config.local", "data/raw/svc/a.py"], cwd=project, capture_output=True, text=True)
    assert ignored.stdout.split() == [".dvc/config.local", "data/raw/svc/a.py"]


def test_missing_s3_credentials_name_the_env_var_before_cloning(project, make_repo, monkeypatch):
    """With an S3 remote and its key env var unset, converge stops before cloning and names the variable."""
    repo = make_repo("svc")
    repo.commit({"a.py": "A = 1\n"})
    monkeypatch.delenv("CODESENSE_TEST_MISSING_KEY", raising=False)
    monkeypatch.setenv("CODESENSE_TEST_SECRET", "x")
    s3 = S3RemoteConfig(bucket="b", access_key_id_env="CODESENSE_TEST_MISSING_KEY", secret_access_key_env="CODESENSE_TEST_SECRET")
    with pytest.raises(MissingCredentials, match="CODESENSE_TEST_MISSING_KEY"):
        converge(load_config(config_for(project, [{"url": repo.url}])), ConvergeConfig(), DvcConfig(s3=s3))
    assert not (project / "data" / "raw" / "svc").exists()


def test_converge_job_entrypoint_runs_without_ray(project, make_repo):
    """`python jobs/converge.py --config ... --json` (what the Ray job runs) exits 0 and prints the summary."""
    repo = make_repo("svc")
    repo.commit({"a.py": "A = 1\n"})
    cfg_path = config_for(project, [{"url": repo.url}])
    root = Path(__file__).resolve().parents[4]
    proc = subprocess.run(
        [sys.executable, "jobs/converge.py", "--config", str(cfg_path), "--json"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["repos"][0]["status"] == "cloned"
