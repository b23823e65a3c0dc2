"""The runner over a scripted retriever and answerer: per-question records, aggregates, bad data, files, MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesense_ray.config import config_from_dict
from codesense_ray.evaluation.dataset import load_dataset
from codesense_ray.evaluation.runner import EvalRunner, run_evaluation
from codesense_ray.answering.generators.base import GeneratorError
from eval_fakes import FakeAnswerer, FakeRetriever

INDEX = {("payments", "app/auth/jwt.py"): 169, ("payments", "app/auth/permissions.py"): 99, ("payments", "app/main.py"): 40, ("docs", "guide.md"): 12}


def dataset(tmp_path: Path, rows: list[dict]):
    p = tmp_path / "set.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_dataset(p)


ROWS = [
    # Gold at file rank 2, line span hit by the chunk at rank 3.
    {"id": "a", "question": "qa", "repo": "payments", "gold": [{"path": "app/auth/jwt.py", "start_line": 78, "end_line": 110}]},
    # Two gold files at ranks 1 and 3; no lines.
    {"id": "b", "question": "qb", "repo": "payments", "gold": [{"path": "app/auth/permissions.py"}, {"path": "./app/main.py"}]},
    # Gold file not in the index: warned, counted, scored as a miss.
    {"id": "c", "question": "qc", "repo": "payments", "gold": [{"path": "app/missing.py"}]},
    # Repository not indexed.
    {"id": "d", "question": "qd", "repo": "billing", "gold": [{"path": "x.py"}]},
]


def retriever() -> FakeRetriever:
    return FakeRetriever(
        index=INDEX,
        files={
            "qa": [("payments", "app/main.py", 0.9), ("payments", "app/auth/jwt.py", 0.8), ("payments", "app/auth/permissions.py", 0.1)],
            "qb": [("payments", "app/auth/permissions.py", 0.9), ("payments", "app/auth/jwt.py", 0.5), ("payments", "app/main.py", 0.4)],
            "qc": [("payments", "app/main.py", 0.9)],
        },
        chunks={
            "qa": [
                ("payments", "app/main.py", 1, 20, 0.9),
                ("payments", "app/auth/jwt.py", 1, 50, 0.8),  # same file, lines before the gold span
                ("payments", "app/auth/jwt.py", 100, 140, 0.7),  # overlaps 78-110
            ]
        },
    )


def test_retrieval_only_metrics_and_records(tmp_path):
    """Aggregates match the hand count over 4 questions; missing gold and an unindexed repo are warned and counted, not fatal."""
    r = retriever()
    report = EvalRunner(r, ks=[1, 3], depth=5).run(dataset(tmp_path, ROWS))
    m = report.metrics
    assert report.mode == "retrieval" and report.ks == [1, 3] and report.depth == 5
    assert m["file_hit@1"] == 0.25 and m["file_hit@3"] == 0.5  # b at rank 1; a at rank 2
    assert m["file_all@1"] == 0.0 and m["file_all@3"] == 0.5  # b's two gold files at ranks 1 and 3
    assert m["file_mrr"] == pytest.approx((0.5 + 1.0) / 4)
    # Only `a` has gold lines, and the overlapping chunk is third.
    assert m["chunk_hit@1"] == 0.0 and m["chunk_hit@3"] == 1.0
    assert "citation_valid" not in m
    c = report.counts
    assert (c["questions"], c["questions_with_line_gold"], c["gold_files"], c["gold_files_missing"]) == (4, 1, 5, 2)
    assert c["questions_all_gold_missing"] == 2 and c["questions_repo_not_indexed"] == 1
    assert any("c (line 3): gold file(s) not in the index of repository 'payments': app/missing.py" in w for w in report.warnings)
    assert any("d (line 4): repository 'billing' is not indexed (indexed: docs, payments)" in w for w in report.warnings)
    by_id = {x["id"]: x for x in report.results}
    assert by_id["a"]["first_gold_rank"] == 2 and by_id["a"]["first_chunk_rank"] == 3
    assert [f["gold"] for f in by_id["a"]["files"]] == [False, True, False]
    assert by_id["b"]["gold_ranks"] == {"app/auth/permissions.py": 1, "app/main.py": 3}
    assert by_id["d"]["error"] == "repository not indexed"
    # One retrieval per question: files and chunks both come from the same candidate list.
    assert [c for c in r.calls if c[1] == "qa"] == [("search", "qa", 50)]
    assert [c for c in r.calls if c[1] == "qb"] == [("search", "qb", 50)]
    assert report.hit_curve == [0.25, 0.5, 0.5, 0.5, 0.5]


def test_question_without_repo_matches_gold_in_any_repository(tmp_path):
    """With no `repo`, retrieval covers all repositories and a gold path matches wherever it is indexed."""
    r = FakeRetriever(index=INDEX, files={"q": [("docs", "guide.md", 0.9)]})
    report = EvalRunner(r, ks=[1]).run(dataset(tmp_path, [{"id": "x", "question": "q", "gold": [{"path": "guide.md"}]}]))
    assert report.metrics["file_hit@1"] == 1.0 and report.counts["gold_files_missing"] == 0


def test_gold_lines_past_end_of_file_are_warned(tmp_path):
    """A gold span beyond the indexed file's last line is a dataset warning (the file is still scored)."""
    rows = [{"id": "x", "question": "q", "repo": "docs", "gold": [{"path": "guide.md", "start_line": 10, "end_line": 30}]}]
    report = EvalRunner(FakeRetriever(index=INDEX), ks=[1]).run(dataset(tmp_path, rows))
    assert any("gold lines 10-30 of guide.md run past its end (line 12)" in w for w in report.warnings)


