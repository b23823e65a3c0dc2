"""The `codesense` CLI as a user runs it: subprocesses, exit codes, one-line errors, --json documents."""

from __future__ import annotations

import json
import subprocess

import pytest

from codesense_ray.config import load_config
from codesense_ray.store.qdrant import open_client
from tests.conftest import CODESENSE_BIN, write_config

pytestmark = pytest.mark.slow


def run(project, *args, check=False):
    proc = subprocess.run([CODESENSE_BIN, *args, "--config", str(project / "codesense.yaml")], capture_output=True, text=True, cwd=project, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def test_cli_index_search_status_round_trip(project):
    """index --json, search --json and status --json each print one JSON document with the contract fields."""
    before = run(project, "search", "authorization")
    assert before.returncode == 3 and before.stderr.strip() == "codesense: error: no index yet: run `codesense index`"
    idx = run(project, "index", "--json", check=True)
    summary = json.loads(idx.stdout)
    assert summary["ok"] and summary["totals"]["chunks_embedded"] > 0 and "chunks_reused" in summary["totals"]
    again = json.loads(run(project, "index", "--json", check=True).stdout)
    assert again["totals"]["chunks_embedded"] == 0 and again["collection"] == summary["collection"]
    assert again["totals"]["chunks_reused"] == summary["totals"]["chunks_total"]
    res = json.loads(run(project, "search", "How is authorization implemented?", "-k", "5", "--json", check=True).stdout)
    assert len(res["hits"]) == 5
    for hit in res["hits"]:
        assert {"repo", "path", "start_line", "end_line", "url", "score"} <= set(hit)
    st = json.loads(run(project, "status", "--json", check=True).stdout)
    assert st["collection"] == summary["collection"] and st["repos"][0]["repo"] == "payments" and st["repos"][0]["chunks"] > 0
    human = run(project, "search", "verify_token", check=True).stdout
    assert "app/auth/jwt.py" in human and "https://gitlab.example.com/team/payments/-/blob/main/" in human


@pytest.mark.parametrize(
    "yaml_text, fragment",
    [("index:\n  retension: 1\n", "unknown key `index.retension`"), ("index: [\n", "invalid YAML"), ("embedding:\n  batch_size: big\n", "`embedding.batch_size`")],
)
def test_bad_config_is_one_line_exit_2(project, yaml_text, fragment):
    """Invalid YAML, unknown keys and wrong types: one stderr line naming the key, exit 2."""
    (project / "codesense.yaml").write_text(yaml_text)
    proc = run(project, "status")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


def test_unknown_repo_and_empty_query(project):
    """Unknown --repo and an empty query are one-line errors with a non-zero exit."""
    write_config(project, [{"id": "payments", "path": "payments"}], index={"in_process_max_files": 1000})  # no Ray needed
    run(project, "index", check=True)
    proc = run(project, "search", "x", "--repo", "nope")
    assert proc.returncode == 2 and "unknown repository 'nope'" in proc.stderr
    proc = run(project, "search", "   ")
    assert proc.returncode == 2 and "empty query" in proc.stderr


def test_locked_embedded_storage_is_a_clear_message(project):
    """While another process holds the embedded store, the CLI says so instead of crashing."""
    holder = open_client(load_config(project / "codesense.yaml"))
    try:
        proc = run(project, "status")
        assert proc.returncode == 4 and "in use by another codesense process" in proc.stderr
    finally:
        holder.close()
