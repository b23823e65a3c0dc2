"""DeepEval metrics with the real `deepeval` package, judged by a local OpenAI-compatible server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codesense_ray.config import config_from_dict
from codesense_ray.errors import InvalidConfig
from codesense_ray.config.evaluation import JUDGE_METRICS, EvaluationConfig, JudgeConfig
from judge_server import Script

QUESTION = "How are JWT bearer tokens verified?"
ANSWER = "`verify_bearer_token` decodes the token and checks audience and issuer [1].\n\n[1] app/auth/jwt.py:78-110"
REFERENCE = "verify_bearer_token decodes the JWT. It checks exp, iat and sub. It checks audience. It checks issuer."
CONTEXTS = ["app/auth/jwt.py:78-110\ndef verify_bearer_token(...)", "app/auth/permissions.py:46-55\ndef check_scopes(...)", "README.md:1-5\n# Payments"]


def suite(server, **judge):
    from codesense_ray.evaluation.deepeval_metrics import build_judge_suite

    return build_judge_suite(JudgeConfig(backend="openai", base_url=server.base_url, model="judge-7b", max_retries=0, **judge), home=None)


def test_scores_are_computed_from_the_judge_verdicts(judge_server):
    """Each DeepEval metric asks the local judge its own prompts and computes the score from the scripted verdicts."""
    s = suite(judge_server)
    assert s.model_name == "openai:judge-7b" and s.metrics == list(JUDGE_METRICS)
    out = s.evaluate(question=QUESTION, answer=ANSWER, expected=REFERENCE, contexts=CONTEXTS)
    scores = {name: v["score"] for name, v in out.items()}
    assert scores == pytest.approx(
        {
            "faithfulness": 0.75,  # yes, yes, no, borderline: borderline passes
            "answer_relevancy": 0.6,  # yes, yes, no, yes, no
            "contextual_precision": 7 / 12,  # no, yes, yes: (1/2 + 2/3) / 2
            "contextual_recall": 0.25,  # yes, no, no, no
            "citation_format": 0.8,  # GEval 8 of 10
            "no_hallucination": 0.3,  # GEval 3 of 10
        }
    )
    assert all(v["reason"] for v in out.values())
    answered = set(judge_server.state.answered)
    assert {
        "faithfulness.truths", "faithfulness.claims", "faithfulness.verdicts", "answer_relevancy.statements", "answer_relevancy.verdicts",
        "contextual_precision.verdicts", "contextual_recall.verdicts", "geval.citation_format", "geval.no_hallucination", "reason",
    } <= answered
    assert "unknown" not in answered and set(judge_server.state.models) == {"judge-7b"}


def test_other_verdicts_give_other_scores(judge_server):
    """Changing only the server's verdicts changes the scores accordingly (nothing is computed without the judge)."""
    judge_server.state.script = Script(
        faithfulness=["no", "no"], relevancy=["yes"], precision=["yes", "no", "no"], recall=["yes", "yes"], citation_format_score=10, hallucination_score=0
    )
    out = suite(judge_server).evaluate(question=QUESTION, answer=ANSWER, expected=REFERENCE, contexts=CONTEXTS)
    assert {n: v["score"] for n, v in out.items()} == pytest.approx(
        {"faithfulness": 0.0, "answer_relevancy": 1.0, "contextual_precision": 1.0, "contextual_recall": 1.0, "citation_format": 1.0, "no_hallucination": 0.0}
    )


def test_metrics_without_their_inputs_are_skipped_not_estimated(judge_server):
    """Without an answer and a reference answer every metric is skipped with the reason, and the judge is never called."""
    out = suite(judge_server).evaluate(question=QUESTION, answer=None, expected=None, contexts=CONTEXTS)
    assert all(v["score"] is None for v in out.values())
    assert out["faithfulness"]["skipped"].startswith("needs a generated answer")
    assert out["contextual_recall"]["skipped"] == "needs a reference `answer` in the dataset line"
    assert judge_server.state.answered == []


def test_selected_metrics_only(judge_server):
    """`evaluation.judge.metrics` limits the metrics computed (and the judge calls made)."""
    out = suite(judge_server, metrics=["contextual_recall"]).evaluate(question=QUESTION, answer=None, expected=REFERENCE, contexts=CONTEXTS)
    assert list(out) == ["contextual_recall"] and out["contextual_recall"]["score"] == 0.25
    assert set(judge_server.state.answered) == {"contextual_recall.verdicts", "reason"}


def test_judge_errors_are_recorded_per_metric(judge_server):
    """A failing judge endpoint (HTTP 500) gives an error entry per metric, not an exception or a made-up score."""
    judge_server.state.fail = True
    out = suite(judge_server, metrics=["faithfulness", "answer_relevancy"]).evaluate(question=QUESTION, answer=ANSWER, expected=None, contexts=CONTEXTS)
    assert out["faithfulness"]["score"] is None and "HTTP 500" in out["faithfulness"]["error"]
    assert out["answer_relevancy"]["score"] is None and "judge overloaded" in out["answer_relevancy"]["error"]


def test_no_judge_configured_is_skipped_with_a_clear_message():
    """`--judge` with `evaluation.judge.backend: none` skips judged metrics and says how to configure a judge."""
    from codesense_ray.evaluation.runner import build_judge

    cfg = config_from_dict({}, base_dir=__import__("pathlib").Path("."))
    judge, status = build_judge(cfg, enabled=True)
    assert judge is None and status.status == "skipped"
    assert "evaluation.judge.backend" in status.reason and "openai" in status.reason
    assert build_judge(cfg, enabled=False)[1].status == "off"


def test_judge_settings_errors_name_the_key(monkeypatch):
    """An OpenAI judge without base_url is rejected; a Gemini judge without its key names evaluation.judge and the env var."""
    from codesense_ray.evaluation.deepeval_metrics import build_judge_model

    with pytest.raises(ValidationError, match="needs `base_url`"):
        EvaluationConfig.model_validate({"judge": {"backend": "openai", "model": "m"}})
    with pytest.raises(ValidationError, match="extra"):
        EvaluationConfig.model_validate({"judge": {"backend": "none", "temperature": 0}})
    monkeypatch.delenv("CODESENSE_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(InvalidConfig, match=r"CODESENSE_TEST_NO_SUCH_KEY \(evaluation\.judge\.api_key_env\)"):
        build_judge_model(JudgeConfig(backend="gemini", api_key_env="CODESENSE_TEST_NO_SUCH_KEY"), home=None)
