"""`codesense deploy apply`: server-side apply through the real kubernetes client, readiness waits, per-object report."""

from __future__ import annotations

import pytest

from codesense_ray.config import config_from_dict
from codesense_ray.deployment.apply import DeployError, KubeObjects, apply_objects
from codesense_ray.deployment.manifests import render


def _objects(tmp_path, env="prod"):
    return render(config_from_dict({"repositories": []}, tmp_path), env).objects


def test_apply_uses_server_side_apply_and_waits_for_every_object(tmp_path, cluster):
    """Every object is PATCHed as apply-patch+yaml with fieldManager=codesense, namespaces first, and reported ready."""
    state, api = cluster(ready_after=2)
    objs = _objects(tmp_path)
    report = apply_objects(objs, api, timeout_s=30, poll_interval_s=0.01)

    assert report.ok and len(report.objects) == len(objs)
    assert all(o.action == "created" and o.ready is True for o in report.objects)
    patches = [r for r in state.requests if r["method"] == "PATCH"]
    assert len(patches) == len(objs)
    assert all(r["content_type"] == "application/apply-patch+yaml" and r["query"]["fieldManager"] == "codesense" and r["query"]["force"] == "true" for r in patches)
    assert patches[0]["path"].startswith("/api/v1/namespaces/") and "/rayservices/" not in patches[0]["path"]
    assert ("GET", "/apis/serving.kserve.io/v1beta1/namespaces/codesense/inferenceservices/codesense-llm") in {(r["method"], r["path"]) for r in state.requests}
    assert state.find("RayService", "codesense-rag")["metadata"]["managedFields"][0]["manager"] == "codesense"


def test_second_apply_is_unchanged_and_a_config_change_is_configured(tmp_path, cluster):
    """Re-applying the same objects changes nothing; a different environment reconfigures only what differs."""
    state, api = cluster(ready_after=0)
    apply_objects(_objects(tmp_path, "prod"), api, wait=False)
    again = apply_objects(_objects(tmp_path, "prod"), api, wait=False)
    assert {o.action for o in again.objects} == {"unchanged"} and all(o.ready is None for o in again.objects)
    changed = apply_objects(_objects(tmp_path, "dev"), api, wait=False)
    configured = {(o.kind, o.name) for o in changed.objects if o.action == "configured"}
    assert ("InferenceService", "codesense-llm") in configured and ("Namespace", "codesense") not in configured
    assert state.find("InferenceService", "codesense-llm")["spec"]["predictor"]["minReplicas"] == 0


def test_readiness_timeout_names_the_object_and_why(tmp_path, cluster):
    """An InferenceService that never becomes Ready fails the report after the timeout, with its condition message; others are ready."""
    state, api = cluster(ready_after=1, never_ready={("InferenceService", "codesense-llm")})
    ticks = iter(range(10_000))
    report = apply_objects(_objects(tmp_path), api, timeout_s=5, poll_interval_s=0, clock=lambda: next(ticks) * 0.1, sleep=lambda s: None)

    assert not report.ok
    bad = [o for o in report.objects if o.ready is False]
    assert [(o.kind, o.name) for o in bad] == [("InferenceService", "codesense-llm")]
    assert "not ready after 5s" in bad[0].message and "model still loading" in bad[0].message
    assert all(o.ready for o in report.objects if o.kind != "InferenceService")


def test_refused_object_is_a_deploy_error_with_the_api_message(tmp_path, cluster):
    """A 4xx from the API server stops the apply with a one-line error carrying the server's message."""
    state, api = cluster()
    objs = _objects(tmp_path)
    isvc = next(o for o in objs if o["kind"] == "InferenceService")
    isvc["spec"]["predictor"]["minReplicas"] = -1
    with pytest.raises(DeployError, match=r"HTTP 422: spec.predictor.minReplicas: must be >= 0"):
        apply_objects([isvc], api, wait=False)


def test_unreachable_api_server_is_named(tmp_path):
    """No API server listening: a DeployError naming the address, not a traceback."""
    from kubernetes import client

    from codesense_ray.orchestration.local_ray import free_port

    conf = client.Configuration()
    conf.host = f"http://127.0.0.1:{free_port()}"
    conf.retries = 0
    with pytest.raises(DeployError, match="unreachable"):
        KubeObjects(client.ApiClient(conf)).get("v1", "Namespace", "codesense")


def test_apply_command_reports_per_object(tmp_path, cluster, monkeypatch, capsys):
    """`codesense deploy apply --env dev --json` against the local API: exit 0, one report entry per object, infra/base/observability included."""
    import json

    import yaml

    from codesense_ray.app import cli

    state, api = cluster(ready_after=1)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": api.configuration.host}}],
        "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cfg = tmp_path / "codesense.yaml"
    cfg.write_text(yaml.safe_dump({"repositories": []}))
    obs = tmp_path / "infra" / "base" / "observability"
    obs.mkdir(parents=True)
    (obs / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [rule.yaml]\n")
    (obs / "rule.yaml").write_text(yaml.safe_dump({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "codesense-slo"},
                                                   "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}}))
    code = cli.main(["deploy", "apply", "--env", "dev", "--config", str(cfg), "--json", "--timeout", "30", "--poll-interval", "0.01"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert code == 0 and out["ok"]
    assert {o["kind"] for o in out["objects"]} >= {"RayService", "InferenceService", "ClusterPolicy", "ServiceMonitor"}
    assert state.find("InferenceService", "codesense-llm")["spec"]["predictor"]["minReplicas"] == 0
    # The hand-kept observability folder is applied too, in the deployment namespace.
    assert state.find("PrometheusRule", "codesense-slo")["metadata"]["namespace"] == "codesense"
