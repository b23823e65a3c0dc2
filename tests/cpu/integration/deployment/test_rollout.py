"""`codesense rollout`: canary steps on the InferenceService, Prometheus gates, promotion, rollback on a failing gate
or a revision that never gets ready — against the local Kubernetes API and Prometheus servers."""

from __future__ import annotations

import json
from itertools import count

import pytest
import yaml

from codesense_ray.config import config_from_dict
from codesense_ray.deployment.apply import DeployError, KubeObjects, apply_objects
from codesense_ray.deployment.manifests import inference_service, resolve_environment
from codesense_ray.deployment.prometheus import PrometheusClient
from codesense_ray.deployment.rollout import CanaryGate, Rollout

V1 = "s3://mlflow/artifacts/7/run-v1/artifacts/adapter"
V2 = "s3://mlflow/artifacts/7/run-v2/artifacts/adapter"


def _cfg(tmp_path, prom_url: str, **canary):
    data = {
        "repositories": [],
        "deployment": {
            "inference": {"adapter_uri": V1, "adapter_version": "1"},
            "canary": {"prometheus_url": prom_url, "soak_s": 0, "poll_interval_s": 0.001, "readiness_timeout_s": 5, **canary},
        },
    }
    return config_from_dict(data, tmp_path)


def healthy(query: str) -> float | None:
    return 0.001 if "5xx" in query else (1.5 if "histogram_quantile" in query else 0.9)


def _rollout(cfg, api, evaluate=None) -> Rollout:
    dep = resolve_environment(cfg, None)
    ticks = count()
    gate = CanaryGate(dep.canary, PrometheusClient(dep.canary.prometheus_url), evaluate)
    return Rollout(dep, KubeObjects(api), gate, clock=lambda: next(ticks) * 0.5, sleep=lambda s: None)


def _deployed(tmp_path, cluster, prometheus, answer=healthy, ready_after=1, **canary):
    prom, url = prometheus(answer)
    cfg = _cfg(tmp_path, url, **canary)
    state, api = cluster(ready_after=ready_after)
    apply_objects([inference_service(resolve_environment(cfg, None))], api, timeout_s=30, poll_interval_s=0)
    return state, api, prom, cfg


def _isvc(state):
    return state.find("InferenceService", "codesense-llm")


def _steps(state) -> list:
    return [o["spec"]["predictor"].get("canaryTrafficPercent") for o in state.applied_specs("InferenceService", "codesense-llm")]


def _adapter(obj) -> str:
    return next(s["uri"] for s in obj["spec"]["predictor"]["storageUris"] if "/adapters/" in s["mountPath"])


def test_canary_walks_every_step_and_promotes(tmp_path, cluster, prometheus):
    """start --all: 10 → 50 → 100 with a passing gate at each, then the canary split is removed and v2 becomes stable."""
    state, api, prom, cfg = _deployed(tmp_path, cluster, prometheus)
    result = _rollout(cfg, api).start(V2, version="2", to_end=True)

    assert result.ok and result.phase == "Promoted" and result.stable_uri == V2 and result.stable_version == "2"
    assert _steps(state) == [None, 10, 50, 100, None]
    assert [g.percent for g in result.gates] == [10, 50, 100] and all(g.ok for g in result.gates)
    final = _isvc(state)
    assert _adapter(final) == V2 and "canaryTrafficPercent" not in final["spec"]["predictor"]
    assert "--lora-modules=codesense-student=/mnt/models/adapters/codesense-student" in final["spec"]["predictor"]["model"]["args"]
    # The gates asked Prometheus about the new revision, not the stable one.
    assert any('revision_name="codesense-llm-predictor-00002"' in q for q in prom.queries)
    assert not any("predictor-00001" in q for q in prom.queries)


def test_step_by_step_with_promote(tmp_path, cluster, prometheus):
    """start stops at the first step; each promote moves one step; status reads the phase back from the cluster."""
    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus)
    first = _rollout(cfg, api).start(V2, version="2")
    assert first.ok and first.phase == "Progressing" and first.canary_percent == 10 and first.candidate_uri == V2 and first.stable_uri == V1
    status = _rollout(cfg, api).status()
    assert status.phase == "Progressing" and status.canary_percent == 10
    with pytest.raises(DeployError, match="in progress"):
        _rollout(cfg, api).start(V2)
    second = _rollout(cfg, api).promote()
    assert second.canary_percent == 50 and second.phase == "Progressing"
    last = _rollout(cfg, api).promote(to_end=True)
    assert last.phase == "Promoted" and _steps(state)[-3:] == [50, 100, None]


