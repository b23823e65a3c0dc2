"""`codesense distill` against local teachers speaking the OpenAI and Gemini wire protocols (real `openai` and
`google-genai` clients): verified answers only, rate limits retried with backoff, a resumed run that never pays
the teacher twice, and the dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from codesense_ray.app.cli.main import main
from codesense_ray.config import load_config
from codesense_ray.training.distill import SeedQuestion, call_with_retries, definition_questions, grounding_score, run_distillation, split_of
from codesense_ray.config.training import TeacherConfig
from teacher_servers import gemini_teacher, openai_teacher, start


def _configure(project: Path, teacher: dict, **distill) -> Path:
    cfg_path = project / "codesense.yaml"
    data = yaml.safe_load(cfg_path.read_text())
    data["training"] = {"teacher": {"backoff_s": 0.01, "max_attempts": 3, **teacher},
                        "distill": {"validation_fraction": 0.3, **distill}}
    cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg_path


@pytest.fixture
def env(indexed_project, monkeypatch):
    monkeypatch.setenv("CODESENSE_HOME", str(indexed_project / ".codesense"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return indexed_project


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_openai_teacher_rate_limits_and_resume(env):
    """Two 429s are retried (backoff) and the run still answers; the output is chat messages with verified [n]
    citations; a second run with a larger limit sends only the new questions to the teacher; the card counts it."""
    server, state = start(openai_teacher)
    try:
        cfg_path = _configure(env, {"backend": "openai", "base_url": server.url + "/v1", "model": "teacher-xl"}, name="oa")
        state["rate_limit"] = 2
        card = run_distillation(load_config(cfg_path), limit=3, dvc=False, mlflow_log=False, sleep=lambda s: None)
        assert state["limited"] == 2 and state["calls"] == 3
        assert card["counts"]["teacher_calls"] == 5  # 3 answers + 2 rate-limited attempts
        assert card["counts"]["kept_this_run"] == 3 and card["teacher"] == {"backend": "openai", "model": "teacher-xl"}
        assert card["prompt"]["name"] == "rag-code-assistant"
        out = Path(card["path"])
        rows = _rows(out / "train.jsonl") + _rows(out / "validation.jsonl")
        assert len(rows) == 3
        for r in rows:
            roles = [m["role"] for m in r["messages"]]
            assert roles[-1] == "assistant" and "user" in roles and r["messages"][-1]["content"].endswith("[1].")
            assert r["gold"] and r["gold"][0]["path"]

        before = state["calls"]
        card2 = run_distillation(load_config(cfg_path), limit=5, dvc=True, mlflow_log=True, sleep=lambda s: None)
        assert state["calls"] - before == 2  # only the two new questions are paid for
        assert card2["dvc"].startswith("skipped: not a DVC project")
        import mlflow

        run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{env / '.codesense' / 'mlflow.db'}").get_run(card2["mlflow_run_id"])
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"oa-train", "oa-validation"}
        assert run.data.params["teacher"] == "openai:teacher-xl" and run.data.metrics["count_reused"] == 3
        assert card2["counts"]["reused"] == 3 and card2["counts"]["kept_this_run"] == 2
        assert card2["counts"]["train"] + card2["counts"]["validation"] == 5
        assert json.loads((out / "card.json").read_text())["counts"]["reused"] == 3
    finally:
        server.stop()


@pytest.mark.slow
def test_gemini_teacher_rejections_interrupted_run_and_exhausted_retries(env, monkeypatch):
    """Through google-genai: answers citing a block that does not exist are rejected (invalid_citation); a
    question rate-limited past max_attempts is counted and skipped (not in the ledger); an interrupted run resumes
    without re-asking what was answered."""
    server, state = start(gemini_teacher)
    try:
        cfg_path = _configure(env, {"backend": "gemini", "base_url": server.url, "api_key_env": "TEST_GEMINI_KEY"}, name="gm")
        monkeypatch.setenv("TEST_GEMINI_KEY", "test-key")
        calls_seen = []

        def answer(user_text: str) -> str:
            calls_seen.append(user_text)
            return "See [7]." if len(calls_seen) == 2 else "It is handled in the first block [1]."

        state["answer"] = answer

        def interrupt(done: int, total: int) -> None:
            if done == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_distillation(load_config(cfg_path), limit=4, dvc=False, mlflow_log=False, on_progress=interrupt, sleep=lambda s: None)
        assert state["calls"] == 3
        ledger = _rows(env / "data" / "training" / "gm" / ".ledger.jsonl")
        assert [r["status"] for r in ledger] == ["kept", "rejected", "kept"] and ledger[1]["reason"] == "invalid_citation"

        state["rate_limit"] = 3  # the 4th question exhausts its 3 attempts
        card = run_distillation(load_config(cfg_path), limit=4, dvc=False, mlflow_log=False, sleep=lambda s: None)
        assert state["calls"] == 3 and card["counts"]["reused"] == 3
        assert card["rejected"] == {"rate_limited": 1}
        assert card["counts"]["train"] + card["counts"]["validation"] == 2 and card["counts"]["rejected_total"] == 1
        card = run_distillation(load_config(cfg_path), limit=4, dvc=False, mlflow_log=False, sleep=lambda s: None)
        assert state["calls"] == 4 and card["counts"]["kept_this_run"] == 1  # skipped question retried by the next run
    finally:
        server.stop()


@pytest.mark.slow
def test_distill_cli_teacher_refusal_and_missing_teacher(env, capsys, monkeypatch):
    """A teacher answering 403 stops the run with one line (exit 5); no teacher configured is exit 2 naming the key."""
    server, state = start(gemini_teacher)
    server.mode = "error403"
    try:
        monkeypatch.setenv("TEST_GEMINI_KEY", "bad-key")
        cfg_path = _configure(env, {"backend": "gemini", "base_url": server.url, "api_key_env": "TEST_GEMINI_KEY"}, name="bad")
        state["rate_limit"] = 0
        assert main(["distill", "--config", str(cfg_path), "--limit", "2", "--no-dvc", "--no-mlflow"]) == 5
        assert "teacher gemini refused the request: HTTP 403" in capsys.readouterr().err
    finally:
        server.stop()
    cfg_path = _configure(env, {"backend": "none"}, name="none")
    assert main(["distill", "--config", str(cfg_path)]) == 2
    assert "training.teacher.backend: `none`" in capsys.readouterr().err


def test_definition_questions_grounding_and_split():
    """Questions come from definitions (docstring when there is one); grounding counts identifiers found in the
    context; the split is a stable function of the question id."""
    chunks = [
        {"repo_id": "p", "path": "a.py", "symbol": "verify_token", "kind": "function", "text": 'def verify_token(t):\n    """Check a JWT signature and expiry."""'},
        {"repo_id": "p", "path": "a.py", "symbol": "verify_token", "kind": "function", "text": "duplicate"},
        {"repo_id": "p", "path": "b.py", "symbol": "Refunds.issue", "kind": "method", "text": "def issue(self):\n    return 1"},
        {"repo_id": "p", "path": "c.md", "symbol": None, "kind": "text", "text": "# Title"},
    ]
    qs = list(definition_questions(chunks))
    assert [q.question for q in qs] == ["Which code is responsible for this: Check a JWT signature and expiry? How does it work?",
                                        "What does `issue` in b.py do, and how is it used?"]
    assert grounding_score("Uses `verify_token` and `made_up`.", "def verify_token") == 0.5
    assert grounding_score("No identifiers.", "") == 1.0
    q = SeedQuestion("p", "q?", "x")
    assert split_of(q.id, 0.0) == "train" and split_of(q.id, 1.0) == "validation" and split_of(q.id, 0.3) == split_of(q.id, 0.3)


def test_retries_back_off_exponentially_then_give_up():
    """429s are retried with doubling delays capped at backoff_max_s; after max_attempts the question is skipped."""
    from codesense_ray.answering.generators.base import GeneratorError

    delays = []

    def always_limited():
        raise GeneratorError("openai", "HTTP 429: slow down", status=429)

    tcfg = TeacherConfig(backoff_s=1.0, backoff_max_s=3.0, max_attempts=4)
    assert call_with_retries(always_limited, tcfg, delays.append) == (None, 4, "rate_limited")
    assert delays == [1.0, 2.0, 3.0]


def test_teacher_written_questions_one_per_file():
    """In `teacher` mode the teacher writes one question per indexed file (first line of its reply), up to the limit."""
    from codesense_ray.training.distill import teacher_questions

    chunks = [{"repo_id": "p", "path": f"f{i}.py", "text": f"def f{i}(): pass"} for i in (1, 1, 2, 3)]
    asked = []

    def ask(messages):
        asked.append(messages[0]["content"])
        return f'"How does {len(asked)} work?"\nextra line'

    qs = list(teacher_questions(chunks, ask, limit=2))
    assert [(q.question, q.origin) for q in qs] == [("How does 1 work?", "file:f1.py"), ("How does 2 work?", "file:f2.py")]
    assert len(asked) == 2 and "File f1.py" in asked[0]
