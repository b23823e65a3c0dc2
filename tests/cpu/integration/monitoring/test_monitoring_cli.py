"""`codesense monitor drift|report|judge` and `feedback export` on a real MLflow trace store; the HTML report opened
in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import html.parser
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CODESENSE_BIN, write_config
from tests.cpu.integration.evaluation.judge_server import JudgeServer
from tests.cpu.integration.monitoring.querysets import backend, frontend
from tests.cpu.integration.monitoring.traces_seed import DAY, now, rows_for, seed_traces

pytestmark = pytest.mark.slow


def _project(tmp_path: Path, **sections) -> tuple[Path, dict]:
    write_config(tmp_path, [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}], **sections)
    (tmp_path / "payments").mkdir()
    env = dict(os.environ, CODESENSE_HOME=str(tmp_path / ".codesense"), MLFLOW_ENABLE_TELEMETRY="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    (tmp_path / ".codesense").mkdir()
    return tmp_path, env


def _uri(project: Path) -> str:
    return f"sqlite:///{project / '.codesense' / 'mlflow.db'}"


def _cli(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CODESENSE_BIN, *args, "--config", str(project / "codesense.yaml")], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Backend questions 1-3 days ago, frontend questions (another repo, lower scores) in the last day, with ratings and judge scores."""
    from codesense_ray.monitoring.feedback import Feedback, MlflowFeedbackStore

    project, env = _project(tmp_path_factory.mktemp("drift-shifted"))
    t = now()
    ref = rows_for(backend(40), t - 3 * DAY, t - 1.05 * DAY, seed=1)
    rec = rows_for(frontend(30), t - 0.95 * DAY, t - 60, seed=2, repo="webapp", score=0.35, sourced=0.5)
    ids = seed_traces(_uri(project), ref + rec)
    store = MlflowFeedbackStore(_uri(project))
    for i, trace_id in enumerate(ids[::4]):
        store.record(Feedback(trace_id=trace_id, rating=1 if i % 3 else -1, comment=None if i % 3 else "cites the wrong file",
                              correct_paths=[] if i % 3 else ["app/auth/middleware.py:3-30"]))
    for trace_id in ids[1::5]:
        store.record_scores(trace_id, {"faithfulness": {"score": 0.8, "reason": "ok"}, "answer_relevancy": {"score": 0.6, "reason": "ok"}}, "judge")
    return project, env


