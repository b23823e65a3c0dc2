"""`ray-jobs` backend and the KFP components that use it: a real private `ray start --head`, bounded failures."""

from __future__ import annotations

import os
import socket
import time

import pytest

from codesense_ray.config import load_config
from codesense_ray.errors import JobFailed, RayUnreachable
from codesense_ray.orchestration.jobs import JobSpec, RayJobsBackend
from codesense_ray.orchestration.local_ray import free_port
from codesense_ray.orchestration.submission import last_json_document, stage_spec
from kfp_wrappers.components import build_code_index, converge_repositories, evaluate_rag
from tests.cpu.integration.orchestration.conftest import write_yaml


@pytest.fixture
def silent_port():
    """A port whose accept queue is full: connects hang like a dropped route (SYNs unanswered)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    time.sleep(0.1)
    yield port
    for c in fillers:
        c.close()
    listener.close()


def test_unreachable_ray_address_fails_within_the_connect_timeout(silent_port):
    """A closed port and a silently dropping one both fail with RayUnreachable naming the address, within the bound."""
    for address, reason in ((f"http://127.0.0.1:{free_port()}", "refused"), (f"http://127.0.0.1:{silent_port}", "no answer within 1s")):
        with pytest.raises(RayUnreachable, match="is unreachable") as info:
            RayJobsBackend(address, connect_timeout_s=1.0).submit(JobSpec(name="index", entrypoint="true"))
        assert address in str(info.value) and reason in str(info.value).lower()


def test_ray_client_address_is_rejected_with_a_hint():
    """`ray://` (Ray Client) is not the Job Submission API: the error says which address to give."""
    with pytest.raises(RayUnreachable, match="http://127.0.0.1:8265"):
        RayJobsBackend("ray://head:10001")


def test_component_with_unreachable_ray_fails_in_one_line(tmp_path, capsys):
    """build_code_index.python_func against a dead address exits 5 with one `codesense: error:` line, no traceback."""
    cfg = write_yaml(tmp_path / "codesense.yaml", {"repositories": []})
    with pytest.raises(SystemExit) as info:
        build_code_index.python_func(config=str(cfg), backend="ray-jobs", ray_address=f"http://127.0.0.1:{free_port()}")
    assert info.value.code == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codesense: error: Ray dashboard at http://127.0.0.1:")


def test_ray_jobs_stage_spec_uploads_code_and_shares_state(tmp_path, monkeypatch):
    """For ray-jobs the job gets the source tree as working_dir, this config's absolute path, and CODESENSE_HOME."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    cfg_path = write_yaml(tmp_path / "codesense.yaml", {"repositories": []})
    spec = stage_spec("index", load_config(cfg_path), cfg_path, "ray-jobs", args=["--full"])
    assert spec.entrypoint == f"python jobs/index.py --config {cfg_path} --json --full"
    assert {"jobs", "codesense_ray"} <= set(os.listdir(spec.runtime_env["working_dir"]))
    assert spec.runtime_env["env_vars"] == {"CODESENSE_HOME": str(tmp_path / "home")}
    assert "data/" in spec.runtime_env["excludes"]


def test_last_json_document_finds_the_summary_after_log_noise():
    """The stage summary is the last top-level JSON object in the log, even with JSON-looking noise before it."""
    logs = 'INFO starting\n{"partial": \nnoise\n{\n  "ok": true,\n  "n": 2\n}\nINFO done\n'
    assert last_json_document(logs) == {"ok": True, "n": 2}
    assert last_json_document("no json here") is None


@pytest.mark.slow
def test_ray_jobs_backend_runs_with_runtime_env_and_streams_logs(ray_head):
    """A job submitted to a real head gets its runtime env, its log lines stream to the caller, and it SUCCEEDS."""
    backend = RayJobsBackend(ray_head.dashboard_url, poll_interval_s=0.5)
    lines: list[str] = []
    code = "import os; print('probe=' + os.environ['CODESENSE_PROBE'])"
    result = backend.run(JobSpec(name="probe", entrypoint=f'python -c "{code}"', runtime_env={"env_vars": {"CODESENSE_PROBE": "42"}}), lines.append)
    assert result.ok and result.status == "SUCCEEDED"
    assert "probe=42" in lines and "probe=42" in result.logs
    assert result.details.get("driver_exit_code") == 0


