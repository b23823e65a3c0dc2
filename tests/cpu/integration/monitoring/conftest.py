"""Fixtures for monitoring: a running `codesense serve` with MLflow tracing, an OpenAI-compatible generator and
the local DeepEval judge server, plus helpers to scrape `/metrics`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.cpu.integration.answering.fake_servers import openai_route, start
from tests.serving import running_serve
from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config
from tests.cpu.integration.evaluation.judge_server import JudgeServer

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
TOKEN = "monitor-test-token"



def scrape(client: httpx.Client) -> dict[str, float]:
    """`/metrics` parsed with prometheus-client's own text parser: `{'name{label="v",...}': value}`."""
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    assert r.status_code == 200
    out = {}
    for family in text_string_to_metric_families(r.text):
        out[f"#family {family.name}"] = 1.0
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


class App:
    def __init__(self, client: httpx.Client, project: Path, env: dict, config: str, judge: JudgeServer, llm_state: dict) -> None:
        self.client, self.project, self.env, self.config, self.judge, self.llm_state = client, project, env, config, judge, llm_state

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.project / '.codesense' / 'mlflow.db'}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([CODESENSE_BIN, *args, "--config", self.config], env=self.env, capture_output=True, text=True, timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"codesense {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Index the sample service; start `codesense serve` with auth, MLflow tracing and the online judge on every answer."""
    llm, llm_state = start(openai_route)
    judge = JudgeServer()
    project = tmp_path_factory.mktemp("monitor-serve")
    shutil.copytree(PAYMENTS, project / "payments")
    write_config(
        project,
        [{"id": "payments", "path": "payments", "web_url": "https://github.com/acme/payments", "ref": "4f1c2ab"}],
        index={"in_process_max_files": 1000},  # stages in-process: the Ray Data path is tested in test_indexing
        generator={"backend": "openai", "base_url": llm.url + "/v1", "model": "qwen2.5-coder", "timeout_s": 5},
        serve={"auth_token_env": "CODESENSE_TEST_TOKEN"},
        evaluation={"judge": {"backend": "openai", "base_url": judge.base_url, "model": "judge-model", "max_retries": 0}},
        monitoring={"judge_sample_rate": 1.0, "state_refresh_s": 0},
    )
    env = dict(os.environ, CODESENSE_HOME=str(project / ".codesense"), CODESENSE_TEST_TOKEN=TOKEN, MLFLOW_ENABLE_TELEMETRY="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    cfg = str(project / "codesense.yaml")
    subprocess.run([CODESENSE_BIN, "index", "--config", cfg, "--no-progress"], check=True, env=env, capture_output=True, timeout=600)
    with running_serve(cfg, env, project, timeout_s=300) as base:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        yield App(client, project, env, cfg, judge, llm_state)
        client.close()
    judge.stop()
    llm.stop()