def test_full_mode_citation_metrics(tmp_path):
    """citation_valid is the share over all citations of the run, citation_gold the share of answers citing gold; a failed answer is recorded."""
    answerer = FakeAnswerer(
        {
            "qa": ("jwt [1] main [2]", [("payments", "app/auth/jwt.py"), ("payments", "app/main.py")], 1),  # 2 valid, 1 invalid, cites gold
            "qb": ("jwt only [1]", [("payments", "app/auth/jwt.py")], 0),  # 1 valid, misses gold
            "qc": GeneratorError("openai", "HTTP 502: bad gateway", 502),
        }
    )
    progress = []
    report = EvalRunner(retriever(), answerer=answerer, ks=[1, 3]).run(dataset(tmp_path, ROWS[:3]), on_progress=lambda d, t: progress.append((d, t)))
    m = report.metrics
    assert report.mode == "full" and progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert m["citation_valid"] == pytest.approx(3 / 4)
    assert m["citation_gold"] == pytest.approx(1 / 3)
    assert m["answer_latency_s"] == 0.5 and m["answer_latency_p95_s"] == 0.5
    assert report.counts["answer_errors"] == 1 and report.counts["citations"] == 4
    by_id = {x["id"]: x for x in report.results}
    assert by_id["c"]["answer"] == {"error": "generator `openai` failed: HTTP 502: bad gateway"}
    assert by_id["a"]["metrics"]["citation_valid"] == pytest.approx(2 / 3)
    assert report.prompt == {"name": "rag-code-assistant", "version": "7", "source": "file"}


def test_runner_with_judge_aggregates_judged_metrics(tmp_path, judge_server):
    """With a judge, per-question judged scores land in the records and their means in the metrics."""
    from codesense_ray.evaluation.deepeval_metrics import build_judge_suite
    from codesense_ray.config.evaluation import JudgeConfig

    suite = build_judge_suite(JudgeConfig(backend="openai", base_url=judge_server.base_url, model="j", metrics=["faithfulness", "contextual_recall"]), home=None)
    rows = [dict(ROWS[0], answer="verify_bearer_token decodes the token. It checks the audience.")]
    answerer = FakeAnswerer({"qa": ("jwt [1]", [("payments", "app/auth/jwt.py")], 0)})
    report = EvalRunner(retriever(), answerer=answerer, judge=suite, ks=[1]).run(dataset(tmp_path, rows))
    assert report.metrics["faithfulness"] == 0.75 and report.metrics["contextual_recall"] == 0.25
    assert report.judge.status == "ok" and report.judge.model == "openai:j"
    assert report.results[0]["judge"]["faithfulness"]["score"] == 0.75


