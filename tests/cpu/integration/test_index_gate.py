"""`codesense index --gate`: the candidate is evaluated before the alias moves; `codesense index rollback`.

Real components: the indexer (in-process stages), embedded Qdrant, the packaged MiniLM, the evaluation runner
on the candidate collection. Driven through the CLI's `main` in-process, reading its JSON and exit codes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from codesense_ray.app.cli import main
from tests.conftest import PAYMENTS, write_config

DATASET = Path(__file__).parent / "evaluation" / "fixture_questions.jsonl"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    shutil.copytree(PAYMENTS, root / "payments")
    write_config(root, [{"id": "payments", "path": "payments"}], index={"in_process_max_files": 10_000, "retention": 3})
    (root / "pass.yaml").write_text("file_hit@5: 0.5\n")
    (root / "fail.yaml").write_text("file_hit@1: 1.01\n")  # no candidate can pass
    return root


@pytest.fixture
def cli(project, monkeypatch, capsys):
    monkeypatch.setenv("CODESENSE_HOME", str(project / ".codesense"))

    def invoke(*args: str) -> tuple[int, dict | None, str]:
        capsys.readouterr()
        rc = main([*args, "--config", str(project / "codesense.yaml"), "--json"])
        out, err = capsys.readouterr()
        return rc, (json.loads(out) if out.strip() else None), err

    return invoke


def _touch(project: Path, n: int) -> None:
    (project / "payments" / "app" / f"gate_change_{n}.py").write_text(f"def changed_{n}():\n    return {n}\n")


def test_failing_gate_keeps_the_alias_and_the_candidate(project, cli):
    """A candidate that fails the gate is built and kept, the alias does not move, and the run exits 1 naming both."""
    rc, first, _ = cli("index", "--no-progress")
    assert rc == 0 and first["collection"]
    live = first["collection"]
    _touch(project, 1)
    rc, doc, err = cli("index", "--no-progress", "--gate", str(project / "fail.yaml"), "--dataset", str(DATASET))
    assert rc == 1
    assert doc["gate"]["passed"] is False and doc["gate"]["failures"][0]["metric"] == "file_hit@1"
    assert doc["collection"] == live and doc["candidate"] and doc["candidate"] != live
    assert "quality gate failed" in err and doc["candidate"] in err and err.count("\n") == 1
    rc, status, _ = cli("status")
    assert rc == 0 and status["collection"] == live and doc["candidate"] in status["versions"]  # serving live, candidate kept
    # The gate scored the candidate (its new file is indexed there), not the live version.
    assert doc["gate"]["metrics"]["file_hit@5"] is not None


def test_passing_gate_promotes_and_rollback_returns(project, cli):
    """A passing gate moves the alias; `index rollback` moves it back atomically; a bad --to is one line, exit 2."""
    rc, before, _ = cli("index", "--no-progress")
    live = before["collection"]
    _touch(project, 2)
    rc, doc, _ = cli("index", "--no-progress", "--gate", str(project / "pass.yaml"), "--dataset", str(DATASET))
    assert rc == 0 and doc["gate"]["passed"] is True and doc["collection"] != live and doc["previous"] == live
    rc, back, _ = cli("index", "rollback")
    assert rc == 0 and back["collection"] == live and back["previous"] == doc["collection"]
    rc, again, _ = cli("index", "rollback", "--to", doc["collection"])
    assert rc == 0 and again["collection"] == doc["collection"]
    rc, none, err = cli("index", "rollback", "--to", "codesense__19700101T000000000000")
    assert rc == 2 and none is None and "is not a retained version" in err and err.count("\n") == 1


def test_bad_gate_input_fails_before_embedding(project, cli):
    """A malformed gates file or a missing dataset: exit 2, one line, and no new version is created."""
    rc, status, _ = cli("status")
    bad = project / "bad.yaml"
    bad.write_text("file_hit@5: [not, a, number]\n")
    _touch(project, 3)
    rc, doc, err = cli("index", "--no-progress", "--gate", str(bad), "--dataset", str(DATASET))
    assert rc == 2 and doc is None and err.startswith("codesense: error:") and err.count("\n") == 1
    rc, doc, err = cli("index", "--no-progress", "--gate", str(project / "pass.yaml"))  # no evaluation.dataset in this config
    assert rc == 2 and "evaluation.dataset" in err
    rc, after, _ = cli("status")
    assert after == status