def test_failing_gate_rolls_back_to_the_last_good_adapter(tmp_path, cluster, prometheus):
    """An error rate above the limit at 50% sends traffic back at once (canary 0), then restores v1's spec."""
    calls = {"n": 0}

    def errors_at_second_gate(query: str):
        if "5xx" in query:
            calls["n"] += 1
            return 0.001 if calls["n"] == 1 else 0.2
        return healthy(query)

    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus, answer=errors_at_second_gate)
    result = _rollout(cfg, api).start(V2, version="2", to_end=True)

    assert not result.ok and result.phase == "RolledBack"
    assert "gate at 50% failed: error_rate 0.2 > 0.02" in result.message
    assert _steps(state) == [None, 10, 50, 0, None]
    final = _isvc(state)
    assert _adapter(final) == V1 and final["metadata"]["annotations"]["codesense.io/adapter-version"] == "1"
    assert final["metadata"]["annotations"]["codesense.io/candidate-adapter-uri"] == V2  # what failed, for the record
    assert result.gates[-1].ok is False and result.gates[0].ok is True


def test_latency_judge_and_missing_metrics(tmp_path, cluster, prometheus):
    """p95 over the limit fails; a judge score below its minimum fails; no samples at all fails unless require_metrics is off."""
    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus, answer=lambda q: 0.0 if "5xx" in q else (45.0 if "histogram" in q else 0.9))
    slow = _rollout(cfg, api).start(V2)
    assert slow.phase == "RolledBack" and "p95_latency_s 45 > 20" in slow.message

    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus, answer=lambda q: 0.3 if "judge" in q else healthy(q), min_judge_score=0.7)
    judged = _rollout(cfg, api).start(V2)
    assert judged.phase == "RolledBack" and "judge_score 0.3 < 0.7" in judged.message

    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus, answer=lambda q: None)
    blind = _rollout(cfg, api).start(V2)
    assert blind.phase == "RolledBack" and "no samples for revision codesense-llm-predictor-00002" in blind.message

    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus, answer=lambda q: None, require_metrics=False)
    lenient = _rollout(cfg, api).start(V2)
    assert lenient.ok and lenient.phase == "Progressing"


def test_evaluation_gate_runs_against_the_canary_route(tmp_path, cluster, prometheus):
    """The evaluation check gets the canary's own URL; its failure is a failed gate that rolls back."""
    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus)
    urls = []

    def evaluate(url):
        urls.append(url)
        return False, "evaluation: citation_valid = 0.4000 < minimum 0.9"

    result = _rollout(cfg, api, evaluate=evaluate).start(V2)
    assert urls == ["http://latest-codesense-llm-predictor.codesense.svc.cluster.local/v1"]
    assert result.phase == "RolledBack" and "citation_valid = 0.4000 < minimum 0.9" in result.message


def test_revision_that_never_gets_ready_is_rolled_back(tmp_path, cluster, prometheus):
    """A candidate whose revision stays unready past readiness_timeout_s is rolled back without reading any gate."""
    state, api, prom, cfg = _deployed(tmp_path, cluster, prometheus, ready_after=1)
    state.never_ready.add(("InferenceService", "codesense-llm"))
    result = _rollout(cfg, api).start(V2)
    assert not result.ok and result.gates == []
    assert "canary at 10%: not ready after 5s" in result.message and "model still loading" in result.message
    assert prom.queries == [] and _adapter(_isvc(state)) == V1


def test_prometheus_down_fails_the_gate(tmp_path, cluster, prometheus):
    """Gates fail safe: an unreachable Prometheus is a failed check naming the address, and the canary is rolled back."""
    from codesense_ray.orchestration.local_ray import free_port

    state, api, _, _ = _deployed(tmp_path, cluster, prometheus)
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{free_port()}")
    result = _rollout(cfg, api).start(V2)
    assert result.phase == "RolledBack" and "is unreachable" in result.message


