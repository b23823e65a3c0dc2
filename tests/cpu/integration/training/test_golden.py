"""The golden set from real MLflow traces written by `codesense ask` (extractive generator): good traces kept with
gold = the cited files and lines, negative feedback and near-duplicates dropped, counts by reason."""

from __future__ import annotations

import json

import pytest

from codesense_ray.app.cli.main import main
from codesense_ray.evaluation.dataset import load_dataset
from codesense_ray.training.golden import TracedAnswer, select_golden
from codesense_ray.config.training import GoldenConfig


@pytest.mark.slow
def test_golden_set_from_ask_traces(indexed_project, monkeypatch, capsys):
    """Three asks (one a near-duplicate, one with negative feedback) → one golden question in the evaluation
    contract whose gold spans are exactly the sources the answer cited."""
    import mlflow
    from mlflow.entities import AssessmentSource

    monkeypatch.setenv("CODESENSE_HOME", str(indexed_project / ".codesense"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = str(indexed_project / "codesense.yaml")
    answers = []
    for q in ("How are JWT tokens verified?", "how are the JWT tokens verified", "Where are refunds issued?"):
        assert main(["ask", q, "--config", cfg, "--json"]) == 0
        answers.append(json.loads(capsys.readouterr().out))
    assert all(a["trace_id"] for a in answers)
    mlflow.set_tracking_uri(f"sqlite:///{indexed_project / '.codesense' / 'mlflow.db'}")
    mlflow.log_feedback(trace_id=answers[2]["trace_id"], name="user_feedback", value=False,
                        source=AssessmentSource(source_type="HUMAN", source_id="reviewer"))

    assert main(["dataset", "golden", "--config", cfg, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["read"] == 3 and report["kept"] == 1
    assert report["dropped"] == {"negative_feedback": 1, "near_duplicate": 1}
    rows = [json.loads(line) for line in open(report["path"])]
    newest = answers[1]  # of two near-duplicates the newest is kept
    assert rows[0]["id"] == newest["trace_id"] and rows[0]["question"] == "how are the JWT tokens verified" and rows[0]["repo"] == "payments"
    assert rows[0]["gold"] == [{"path": s["path"], "start_line": s["start_line"], "end_line": s["end_line"]} for s in newest["sources"]]
    assert len(load_dataset(report["path"])) == 1  # valid under the evaluation contract
    run = mlflow.MlflowClient().get_run(report["run_id"])
    assert run.data.metrics["kept"] == 1 and run.data.metrics["dropped_near_duplicate"] == 1


def _t(i: int, question: str, **kw) -> TracedAnswer:
    base = dict(trace_id=f"t{i}", timestamp_ms=i, question=question, answer="a [1]", repo_filter=[], citation_valid=1.0,
                cited=[{"repo": "p", "path": "a.py", "start_line": 1, "end_line": 5}])
    return TracedAnswer(**{**base, **kw})


def test_selection_rules():
    """Invalid citations, no citations, errors, missing/low judge scores and missing positive feedback each drop a
    trace under the rule that asks for it."""
    traces = [
        _t(1, "alpha one", citation_valid=0.5),
        _t(2, "beta two", cited=[]),
        _t(3, "gamma three", error=True),
        _t(4, "delta four", scores={"faithfulness": 0.4}),
        _t(5, "epsilon five", scores={"faithfulness": 0.9, "user_feedback": True}),
        _t(6, "zeta six"),
    ]
    kept, dropped = select_golden(traces, GoldenConfig(min_judge_score=0.7))
    assert [t.trace_id for t in kept] == ["t5"]
    assert dict(dropped) == {"invalid_citation": 1, "no_citation": 1, "error": 1, "low_judge_score": 1, "no_judge_score": 1}
    kept, dropped = select_golden(traces[4:], GoldenConfig(require_positive_feedback=True))
    assert [t.trace_id for t in kept] == ["t5"] and dict(dropped) == {"no_positive_feedback": 1}
