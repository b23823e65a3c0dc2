"""`codesense deploy apply`: server-side apply with the `kubernetes` client, readiness waits, a per-object report.

Server-side apply (`PATCH` with `application/apply-patch+yaml`, field manager `codesense`) is `kubectl apply
--server-side`: the API server merges our fields and records that `codesense` owns them, so a second apply
of the same objects changes nothing and fields other controllers own (KServe's status, KubeRay's defaults)
are left alone. Readiness is read from each kind's own status (Deployment replicas, RayService / InferenceService
`Ready` condition, RayCluster state, ClusterPolicy state).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from codesense_ray.errors import CodesenseError, DeployError  # noqa: F401

FIELD_MANAGER = "codesense"

KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("ray.io/v1", "RayCluster"): ("rayclusters", True),
    ("ray.io/v1", "RayService"): ("rayservices", True),
    ("ray.io/v1", "RayJob"): ("rayjobs", True),
    ("serving.kserve.io/v1beta1", "InferenceService"): ("inferenceservices", True),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): ("clusterservingruntimes", False),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("servicemonitors", True),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("podmonitors", True),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("prometheusrules", True),
    ("nvidia.com/v1", "ClusterPolicy"): ("clusterpolicies", False),
}

# Namespaces first, then what pods mount or run as, then workloads and custom resources.
APPLY_ORDER = ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service", "ClusterServingRuntime"]




def kube_client(context: str | None = None):
    """A `kubernetes.client.ApiClient`: the pod's service account inside a cluster, else kubeconfig (`context`)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        pass
    # kubernetes.config reads $KUBECONFIG once, at import; read it now so the current value counts.
    path = os.environ.get("KUBECONFIG")
    try:
        return config.new_client_from_config(config_file=path if path and os.pathsep not in path else None, context=context)
    except (config.ConfigException, FileNotFoundError, TypeError) as err:
        raise DeployError(f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({err}); set KUBECONFIG or deployment.kube_context") from None


class KubeObjects:
    """GET / server-side apply / JSON-merge-patch of arbitrary objects through one `ApiClient` (no discovery needed)."""

    def __init__(self, api_client: Any, field_manager: str = FIELD_MANAGER) -> None:
        self.api = api_client
        self.field_manager = field_manager

    @staticmethod
    def path(api_version: str, kind: str, name: str, namespace: str | None = None) -> str:
        try:
            plural, namespaced = KINDS[(api_version, kind)]
        except KeyError:
            raise DeployError(f"{kind} ({api_version}) is not a kind codesense knows how to apply") from None
        root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            if not namespace:
                raise DeployError(f"{kind} {name} needs metadata.namespace")
            root += f"/namespaces/{namespace}"
        return f"{root}/{plural}/{name}"

    def _call(self, method: str, path: str, body: Any = None, content_type: str | None = None, query: list | None = None) -> dict:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return self.api.call_api(
                path, method, query_params=query or [], header_params=headers, body=body, response_type="object",
                auth_settings=["BearerToken"], _return_http_data_only=True, _preload_content=True,
            )
        except ApiException as err:
            if err.status == 404 and method == "GET":
                raise KeyError(path) from None
            raise DeployError(f"{method} {path}: HTTP {err.status}: {_status_message(err)}") from None
        except HTTPError as err:
            host = getattr(self.api.configuration, "host", "?")
            raise DeployError(f"Kubernetes API at {host} is unreachable: {type(err).__name__}") from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        try:
            return self._call("GET", self.path(api_version, kind, name, namespace))
        except KeyError:
            return None

    def apply(self, obj: dict) -> dict:
        meta = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        query = [("fieldManager", self.field_manager), ("force", "true")]
        return self._call("PATCH", path, body=obj, content_type="application/apply-patch+yaml", query=query)


def _status_message(err: Any) -> str:
    import json

    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


# --- readiness ------------------------------------------------------------------------------------
def _condition(obj: dict, kind: str = "Ready") -> tuple[bool, str]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            ok = str(c.get("status")) == "True"
            return ok, "" if ok else (c.get("message") or c.get("reason") or f"{kind}={c.get('status')}")
    return False, f"no {kind} condition yet"


def readiness(obj: dict) -> tuple[bool, str]:
    """(ready, why not) from the object's status as the API server returned it."""
    kind, status = obj["kind"], obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if kind in ("Deployment", "StatefulSet"):
        want = (obj.get("spec") or {}).get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        if generation and status.get("observedGeneration", 0) < generation:
            return False, "controller has not seen the latest spec"
        return ready >= want, f"{ready}/{want} replicas ready"
    if kind == "Namespace":
        return status.get("phase", "Active") == "Active", f"phase {status.get('phase')}"
    if kind in ("InferenceService", "RayService"):
        ok, why = _condition(obj)
        if not ok and kind == "RayService" and status.get("serviceStatus") == "Running":
            return True, ""  # KubeRay before conditions reported serviceStatus only
        return ok, why
    if kind == "RayCluster":
        state = status.get("state")
        return state == "ready", f"state {state or 'unknown'}"
    if kind == "ClusterPolicy":
        state = status.get("state")
        return state == "ready", f"state {state or 'unknown'} (GPU nodes labelled and drivers up?)"
    return True, ""


@dataclass
class ObjectReport:
    kind: str
    name: str
    namespace: str
    action: str  # created | configured | unchanged
    ready: bool | None = None  # None: not waited for
    message: str = ""
    seconds: float = 0.0


@dataclass
class ApplyReport:
    objects: list[ObjectReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.ready is not False for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "seconds": round(self.seconds, 3), "objects": [asdict(o) for o in self.objects]}


def apply_order(objs: list[dict]) -> list[dict]:
    rank = {k: i for i, k in enumerate(APPLY_ORDER)}
    return sorted(objs, key=lambda o: rank.get(o["kind"], len(rank)))


def apply_objects(
    objs: list[dict],
    api_client: Any,
    *,
    wait: bool = True,
    timeout_s: float = 900.0,
    poll_interval_s: float = 5.0,
    field_manager: str = FIELD_MANAGER,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplyReport:
    """Apply every object (server-side), then poll until each is ready or `timeout_s` passes. Never raises for
    a slow object: the report says which one is not ready and why; a refused object raises `DeployError`."""
    kube = KubeObjects(api_client, field_manager)
    started = clock()
    report = ApplyReport()
    pending: list[tuple[ObjectReport, dict]] = []
    for obj in apply_order(objs):
        meta = obj["metadata"]
        before = kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        after = kube.apply(obj)
        if before is None:
            action = "created"
        else:
            changed = (after.get("metadata") or {}).get("resourceVersion") != (before.get("metadata") or {}).get("resourceVersion")
            action = "configured" if changed else "unchanged"
        entry = ObjectReport(obj["kind"], meta["name"], meta.get("namespace", ""), action)
        report.objects.append(entry)
        if wait:
            pending.append((entry, obj))
    while pending:
        still = []
        for entry, obj in pending:
            current = kube.get(obj["apiVersion"], obj["kind"], entry.name, entry.namespace or None) or {}
            ok, why = readiness({**current, "kind": obj["kind"]})
            entry.seconds = round(clock() - started, 3)
            if ok:
                entry.ready, entry.message = True, ""
            else:
                entry.message = why
                still.append((entry, obj))
        pending = still
        if pending and clock() - started >= timeout_s:
            for entry, _ in pending:
                entry.ready = False
                entry.message = f"not ready after {timeout_s:g}s: {entry.message}"
            break
        if pending:
            sleep(poll_interval_s)
    report.seconds = clock() - started
    return report