def test_run_evaluation_writes_files_and_logs_mlflow(tmp_path, monkeypatch, mlflow_db):
    """One evaluation writes results.jsonl, summary.json and two PNG plots, and creates one finished MLflow run with
    params, `_at_` metric names and those files as artifacts."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_db)
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    cfg = config_from_dict({"repositories": [{"id": "payments", "path": "p"}]}, base_dir=tmp_path)
    ds = dataset(tmp_path, ROWS[:2])
    answerer = FakeAnswerer({"qa": ("a [1]", [("payments", "app/auth/jwt.py")], 0), "qb": ("b [1]", [("payments", "app/main.py")], 0)})
    outcome = run_evaluation(cfg, ds, ks=[1, 3], retriever=retriever(), answerer=answerer, output_dir=tmp_path / "out")

    out = tmp_path / "out"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b"] and records[0]["metrics"]["file_hit@1"] == 0.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["file_hit@3"] == 1.0 and summary["dataset"]["sha256"] == ds.sha256
    for png in ("hit_at_k.png", "rank_histogram.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    info = outcome.mlflow
    assert info["tracking_uri"] == mlflow_db and info["experiment"] == "codesense-eval"
    client = MlflowClient(tracking_uri=mlflow_db)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "set-full"
    p = run.data.params
    assert p["dataset_sha256"] == ds.sha256 and p["dataset_path"] == str(ds.path) and p["ks"] == "1,3" and p["mode"] == "full"
    assert p["embedding_model"] == "all-MiniLM-L6-v2" and p["generator_backend"] == "extractive"
    assert p["prompt_name"] == "rag-code-assistant" and p["prompt_version"] == "7" and len(p["config_hash"]) == 64
    assert p["index_collection"] == "codesense__fake"
    mm = run.data.metrics
    assert mm["file_hit_at_1"] == 0.5 and mm["file_hit_at_3"] == 1.0 and mm["file_mrr"] == 0.75 and mm["citation_gold"] == 1.0
    assert not any("@" in k for k in mm)
    curve = client.get_metric_history(info["run_id"], "file_hit_curve")
    assert sorted((x.step, x.value) for x in curve)[:3] == [(1, 0.5), (2, 1.0), (3, 1.0)]
    artifacts = {a.path for a in client.list_artifacts(info["run_id"], "evaluation")}
    assert {"evaluation/results.jsonl", "evaluation/summary.json", "evaluation/hit_at_k.png", "evaluation/rank_histogram.png"} <= artifacts
    # The same config gives the same hash; a changed setting gives another.
    assert outcome.params["config_hash"] == p["config_hash"]
    cfg2 = config_from_dict({"repositories": [{"id": "payments", "path": "p"}], "search": {"rrf_k": 10}}, base_dir=tmp_path)
    from codesense_ray.evaluation.mlflow_log import config_hash

    assert config_hash(cfg2) != p["config_hash"]


def test_mlflow_failure_is_a_warning(tmp_path, monkeypatch):
    """An unreachable MLflow does not lose the results: the run finishes with a warning naming the output folder."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    cfg = config_from_dict({}, base_dir=tmp_path)
    outcome = run_evaluation(cfg, dataset(tmp_path, ROWS[:1]), ks=[1], retrieval_only=True, retriever=retriever(), output_dir=tmp_path / "out")
    assert outcome.mlflow is None
    assert any(w.startswith("MLflow logging failed") and str(tmp_path / "out") in w for w in outcome.report.warnings)
    assert (tmp_path / "out" / "results.jsonl").is_file()