@pytest.mark.slow
def test_failed_ray_job_raises_with_its_last_log_lines(ray_head):
    """A job that exits non-zero raises JobFailed carrying the exit message and its last log lines."""
    backend = RayJobsBackend(ray_head.dashboard_url, poll_interval_s=0.5, log_tail_lines=3)
    code = "import sys; [print('line', i) for i in range(30)]; print('boom: index broken', file=sys.stderr); sys.exit(3)"
    with pytest.raises(JobFailed) as info:
        backend.run(JobSpec(name="broken", entrypoint=f'python -c "{code}"'))
    err = info.value
    assert err.status == "FAILED" and "exit code 3" in err.message
    assert err.log_tail[-1] == "boom: index broken" and len(err.log_tail) == 3
    assert "last log lines" in str(err)


@pytest.mark.slow
def test_converge_component_submits_a_ray_job(ray_head, project, make_repo):
    """converge_repositories.python_func runs jobs/converge.py as a Ray job and returns the DVC data version."""
    repo = make_repo("svc")
    sha = repo.commit({"svc.py": "def serve():\n    return 'ok'\n"})
    cfg = write_yaml(project / "codesense.yaml", {"repositories": [{"url": repo.url}]})
    out = converge_repositories.python_func(config=str(cfg), backend="ray-jobs", ray_address=ray_head.dashboard_url)
    assert out.data_version.endswith(".dir")
    assert out.summary["status"] == "SUCCEEDED" and out.summary["summary"]["repos"][0]["commit"] == sha
    assert (project / "data" / "raw" / "svc" / ".codesense-ref").read_text().strip() == sha


@pytest.mark.slow
def test_evaluate_component_applies_the_quality_gate(ray_head, project, capsys):
    """evaluate_rag runs `codesense eval` as a Ray job: a met gate passes, an impossible one fails the step."""
    import shutil
    from pathlib import Path

    from tests.conftest import PAYMENTS

    root = Path(__file__).resolve().parents[4]
    shutil.copytree(PAYMENTS, project / "payments")
    cfg = write_yaml(
        project / "codesense.yaml",
        # The index stages run in-process inside each Ray job (Ray Data inside a job: test_ray_job_index).
        {"repositories": [{"id": "payments", "path": "payments"}], "qdrant": {"path": str(project / ".codesense" / "qdrant")}, "tracing": {"backend": "none"},
         "index": {"in_process_max_files": 1000}},
    )
    build_code_index.python_func(config=str(cfg), backend="ray-jobs", ray_address=ray_head.dashboard_url)
    dataset = str(root / "tests" / "cpu" / "integration" / "evaluation" / "fixture_questions.jsonl")
    easy = write_yaml(project / "easy.yaml", {"file_hit@10": 0.5})
    out = evaluate_rag.python_func(config=str(cfg), dataset=dataset, gate=str(easy), backend="ray-jobs", ray_address=ray_head.dashboard_url)
    assert out["status"] == "SUCCEEDED"
    strict = write_yaml(project / "strict.yaml", {"answer_latency_p95_s": {"max": 0.000001}})
    with pytest.raises(SystemExit):
        evaluate_rag.python_func(config=str(cfg), dataset=dataset, gate=str(strict), backend="ray-jobs", ray_address=ray_head.dashboard_url)
    captured = capsys.readouterr()
    assert "answer_latency_p95_s" in captured.err + captured.out

    # The index step gates the candidate before promotion: an impossible gate fails the step, alias unmoved.
    (project / "payments" / "app" / "new_module.py").write_text("def added():\n    return 1\n")
    impossible = write_yaml(project / "impossible.yaml", {"file_hit@1": 1.01})
    live_before = _live(cfg)
    with pytest.raises(SystemExit):
        build_code_index.python_func(config=str(cfg), backend="ray-jobs", ray_address=ray_head.dashboard_url, gate=str(impossible), dataset=dataset)
    assert _live(cfg) == live_before
    out = build_code_index.python_func(config=str(cfg), backend="ray-jobs", ray_address=ray_head.dashboard_url, gate=str(easy), dataset=dataset)
    assert out["summary"]["gate"]["passed"] is True and _live(cfg) == out["summary"]["collection"] != live_before


def _live(cfg_path) -> str | None:
    from codesense_ray.app.compose import open_store
    from codesense_ray.config import load_config

    store = open_store(load_config(cfg_path))
    try:
        return store.live_collection()
    finally:
        store.client.close()
