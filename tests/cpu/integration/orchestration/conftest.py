"""Fixtures for orchestration tests: git repositories made on the spot, a private Ray head, the CLI with the
orchestration commands registered, and local HTTP servers speaking the Kubernetes and KFP wire protocols."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.conftest import ROOT

CRD_DIR = ROOT.parent / "shared" / "k8s-crds"

# `codesense` exactly as the console script runs it: if the CLI stops registering a command group, these
# tests fail instead of patching it back in.
CLI_LAUNCHER = """
import sys
from codesense_ray.app.cli import main
sys.exit(main())
"""


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `codesense ARGS` as a user would: a subprocess, its own stdout/stderr and exit code."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    return subprocess.run([sys.executable, "-c", CLI_LAUNCHER, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def codesense_main(monkeypatch) -> Callable[[list[str]], int]:
    """The in-process `codesense` main, unpatched: the commands under test must be registered by the CLI itself."""
    from codesense_ray.app.cli import main

    return main


# --- git repositories -----------------------------------------------------------------------------
def git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


class SourceRepo:
    """A local git repository reachable as a `file://` URL, with helpers to commit and tag."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for rel, text in files.items():
            f = self.path / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def tag(self, name: str) -> None:
        git(self.path, "tag", name)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], SourceRepo]:
    def make(name: str) -> SourceRepo:
        return SourceRepo(tmp_path / "sources" / name)

    return make


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    """An empty project directory (not inside any git repository) with its own CODESENSE_HOME."""
    proj = tmp_path / "project"
    proj.mkdir()
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    return proj


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- a private Ray head ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_head():
    """One private `ray start --head` for the session (own ports and temp dir); only it is stopped afterwards."""
    from codesense_ray.orchestration.local_ray import LocalRayHead

    head = LocalRayHead(num_cpus=2).start()
    yield head
    head.stop()


# --- a local Kubernetes API for RayJobs -----------------------------------------------------------
class FakeKubernetes:
    """Records RayJobs POSTed to it and advances their status on each read, like the KubeRay operator would.

    `outcome` is the final `jobStatus` (`SUCCEEDED` or `FAILED`); `logs` is what the submitter pod printed.
    """

    def __init__(self, outcome: str = "SUCCEEDED", logs: str = "", steps: int = 2) -> None:
        self.outcome = outcome
        self.logs = logs
        self.steps = steps
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def status_after(self, reads: int) -> dict[str, Any]:
        if reads <= 1:
            return {"jobDeploymentStatus": "Initializing"}
        if reads <= self.steps:
            return {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "rayClusterName": "rc-1"}
        final = {"jobStatus": self.outcome, "rayClusterName": "rc-1", "jobId": "raysubmit-1"}
        if self.outcome == "SUCCEEDED":
            return {**final, "jobDeploymentStatus": "Complete", "message": "Job finished successfully."}
        return {**final, "jobDeploymentStatus": "Failed", "reason": "AppFailed", "message": "Job entrypoint command failed with exit code 1"}


