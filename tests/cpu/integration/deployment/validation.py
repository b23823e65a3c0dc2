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


@functools.lru_cache(maxsize=None)
def crd_validator(group: str, kind: str, version: str):
    import jsonschema

    schema = crd_schema(group, kind, version)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema), schema


@functools.lru_cache(maxsize=None)
def _core_definitions():
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    defs = utils.schema_contents(f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/_definitions.json", KUBERNETES_VERSION)
    return Resource.from_contents(defs) @ Registry()


@functools.lru_cache(maxsize=None)
def core_validator(api_version: str, kind: str):
    """kubernetes-validate's strict schema for one kind, built once (its `validate()` re-reads 2 MB per call)."""
    import re

    import jsonschema
    from kubernetes_validate import utils
    from referencing import Resource

    name = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/{kind.lower()}-{name}.json"
    schema = utils.schema_contents(path, KUBERNETES_VERSION)
    registry = Resource.from_contents(schema) @ _core_definitions()
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_object(obj: dict) -> None:
    """Raise AssertionError naming the object when it would be rejected (or silently pruned) by the API server."""
    group, _, version = obj["apiVersion"].rpartition("/")
    where = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
    if (group, obj["kind"]) in CRD_FILES:
        validator, schema = crd_validator(group, obj["kind"], version)
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
        pruned = unknown_fields(body, schema)
        assert not pruned, f"{where}: fields unknown to the CRD: {pruned}"
        return
    errors = list(core_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
