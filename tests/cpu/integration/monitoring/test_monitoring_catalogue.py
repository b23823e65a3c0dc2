"""The metrics contract: every series the dashboard and alerts use is codesense's own (in the catalogue) or an
exporter's, listed in docs/monitoring.md; the infra files parse; the docs table matches the catalogue; the
package stays light to import."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from codesense_ray.monitoring.metrics import CATALOGUE, CATALOGUE_NAMES
from tests.cpu.integration.monitoring.dashboards import DOC, OBSERVABILITY, all_metric_names, base_name, documented_exporter_metrics, metric_names


def test_promql_name_extraction():
    """The extractor finds metric names and skips functions, grouping labels, matchers and durations."""
    expr = 'histogram_quantile(0.95, sum by (le, stage) (rate(codesense_stage_seconds_bucket{job=~"$job"}[5m]))) / max(vllm:kv_cache_usage_perc) > 0.9'
    assert metric_names(expr) == {"codesense_stage_seconds_bucket", "vllm:kv_cache_usage_perc"}


def test_every_dashboard_and_alert_metric_is_codesense_or_a_documented_exporter():
    """codesense_* series are in the catalogue; every other series is in the documented exporter table (vLLM, DCGM, Qdrant)."""
    exporters = documented_exporter_metrics()
    names = all_metric_names()
    ours = {n for n in names if n.startswith("codesense_")}
    assert ours and {base_name(n) for n in ours} <= CATALOGUE_NAMES, {base_name(n) for n in ours} - CATALOGUE_NAMES
    theirs = names - ours
    assert theirs and theirs <= set(exporters), theirs - set(exporters)
    assert set(exporters.values()) <= {"vLLM", "DCGM", "Qdrant"}
    # The asked-for panels exist: vLLM tokens/s and KV cache, GPU utilisation, Qdrant latency.
    assert {"vllm:generation_tokens_total", "vllm:kv_cache_usage_perc", "DCGM_FI_DEV_GPU_UTIL", "rest_responses_duration_seconds_bucket"} <= theirs


def test_docs_list_every_codesense_metric():
    """docs/monitoring.md documents each catalogue metric with its labels."""
    text = DOC.read_text()
    for spec in CATALOGUE:
        assert f"`{spec.name}`" in text, spec.name


def test_infra_manifests_parse():
    """kustomization, PrometheusRule and the dashboard JSON are valid and wired together."""
    kust = yaml.safe_load((OBSERVABILITY / "kustomization.yaml").read_text())
    assert kust["resources"] == ["prometheusrule.yaml"]
    gen = kust["configMapGenerator"][0]
    assert gen["options"]["labels"] == {"grafana_dashboard": "1"}
    src = gen["files"][0].split("=", 1)[1]
    dash = json.loads((OBSERVABILITY / src).read_text())
    assert dash["uid"] == "codesense-rag" and len([p for p in dash["panels"] if p["type"] != "row"]) >= 15
    rule = yaml.safe_load((OBSERVABILITY / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all(r["annotations"]["summary"] and r["labels"]["severity"] for r in alerts)


def test_monitoring_import_stays_light():
    """Importing the monitoring package and its CLI pulls in neither ray, torch, fastapi nor mlflow."""
    code = (
        "import sys, codesense_ray.app.cli.monitoring, codesense_ray.monitoring.metrics, codesense_ray.monitoring.drift, codesense_ray.app.serve.instrumentation;"
        "print([m for m in ('ray', 'torch', 'fastapi', 'mlflow', 'deepeval', 'sklearn') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