def test_drift_cli_flags_shifted_questions(shifted):
    """`monitor drift` on a shifted recent window: exit 1, embedding MMD and classifier flagged, JSON + HTML + MLflow run written."""
    project, env = shifted
    proc = _cli(project, env, "monitor", "drift", "--window", "1d", "--reference", "2d", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    r = out["result"]
    assert r["drift"] and r["counts"] == {"reference": 40, "recent": 30}
    assert r["checks"]["embedding_mmd"]["flagged"] and r["p_value"] <= 0.01
    assert r["checks"]["classifier_auc"]["flagged"] and r["checks"]["repo_tv"]["flagged"] and r["checks"]["top_score_ks"]["flagged"]
    assert "drift detected: embedding_mmd" in proc.stderr
    assert Path(out["files"]["html"]).read_text().count("<svg") >= 4
    from mlflow.tracking import MlflowClient

    run = MlflowClient(_uri(project)).get_run(out["mlflow"]["run_id"])
    assert run.data.tags["codesense.monitor"] == "drift" and run.data.metrics["drift_detected"] == 1.0
    assert run.data.metrics["drift.classifier_auc"] > 0.9
    from codesense_ray.monitoring.state import latest_drift_metrics

    assert latest_drift_metrics(_uri(project), "codesense-monitoring")["drift"] is True


def test_drift_cli_passes_a_random_split(tmp_path):
    """70 questions of one population scattered at random over both windows: exit 0, status ok."""
    project, env = _project(tmp_path)
    t = now()
    qs = backend(70, seed=3)
    rng = random.Random(11)
    rows = rows_for(qs, t - 3 * DAY, t - 60, seed=4)
    for row in rows:
        row["at"] = rng.uniform(t - 3 * DAY, t - 60)
    seed_traces(_uri(project), rows)
    proc = _cli(project, env, "monitor", "drift", "--window", "1d", "--reference", "2d", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(proc.stdout)["result"]
    assert r["status"] == "ok" and not r["drift"], r["checks"]
    assert r["p_value"] > 0.01


def test_drift_cli_bad_window_is_a_usage_error(tmp_path):
    """A malformed --window names the accepted form and exits 2."""
    project, env = _project(tmp_path)
    proc = _cli(project, env, "monitor", "drift", "--window", "7 days")
    assert proc.returncode == 2 and "like 30m, 12h, 7d" in proc.stderr


class _Dom(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, int] = {}
        self.current: str | None = None
        self.figures: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.current = a.get("id")
            self.sections[self.current] = 0
        elif tag == "svg" and self.current:
            self.sections[self.current] += 1
        elif tag == "figure":
            self.figures.append(a.get("data-plot", ""))


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium); the HTML report is not opened in a browser")
    return exe


def test_report_opens_in_headless_chromium_with_sections_and_plots(shifted, tmp_path):
    """`monitor report`: one self-contained HTML page; chromium renders it with all five sections and inline SVG plots."""
    project, env = shifted
    target = tmp_path / "report.html"
    proc = _cli(project, env, "monitor", "report", "--days", "3", "--output", str(target), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["questions"] == 70
    page = target.read_text()
    assert "http://" not in page.split("<body>")[0] and "<script" not in page and "<link" not in page  # self-contained
    exe = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([exe, *flags, "--dump-dom", target.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0 and "<section" in dom.stdout, dom.stderr[-2000:]
    parsed = _Dom()
    parsed.feed(dom.stdout)
    assert set(parsed.sections) == {"latency", "feedback", "judge", "drift", "freshness"}
    assert parsed.sections["latency"] >= 1 and parsed.sections["feedback"] >= 1 and parsed.sections["judge"] >= 1
    assert {"Answer latency per day", "Feedback per day", "Judge scores per day"} <= set(parsed.figures)
    assert "cites the wrong file" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([exe, *flags, f"--screenshot={shot}", "--window-size=1200,2400", target.as_uri()], capture_output=True, timeout=180)
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.shape[0] >= 2000 and len({tuple(p) for p in pixels[::7, ::7].reshape(-1, pixels.shape[-1])}) > 20  # drawn, not blank


def test_feedback_export_thumbs_up_keeps_cited_files(shifted, tmp_path):
    """`feedback export --rating up --output`: a positive rating without correct_paths uses the answer's cited file as gold."""
    project, env = shifted
    target = tmp_path / "fb.jsonl"
    proc = _cli(project, env, "feedback", "export", "--since", "4d", "--rating", "up", "--output", str(target))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows and all(r["rating"] == 1 for r in rows)
    sourced = [r for r in rows if r["gold"]]
    assert sourced and sourced[0]["gold"] == [{"path": "app/auth/jwt.py", "start_line": 1, "end_line": 20}] and sourced[0]["gold_from"] == "answer"


def test_monitor_judge_batch_scores_unjudged_traces(tmp_path):
    """`monitor judge --since 1d` grades yesterday's unjudged traces through the judge server and writes judge/* onto each."""
    judge = JudgeServer()
    try:
        project, env = _project(tmp_path, evaluation={"judge": {"backend": "openai", "base_url": judge.base_url, "model": "judge-model", "max_retries": 0}})
        t = now()
        ids = seed_traces(_uri(project), rows_for(backend(3), t - 0.5 * DAY, t - 60, seed=5) + rows_for(backend(2, seed=9), t - 3 * DAY, t - 2 * DAY, seed=6))
        proc = _cli(project, env, "monitor", "judge", "--since", "1d", "--json")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["candidates"] == 3 and out["judged"] == 3 and set(out["traces"]) == set(ids[:3])
        assert out["mean"]["answer_relevancy"] == pytest.approx(0.6) and out["mean"]["citation_format"] == pytest.approx(0.8)
        from mlflow.tracing.client import TracingClient

        names = {a.name for a in TracingClient(_uri(project)).get_trace(ids[0]).info.assessments}
        assert {"judge/answer_relevancy", "judge/citation_format"} <= names
        again = json.loads(_cli(project, env, "monitor", "judge", "--since", "1d", "--json").stdout)
        assert again["candidates"] == 0  # already judged: not graded twice
    finally:
        judge.stop()