def test_manual_rollback_during_canary(tmp_path, cluster, prometheus):
    """A manual rollback during a canary restores the stable adapter; promoting afterwards has nothing to promote."""
    state, api, _, cfg = _deployed(tmp_path, cluster, prometheus)
    _rollout(cfg, api).start(V2, version="2")
    back = _rollout(cfg, api).rollback()
    assert back.ok and back.phase == "RolledBack" and back.stable_uri == V1 and _adapter(_isvc(state)) == V1
    with pytest.raises(DeployError, match="no rollout in progress"):
        _rollout(cfg, api).promote()


def test_rollout_commands_end_to_end(tmp_path, cluster, prometheus, monkeypatch, capsys):
    """`codesense rollout start --all --json` exits 0 when promoted; a failing gate makes `rollout start` exit 1."""
    from codesense_ray.app import cli

    state, api, prom, _ = _deployed(tmp_path, cluster, prometheus)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": api.configuration.host}}],
        "users": [{"name": "t", "user": {}}], "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cfg_data = {"repositories": [], "deployment": {"inference": {"adapter_uri": V1}, "canary": {
        "prometheus_url": prom_url_of(prometheus, healthy), "soak_s": 0, "poll_interval_s": 0.01, "readiness_timeout_s": 10}}}
    cfg = tmp_path / "codesense.yaml"
    cfg.write_text(yaml.safe_dump(cfg_data))
    code = cli.main(["rollout", "start", "--adapter-uri", V2, "--version", "2", "--all", "--config", str(cfg), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["phase"] == "Promoted"
    assert cli.main(["rollout", "status", "--config", str(cfg)]) == 0
    assert "Promoted" in capsys.readouterr().out

    cfg_data["deployment"]["canary"]["prometheus_url"] = prom_url_of(prometheus, lambda q: 0.5 if "5xx" in q else healthy(q))
    cfg.write_text(yaml.safe_dump(cfg_data))
    code = cli.main(["rollout", "start", "--adapter-uri", V1 + "-v3", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert code == 1 and "RolledBack" in out and "error_rate 0.5 > 0.02" in out


def prom_url_of(prometheus, answer) -> str:
    return prometheus(answer)[1]


@pytest.mark.slow
def test_canary_evaluator_answers_the_eval_set_through_the_canary(tmp_path, monkeypatch):
    """The real evaluation gate: the fixture questions are answered by an OpenAI-compatible canary asked for the adapter
    by name; cited answers pass `citation_valid`, uncited ones fail it."""
    import shutil

    from codesense_ray.deployment.rollout import canary_evaluator
    from codesense_ray.app.compose import build_indexer
    from codesense_ray.app.compose import open_store
    from tests.cpu.integration.answering.fake_servers import openai_route, start
    from tests.conftest import PAYMENTS, ROOT

    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    shutil.copytree(PAYMENTS, tmp_path / "payments")
    (tmp_path / "gates.yaml").write_text("file_hit@5: 0.5\ncitation_valid: 0.9\n")
    data = {
        "repositories": [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
        "index": {"in_process_max_files": 1000},
        "evaluation": {"log_to_mlflow": False},
        "deployment": {"canary": {"eval_dataset": str(ROOT / "tests/cpu/integration/evaluation/fixture_questions.jsonl"), "eval_gate": "gates.yaml"}},
    }
    cfg = config_from_dict(data, tmp_path)
    store = open_store(cfg)
    build_indexer(cfg, store).run()
    store.client.close()
    server, server_state = start(openai_route, words=["Bearer ", "tokens ", "are ", "checked ", "in ", "`verify_bearer_token` ", "[1]."])
    try:
        evaluate = canary_evaluator(cfg, resolve_environment(cfg, None))
        ok, message = evaluate(server.url + "/v1")
        assert ok, message
        assert "passed" in message and "citation_valid=1.000" in message
        assert server.requests and {r.json()["model"] for r in server.requests} == {"codesense-student"}
        server_state["words"] = ["I ", "do ", "not ", "know."]
        ok, message = evaluate(server.url + "/v1")
        assert not ok and "citation_valid" in message
    finally:
        server.stop()