def _make_k8s_handler(state: FakeKubernetes):
    rayjobs = "/apis/ray.io/v1/namespaces/"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _not_found(self, what: str) -> None:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": f"{what} not found", "reason": "NotFound", "code": 404})

        def _route(self) -> tuple[str, list[str], dict[str, list[str]]]:
            from urllib.parse import parse_qs, urlsplit

            parts = urlsplit(self.path)
            state.requests.append((self.command, parts.path))
            return parts.path, [p for p in parts.path.split("/") if p], parse_qs(parts.query)

        def do_POST(self) -> None:
            path, seg, _ = self._route()
            if path.startswith(rayjobs) and seg[-1] == "rayjobs":
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ns, name = seg[4], body["metadata"]["name"]
                if (ns, name) in state.objects:
                    return self._send(409, {"kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409, "message": "exists"})
                state.created.append(json.loads(json.dumps(body)))
                obj = {**body, "metadata": {**body["metadata"], "uid": "uid-1", "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}}
                state.objects[(ns, name)] = obj
                state.reads[(ns, name)] = 0
                return self._send(201, obj)
            self._not_found(path)

        def do_GET(self) -> None:
            path, seg, query = self._route()
            if path.startswith(rayjobs) and len(seg) == 7:
                key = (seg[4], seg[6])
                if key not in state.objects:
                    return self._not_found(f"rayjobs {key[1]}")
                state.reads[key] += 1
                obj = {**state.objects[key], "status": state.status_after(state.reads[key])}
                return self._send(200, obj)
            if path.startswith("/api/v1/namespaces/") and seg[-1] == "pods":
                job = query.get("labelSelector", [""])[0].removeprefix("job-name=")
                items = [
                    {"metadata": {"name": f"{job}-submitter", "namespace": seg[3], "labels": {"job-name": job}, "creationTimestamp": "2026-01-01T00:00:01Z"}}
                ]
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
            if path.startswith("/api/v1/namespaces/") and seg[-1] == "log":
                tail = int(query.get("tailLines", ["0"])[0] or 0)
                lines = state.logs.splitlines()
                return self._send(200, "\n".join(lines[-tail:] if tail else lines) + "\n", "text/plain")
            self._not_found(path)

        def do_DELETE(self) -> None:
            path, seg, _ = self._route()
            key = (seg[4], seg[6]) if len(seg) == 7 else None
            if key and key in state.objects:
                del state.objects[key]
                state.deleted.append(key[1])
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            self._not_found(path)

    return Handler


class _Server:
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


@pytest.fixture
def fake_kubernetes():
    """Factory: a FakeKubernetes state and a real `kubernetes.client.ApiClient` pointed at it."""
    servers = []

    def start(**kwargs):
        from kubernetes import client

        state = FakeKubernetes(**kwargs)
        server = _Server(_make_k8s_handler(state))
        servers.append(server)
        conf = client.Configuration()
        conf.host = server.url
        return state, client.ApiClient(conf)

    yield start
    for s in servers:
        s.close()


def rayjob_schema() -> dict:
    """The openAPIV3Schema of ray.io/v1 RayJob from the real CRD (skips the test when the file is absent)."""
    crd = CRD_DIR / "ray.io_rayjobs.yaml"
    if not crd.is_file():
        pytest.skip(f"KubeRay CRD not found at {crd} (reference data from ../shared/k8s-crds)")
    return _load_crd_schema(str(crd), "v1")


@functools.lru_cache(maxsize=None)
def _load_crd_schema(path: str, version: str) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1.4 MB of YAML
    doc = yaml.load(Path(path).read_text(), Loader=loader)
    for v in doc["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no {version} version in {path}")


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


# --- a local KFP v2beta1 API ----------------------------------------------------------------------
class FakeKfp:
    """Experiments, pipelines (upload, versions) and recurring runs, stored in memory like the KFP API server."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.uploads: list[dict] = []
        self._n = 0

    def new_id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}-{self._n}"


def _display_filter(query: dict) -> str | None:
    raw = query.get("filter", [None])[0]
    if not raw:
        return None
    for p in json.loads(raw).get("predicates", []):
        if p.get("key") == "display_name" and p.get("operation") in (1, "EQUALS"):
            return p.get("stringValue") or p.get("string_value")
    return None


def _make_kfp_handler(state: FakeKfp):
    base = "/apis/v2beta1"

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

        def _route(self):
            from urllib.parse import parse_qs, urlsplit

            parts = urlsplit(self.path)
            state.requests.append((self.command, parts.path))
            return parts.path.removeprefix(base), parse_qs(parts.query)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _upload_file(self) -> bytes:
            import email.parser
            import email.policy

            raw = self._body()
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw
            )
            for part in msg.iter_parts():
                if part.get_param("name", header="content-disposition") == "uploadfile":
                    return part.get_payload(decode=True)
            raise AssertionError("no uploadfile part")

        def _add_version(self, pipeline_id: str, name: str, spec: bytes) -> dict:
            version = {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": state.new_id("version"),
                "display_name": name,
                "created_at": f"2026-01-01T00:00:{len(state.versions.get(pipeline_id, [])):02d}Z",
                "pipeline_spec": next(yaml.safe_load_all(spec)),
            }
            state.versions.setdefault(pipeline_id, []).append(version)
            return version

        def do_GET(self) -> None:
            path, query = self._route()
            name = _display_filter(query)
            if path == "/healthz":
                return self._send(200, {"multi_user": False, "pipeline_store": "database"})
            if path == "/experiments":
                items = [e for e in state.experiments.values() if name is None or e["display_name"] == name]
                return self._send(200, {"experiments": items, "total_size": len(items)} if items else {})
            if path == "/pipelines":
                items = [p for p in state.pipelines.values() if name is None or p["display_name"] == name]
                return self._send(200, {"pipelines": items, "total_size": len(items)} if items else {})
            if path.startswith("/pipelines/") and path.endswith("/versions"):
                pid = path.split("/")[2]
                items = [v for v in state.versions.get(pid, []) if name is None or v["display_name"] == name]
                if "created_at desc" in query.get("sort_by", [""]):
                    items = sorted(items, key=lambda v: v["created_at"], reverse=True)
                return self._send(200, {"pipeline_versions": items, "total_size": len(items)} if items else {})
            if path == "/recurringruns":
                exp = query.get("experiment_id", [None])[0]
                items = [
                    r for r in state.recurring_runs.values() if (exp is None or r["experiment_id"] == exp) and (name is None or r["display_name"] == name)
                ]
                return self._send(200, {"recurringRuns": items, "total_size": len(items)} if items else {})
            self._send(404, {"error": f"{path} not found", "code": 5, "message": f"{path} not found"})

        def do_POST(self) -> None:
            path, query = self._route()
            if path == "/experiments":
                body = json.loads(self._body())
                exp = {**body, "experiment_id": state.new_id("experiment"), "storage_state": "AVAILABLE"}
                state.experiments[exp["experiment_id"]] = exp
                return self._send(200, exp)
            if path == "/pipelines":
                body = json.loads(self._body())
                pipeline = {**body, "pipeline_id": state.new_id("pipeline"), "created_at": "2026-01-01T00:00:00Z"}
                state.pipelines[pipeline["pipeline_id"]] = pipeline
                return self._send(200, pipeline)
            if path == "/pipelines/upload":
                spec = self._upload_file()
                name = query["name"][0]
                pipeline = {"pipeline_id": state.new_id("pipeline"), "display_name": name, "name": name}
                state.pipelines[pipeline["pipeline_id"]] = pipeline
                state.uploads.append({"pipeline": name})
                self._add_version(pipeline["pipeline_id"], name, spec)
                return self._send(200, pipeline)
            if path == "/pipelines/upload_version":
                spec = self._upload_file()
                pid = query["pipelineid"][0]
                state.uploads.append({"version": query["name"][0]})
                return self._send(200, self._add_version(pid, query["name"][0], spec))
            if path == "/recurringruns":
                body = json.loads(self._body())
                run = {**body, "recurring_run_id": state.new_id("recurring"), "status": "ENABLED"}
                state.recurring_runs[run["recurring_run_id"]] = run
                return self._send(200, run)
            self._send(404, {"error": "not found", "code": 5, "message": f"{path} not found"})

        def do_DELETE(self) -> None:
            path, _ = self._route()
            if path.startswith("/recurringruns/"):
                state.recurring_runs.pop(path.split("/")[2], None)
                return self._send(200, {})
            self._send(404, {"error": "not found", "code": 5, "message": f"{path} not found"})

    return Handler


@pytest.fixture
def fake_kfp():
    """A FakeKfp state and the URL of a local server speaking the KFP v2beta1 REST API for it."""
    state = FakeKfp()
    server = _Server(_make_kfp_handler(state))
    yield state, server.url
    server.close()
