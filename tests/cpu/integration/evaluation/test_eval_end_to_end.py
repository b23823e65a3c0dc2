"""`codesense eval` end to end on a real index of the payments fixture (local Ray, embedded Qdrant, MiniLM)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from codesense_ray.app.cli.main import main
from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
DATASET = HERE / "fixture_questions.jsonl"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One indexed copy of the payments service for the module, built by `codesense index` in a subprocess."""
    root = tmp_path_factory.mktemp("evalproject")
    shutil.copytree(PAYMENTS, root / "payments")
    write_config(root, [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
                 index={"in_process_max_files": 1000})  # stages in-process: the Ray Data path is tested in test_indexing
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CODESENSE_HOME"] = str(root / ".codesense")
    res = subprocess.run([CODESENSE_BIN, "index", "--config", str(root / "codesense.yaml"), "--no-progress", "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return root


@pytest.fixture
def run(project, monkeypatch, capsys):
    """`codesense eval ...` in-process against the module's project: returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("CODESENSE_HOME", str(project / ".codesense"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(["eval", "--config", str(project / "codesense.yaml"), "--no-progress", *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return invoke


def test_retrieval_only_json_has_contract_metrics(run, tmp_path):
    """`--retrieval-only --json` prints one JSON document with the contract metric names per k and writes one record per question."""
    rc, out, err = run("--dataset", str(DATASET), "--retrieval-only", "--json", "-k", "1,3,5", "--no-mlflow", "--output", str(tmp_path / "out"))
    assert rc == 0, err
    doc = json.loads(out)
    m = doc["metrics"]
    for base in ("file_hit", "file_all", "chunk_hit"):
        assert all(f"{base}@{k}" in m for k in (1, 3, 5))
    assert doc["mode"] == "retrieval" and doc["ks"] == [1, 3, 5] and doc["mlflow"] is None and doc["gate"] is None
    assert "citation_valid" not in m
    # The fixture questions name their files plainly: the CPU default finds most of them in the top 5.
    assert m["file_hit@5"] >= 0.6 and 0 < m["file_mrr"] <= 1 and m["file_all@5"] <= m["file_hit@5"]
    assert doc["counts"]["questions"] == 5 and doc["counts"]["questions_with_line_gold"] == 4 and doc["counts"]["gold_files_missing"] == 0
    records = [json.loads(line) for line in Path(doc["results_path"]).read_text().splitlines()]
    assert [r["id"] for r in records] == ["jwt-verify", "scopes", "idempotency", "revoked-keys", "auth-files"]
    jwt = records[0]
    assert jwt["files"][0]["rank"] == 1 and jwt["gold_ranks"]["app/auth/jwt.py"] is not None and jwt["chunks"]
    assert records[4]["meta"] == {"tags": ["multi-file"]} and "chunks" not in records[4]


def test_full_answers_summary_table_and_mlflow_run(run, project):
    """A full run (extractive answers) prints the summary table and records an MLflow run with params, metrics and artifacts."""
    from mlflow.tracking import MlflowClient

    rc, out, err = run("--dataset", str(DATASET))
    assert rc == 0, err
    assert "eval fixture_questions: 5 questions, full answers" in out
    for word in ("file_hit", "file_all", "chunk_hit", "file_mrr", "citation_valid", "citation_gold", "answer_latency_s", "results:", "mlflow: run"):
        assert word in out
    run_id = out.split("mlflow: run ", 1)[1].split()[0]
    uri = f"sqlite:///{project / '.codesense' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    r = client.get_run(run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["embedding_model"] == "all-MiniLM-L6-v2" and r.data.params["generator_backend"] == "extractive"
    assert r.data.params["prompt_name"] == "rag-code-assistant" and r.data.params["prompt_version"] not in ("", "unused (retrieval-only)")
    assert r.data.params["index_collection"].startswith("codesense__")
    # Extractive answers cite only retrieved blocks, so every citation verifies.
    assert r.data.metrics["citation_valid"] == 1.0 and 0 <= r.data.metrics["citation_gold"] <= 1
    assert {"file_hit_at_5", "file_all_at_10", "file_mrr", "chunk_hit_at_10", "answer_latency_s"} <= set(r.data.metrics)
    names = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/results.jsonl", "evaluation/hit_at_k.png", "evaluation/rank_histogram.png"} <= names
    # Artifacts live beside the SQLite store, not in the working directory.
    assert r.info.artifact_uri.startswith((project / ".codesense" / "mlartifacts").as_uri())


def test_gate_exit_codes(run, tmp_path):
    """The gate passes with exit 0, and fails with exit 1 naming each metric below its threshold (and ones not computed)."""
    ok = tmp_path / "ok.yaml"
    ok.write_text("file_hit@5: 0.2\nfile_mrr: 0.1\n")
    rc, out, err = run("--dataset", str(DATASET), "--retrieval-only", "--no-mlflow", "--gate", str(ok), "--output", str(tmp_path / "a"))
    assert rc == 0 and "gate: passed" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("file_hit@5: 1.01\nfile_mrr: 0.1\nfaithfulness: 0.5\n")
    rc, out, err = run("--dataset", str(DATASET), "--retrieval-only", "--no-mlflow", "--json", "--gate", str(bad), "--output", str(tmp_path / "b"))
    assert rc == 1
    gate = json.loads(out)["gate"]
    assert gate["passed"] is False and [f["metric"] for f in gate["failures"]] == ["file_hit@5", "faithfulness"]
    assert "codesense: gate failed: file_hit@5 = " in err and "< minimum 1.01" in err
    assert "codesense: gate failed: faithfulness: not computed by this run" in err


def test_bad_gates_file_and_bad_k_exit_2(run, tmp_path, capsys):
    """A malformed gates file and a malformed `-k` are input errors (exit 2) reported before anything runs."""
    bad = tmp_path / "gates.yaml"
    bad.write_text("file_hit@5: high\n")
    rc, out, err = run("--dataset", str(DATASET), "--gate", str(bad))
    assert rc == 2 and out == "" and "expected a number, got 'high'" in err
    with pytest.raises(SystemExit) as exc:
        run("--dataset", str(DATASET), "-k", "1,x")
    assert exc.value.code == 2 and "-k expects comma-separated positive integers" in capsys.readouterr().err


def test_missing_gold_and_unknown_repo_are_warned_and_counted(run, tmp_path):
    """Gold files outside the index (an ignored file) and an unindexed repository produce warnings and counts, not a crash."""
    ds = tmp_path / "odd.jsonl"
    rows = [
        {"id": "ignored", "question": "Where is the debug log?", "repo": "payments", "gold": [{"path": "debug.log"}, {"path": "app/auth/jwt.py"}]},
        {"id": "elsewhere", "question": "How are invoices sent?", "repo": "billing", "gold": [{"path": "invoices.py"}]},
    ]
    ds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, out, err = run("--dataset", str(ds), "--retrieval-only", "--no-mlflow", "--json", "--output", str(tmp_path / "o"))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["counts"]["gold_files_missing"] == 2 and doc["counts"]["questions_repo_not_indexed"] == 1
    assert "codesense: warning: ignored (line 1): gold file(s) not in the index of repository 'payments': debug.log" in err
    assert "codesense: warning: elsewhere (line 2): repository 'billing' is not indexed (indexed: payments)" in err


def test_judge_without_configured_judge_is_skipped(run, tmp_path):
    """`--judge` with no judge configured runs the rest, reports judged metrics as skipped, and says how to configure one."""
    rc, out, err = run("--dataset", str(DATASET), "--retrieval-only", "--judge", "--no-mlflow", "--json", "--output", str(tmp_path / "o"))
    assert rc == 0
    doc = json.loads(out)
    assert doc["judge"]["status"] == "skipped" and "faithfulness" not in doc["metrics"]
    assert "codesense: warning: judged metrics skipped: no judge configured (set evaluation.judge.backend" in err


def test_judge_through_config_and_local_server(project, monkeypatch, capsys, judge_server, tmp_path):
    """With `evaluation.judge` pointing at the local judge, `--judge` adds the DeepEval scores the judge's verdicts imply."""
    import yaml

    data = yaml.safe_load((project / "codesense.yaml").read_text())
    data["evaluation"] = {"judge": {"backend": "openai", "base_url": judge_server.base_url, "model": "judge-7b", "max_retries": 0}}
    cfg_path = tmp_path / "codesense.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("CODESENSE_HOME", str(project / ".codesense"))
    rc = main(["eval", "--config", str(cfg_path), "--dataset", str(DATASET), "--judge", "--no-mlflow", "--no-progress", "--json", "-k", "5", "--limit", "2", "--output", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["judge"] == {"status": "ok", "reason": None, "model": "openai:judge-7b"}
    m = doc["metrics"]
    assert m["faithfulness"] == pytest.approx(0.75) and m["answer_relevancy"] == pytest.approx(0.6)
    # Only the first question has a reference answer, so the context metrics average over it alone.
    assert m["contextual_precision"] == pytest.approx(7 / 12) and m["contextual_recall"] == pytest.approx(0.25)
    assert m["citation_format"] == pytest.approx(0.8) and m["no_hallucination"] == pytest.approx(0.3)
