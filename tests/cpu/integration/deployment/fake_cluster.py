"""Local HTTP servers speaking the Kubernetes API (server-side apply, GET with controller-written status) and
Prometheus' HTTP API (`/api/v1/query`), for the real `kubernetes` client and the rollout gates."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import yaml


class FakeCluster:
    """Objects stored by API path. Server-side apply creates or replaces our fields; reads return a status the
    way the controllers (KubeRay, KServe + Knative, apps) would write it, `ready_after` reads after a change."""

    def __init__(self, ready_after: int = 2, never_ready: set[tuple[str, str]] | None = None) -> None:
        self.ready_after = ready_after
        self.never_ready = never_ready or set()
        self.objects: dict[str, dict[str, Any]] = {}
        self.reads: dict[str, int] = {}
        self.revisions: dict[str, int] = {}
        self.rolled_out: dict[str, list[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []
        self._rv = 100
        self.lock = threading.Lock()

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.objects.values() if o["kind"] == kind and o["metadata"]["name"] == name), None)

    def applied_specs(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [o for o in self.applied if o["kind"] == kind and o["metadata"]["name"] == name]

    # --- server-side apply ------------------------------------------------------------------------
    def apply(self, path: str, body: dict[str, Any], manager: str) -> tuple[int, dict[str, Any]]:
        self.applied.append(copy.deepcopy(body))
        current = self.objects.get(path)
        fields = {k: v for k, v in body.items() if k not in ("metadata", "status")}
        if current is None:
            self._rv += 1
            meta = {**body["metadata"], "uid": f"uid-{self._rv}", "resourceVersion": str(self._rv), "generation": 1,
                    "managedFields": [{"manager": manager, "operation": "Apply"}]}
            self.objects[path] = {**fields, "metadata": meta}
            self.reads[path] = 0
            self._new_revision(path, None, self.objects[path])
            return 201, self._view(path)
        before = copy.deepcopy(current)
        meta = current["metadata"]
        for key in ("labels", "annotations"):
            if key in body["metadata"]:
                meta[key] = copy.deepcopy(body["metadata"][key])
            else:
                meta.pop(key, None)
        for key in [k for k in current if k not in ("metadata", "status")]:
            if key not in fields:
                del current[key]
        current.update(copy.deepcopy(fields))
        if current != before:
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            if current.get("spec") != before.get("spec"):
                meta["generation"] = meta.get("generation", 1) + 1
                self.reads[path] = 0
                self._new_revision(path, before, current)
        return 200, self._view(path)

    def _new_revision(self, path: str, before: dict | None, after: dict) -> None:
        """Knative makes a new revision only when the pod template changes, not when the traffic split does."""
        if after["kind"] != "InferenceService":
            return

        def template(obj):
            predictor = dict((obj or {}).get("spec", {}).get("predictor", {}))
            predictor.pop("canaryTrafficPercent", None)
            return predictor

        if before is None or template(before) != template(after):
            self.revisions[path] = self.revisions.get(path, 0) + 1

    # --- controllers ------------------------------------------------------------------------------
    def _view(self, path: str) -> dict[str, Any]:
        obj = copy.deepcopy(self.objects[path])
        reads = self.reads.get(path, 0)
        ready = reads >= self.ready_after and (obj["kind"], obj["metadata"]["name"]) not in self.never_ready
        gen = obj["metadata"].get("generation", 1)
        kind = obj["kind"]
        if kind in ("Deployment", "StatefulSet"):
            want = obj["spec"].get("replicas", 1)
            obj["status"] = {"observedGeneration": gen, "replicas": want, "readyReplicas": want if ready else 0}
        elif kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        elif kind == "RayService":
            cond = {"type": "Ready", "status": "True" if ready else "False", "reason": "RayServiceReady" if ready else "Initializing"}
            if not ready:
                cond["message"] = "Serve applications are still deploying"
            obj["status"] = {"observedGeneration": gen, "conditions": [cond]}
        elif kind == "RayCluster":
            obj["status"] = {"state": "ready" if ready else "", "observedGeneration": gen}
        elif kind == "ClusterPolicy":
            obj["status"] = {"state": "ready" if ready else "notReady"}
        elif kind == "InferenceService":
            obj["status"] = self._isvc_status(path, obj, ready, gen)
        return obj

    def _isvc_status(self, path: str, obj: dict, ready: bool, gen: int) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        n = self.revisions.get(path, 1)
        latest = f"{name}-predictor-{n:05d}"
        history = self.rolled_out.setdefault(path, [])
        predictor: dict[str, Any] = {"latestCreatedRevision": latest}
        if ready:
            predictor["latestReadyRevision"] = latest
        elif n > 1:
            predictor["latestReadyRevision"] = f"{name}-predictor-{n - 1:05d}"
        percent = obj["spec"]["predictor"].get("canaryTrafficPercent")
        if ready and percent is None and (not history or history[-1] != latest):
            history.append(latest)
        if history:
            predictor["latestRolledoutRevision"] = history[-1]
            if len(history) > 1:
                predictor["previousRolledoutRevision"] = history[-2]
        stable = history[-1] if history and history[-1] != latest else (history[-2] if len(history) > 1 else None)
        if percent is not None and stable:
            predictor["traffic"] = [
                {"revisionName": latest, "percent": percent, "tag": "latest", "latestRevision": True},
                {"revisionName": stable, "percent": 100 - percent, "tag": "prev", "latestRevision": False},
            ]
        else:
            predictor["traffic"] = [{"revisionName": latest if ready else (stable or latest), "percent": 100, "latestRevision": True}]
        cond = {"type": "Ready", "status": "True" if ready else "False"}
        if not ready:
            cond["reason"] = "RevisionMissing"
            cond["message"] = f"Revision {latest} is not ready (model still loading)"
        url = f"http://{name}.{obj['metadata']['namespace']}.example.com"
        return {"observedGeneration": gen, "url": url, "conditions": [cond], "components": {"predictor": predictor}}

    def get(self, path: str) -> dict[str, Any] | None:
        if path not in self.objects:
            return None
        self.reads[path] = self.reads.get(path, 0) + 1
        return self._view(path)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def _k8s_handler(state: FakeCluster):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self):
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            state.requests.append({"method": self.command, "path": parts.path, "query": query, "content_type": self.headers.get("Content-Type")})
            return parts.path, query

        def do_GET(self) -> None:
            path, _ = self._record()
            with state.lock:
                obj = state.get(path)
            if obj is None:
                return self._send(404, _status(404, "NotFound", f"{path} not found"))
            self._send(200, obj)

        def do_PATCH(self) -> None:
            path, query = self._record()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                return self._send(415, _status(415, "UnsupportedMediaType", f"only server-side apply here, got {self.headers.get('Content-Type')}"))
            if not query.get("fieldManager"):
                return self._send(422, _status(422, "Invalid", "fieldManager is required for apply requests"))
            body = yaml.safe_load(raw)
            seg = [p for p in path.split("/") if p]
            if body["metadata"]["name"] != seg[-1]:
                return self._send(400, _status(400, "BadRequest", "the name of the object does not match the URL"))
            if "namespaces" in seg[:-2] and body["metadata"].get("namespace") not in (None, seg[seg.index("namespaces") + 1]):
                return self._send(400, _status(400, "BadRequest", "the namespace of the object does not match the URL"))
            if body.get("kind") == "InferenceService" and body["spec"]["predictor"].get("minReplicas", 0) < 0:
                return self._send(422, _status(422, "Invalid", "spec.predictor.minReplicas: must be >= 0"))
            with state.lock:
                code, obj = state.apply(path, body, query["fieldManager"])
            self._send(code, obj)

    return Handler


class Server:
    def __init__(self, handler) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_cluster(**kwargs) -> tuple[FakeCluster, Server]:
    state = FakeCluster(**kwargs)
    return state, Server(_k8s_handler(state))


# --- Prometheus -----------------------------------------------------------------------------------
class FakePrometheus:
    """Answers instant queries with `answer(query) -> float | None` (None: empty vector), recording each query."""

    def __init__(self, answer: Callable[[str], float | None]) -> None:
        self.answer = answer
        self.queries: list[str] = []


def _prom_handler(state: FakePrometheus):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, params: dict[str, list[str]]) -> None:
            if urlsplit(self.path).path != "/api/v1/query":
                return self._send(404, {"status": "error", "errorType": "not_found", "error": "not found"})
            query = (params.get("query") or [""])[0]
            if not query:
                return self._send(400, {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": empty'})
            state.queries.append(query)
            value = state.answer(query)
            result = [] if value is None else [{"metric": {}, "value": [1767225600.0, repr(float(value))]}]
            self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

        def do_GET(self) -> None:
            self._handle(parse_qs(urlsplit(self.path).query))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            self._handle(parse_qs(raw))

    return Handler


def start_prometheus(answer: Callable[[str], float | None]) -> tuple[FakePrometheus, Server]:
    state = FakePrometheus(answer)
    return state, Server(_prom_handler(state))
