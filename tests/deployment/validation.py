"""Offline validation of rendered objects: core kinds against the Kubernetes OpenAPI schemas (kubernetes-validate,
pinned version), custom resources against the openAPIV3Schema of their CRDs in ../shared/k8s-crds/."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

CRD_DIR = ROOT.parent / "shared" / "k8s-crds"
KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version core objects are validated against (a supported release as of this writing)."""

CRD_FILES = {
    ("ray.io", "RayService"): "ray.io_rayservices.yaml",
    ("ray.io", "RayCluster"): "ray.io_rayclusters.yaml",
    ("ray.io", "RayJob"): "ray.io_rayjobs.yaml",
    ("serving.kserve.io", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io", "ClusterServingRuntime"): "serving.kserve.io_clusterservingruntimes.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
    ("nvidia.com", "ClusterPolicy"): "nvidia.com_clusterpolicies.yaml",
}


def require_crds() -> Path:
    if not CRD_DIR.is_dir():
        pytest.skip(f"CRD reference data not found at {CRD_DIR} (../shared/k8s-crds)")
    return CRD_DIR


@functools.lru_cache(maxsize=None)
def crd_schema(group: str, kind: str, version: str) -> dict:
    path = require_crds() / CRD_FILES[(group, kind)]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # some CRDs are megabytes of YAML
    doc = yaml.load(path.read_text(), Loader=loader)
    for v in doc["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{kind}: CRD {path.name} has no version {version}")


def unknown_fields(obj: Any, schema: dict, path: str = "") -> list[str]:
    """Fields the API server would prune silently (not declared in a structural schema)."""
    found = []
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for key, value in obj.items():
            if props is not None and key in props:
                found += unknown_fields(value, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(value, extra, f"{path}.{key}")
            elif props is not None and not preserve and extra is not True:
                found.append(f"{path}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            found += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def validate_object(obj: dict) -> None:
    """Raise AssertionError naming the object when it would be rejected (or silently pruned) by the API server."""
    import jsonschema

    group, _, version = obj["apiVersion"].rpartition("/")
    where = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
    if (group, obj["kind"]) in CRD_FILES:
        schema = crd_schema(group, obj["kind"], version)
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        try:
            jsonschema.validate(body, schema)
        except jsonschema.ValidationError as err:
            raise AssertionError(f"{where}: {err.message} at {list(err.absolute_path)}") from None
        pruned = unknown_fields(body, schema)
        assert not pruned, f"{where}: fields unknown to the CRD: {pruned}"
        return
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        raise AssertionError(f"{where}: {err.message} at {list(err.path)}") from None
