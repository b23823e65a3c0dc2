"""Job submission: one interface, two backends chosen by `jobs.backend`.

- `ray-jobs` (`RayJobsBackend`): the Ray Job Submission API of a running head — `ray job submit` as a
  library. Submit with a runtime env, poll, stream the logs, and fail with the job's last log lines.
- `kuberay` (`KubeRayBackend`): a `ray.io/v1` `RayJob` created through the Kubernetes API — a Kubernetes
  Job that brings its own Ray cluster (head + worker groups from config) and deletes it when done.

Both take a `JobSpec` (what to run) and return a `JobResult`; a failed job raises `JobFailed` carrying the
last log lines. The RayJob manifest is built by a pure function, `build_rayjob_manifest`, so it can be
reviewed, diffed and validated against the CRD without a cluster.

    backend = make_backend(JobsConfig())                      # ray-jobs at http://127.0.0.1:8265
    result = backend.run(JobSpec(name="index", entrypoint="python jobs/index.py --config codesense.yaml"))
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from codesense_ray.errors import JobFailed, RayUnreachable, ServiceError, ServiceUnreachable
from codesense_ray.orchestration.rayjob import RAYJOB_GROUP, RAYJOB_PLURAL, RAYJOB_VERSION, build_rayjob_manifest
from codesense_ray.config.orchestration import JobsConfig, KubeRayConfig

LogSink = Callable[[str], None]

RAY_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
KUBERAY_TERMINAL_DEPLOYMENT = {"Complete", "Failed"}
RESULT_LOG_LINES = 1000  # enough to hold a stage's --json summary at the end of the log


@dataclass(frozen=True)
class JobSpec:
    """What to run: a shell entrypoint (run in the job's working directory), plus its runtime env.

    `runtime_env` follows Ray's format (`working_dir`, `env_vars`, `excludes`, `pip`, ...). The `kuberay`
    backend sends it as `runtimeEnvYAML`; a local `working_dir` is not uploaded there (the code is in the image).
    """

    name: str
    entrypoint: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    submission_id: str | None = None


@dataclass
class JobResult:
    """How a job ended. `logs` is the tail the backend could read (the whole log for short jobs)."""

    job_id: str
    backend: str
    status: str
    seconds: float
    logs: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED"

    def log_tail(self, n: int) -> list[str]:
        return [ln for ln in self.logs.rstrip().splitlines()][-n:]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobBackend(ABC):
    """Submit a job, wait for a terminal state, report it. `run` = `submit` + `wait`."""

    name: str

    @abstractmethod
    def submit(self, spec: JobSpec) -> str:
        """Start the job; returns its id (Ray submission id, or the RayJob name)."""

    @abstractmethod
    def wait(self, job_id: str, on_log: LogSink | None = None) -> JobResult:
        """Block until the job is terminal; `JobFailed` (with the last log lines) unless it SUCCEEDED."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Stop a running job (best effort)."""

    def run(self, spec: JobSpec, on_log: LogSink | None = None) -> JobResult:
        job_id = self.submit(spec)
        try:
            return self.wait(job_id, on_log)
        except KeyboardInterrupt:
            self.cancel(job_id)
            raise


def new_job_id(stage: str) -> str:
    """`codesense-<stage>-<8 hex>`: short enough for a RayJob name (KubeRay appends its own suffixes)."""
    stage = re.sub(r"[^a-z0-9-]+", "-", stage.lower()).strip("-")[:20] or "job"
    return f"codesense-{stage}-{uuid.uuid4().hex[:8]}"


# --- ray-jobs -------------------------------------------------------------------------------------
def normalize_dashboard_address(address: str) -> str:
    """`host:port` or `http(s)://host:port` → URL; Ray Client (`ray://`) and GCS addresses are rejected."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RayUnreachable(
            f"ray address {address!r} is not a dashboard URL: give the Job Submission address, e.g. http://127.0.0.1:8265"
        )
    return address


def probe_tcp(address: str, timeout_s: float, error: type[ServiceUnreachable] = RayUnreachable, what: str = "Ray dashboard", hint: str = "") -> None:
    """Open (and close) a TCP connection to the URL's host:port within `timeout_s`, or raise `error`.

    The Ray SDK's version check and the KFP client have no connect timeout: against a dropped route they
    hang for minutes. This bounds the wait and names the address.
    """
    parts = urlsplit(address)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return
    except socket.timeout:
        reason = f"no answer within {timeout_s:g}s"
    except OSError as err:
        reason = err.strerror or str(err)
    hint = hint or "start a head with `ray start --head` or set jobs.ray_address / --ray-address"
    raise error(f"{what} at {address} is unreachable ({reason}): {hint}")


def ray_auth_headers() -> dict[str, str]:
    """Bearer token for a head with token authentication (Ray >= 2.5x enables it by default when a token exists).

    Read like Ray does — `RAY_AUTH_TOKEN`, else the file at `RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token` —
    but sent explicitly, so it works whatever `RAY_AUTH_MODE` this process has. No token: no header.
    """
    token = os.environ.get("RAY_AUTH_TOKEN")
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            token = None
    return {"Authorization": f"Bearer {token}"} if token else {}


class RayJobsBackend(JobBackend):
    """Ray Job Submission API (`JobSubmissionClient`) against a head's dashboard address."""

    name = "ray-jobs"

    def __init__(
        self,
        address: str,
        *,
        connect_timeout_s: float = 10.0,
        poll_interval_s: float = 2.0,
        timeout_s: float = 3 * 3600.0,
        log_tail_lines: int = 40,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.address = normalize_dashboard_address(address)
        self.connect_timeout_s = connect_timeout_s
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.log_tail_lines = log_tail_lines
        self._client_factory = client_factory
        self._client = None
        self._started: dict[str, float] = {}

    @classmethod
    def from_config(cls, jobs: JobsConfig, address: str | None = None) -> "RayJobsBackend":
        return cls(
            address or jobs.ray_address,
            connect_timeout_s=jobs.connect_timeout_s,
            poll_interval_s=jobs.poll_interval_s,
            timeout_s=jobs.timeout_s,
            log_tail_lines=jobs.log_tail_lines,
        )

    @property
    def client(self):
        if self._client is None:
            probe_tcp(self.address, self.connect_timeout_s)
            factory = self._client_factory
            if factory is None:
                from ray.job_submission import JobSubmissionClient as factory
            try:
                self._client = factory(self.address, headers=ray_auth_headers() or None)
            except ConnectionError as err:
                raise RayUnreachable(f"Ray dashboard at {self.address} is unreachable: {err}") from None
            except Exception as err:  # AuthenticationError, version mismatch, HTTP errors
                raise RayUnreachable(f"Ray dashboard at {self.address} refused the connection: {_first_line(err)}") from None
        return self._client

    def submit(self, spec: JobSpec) -> str:
        job_id = spec.submission_id or new_job_id(spec.name)
        runtime_env = dict(spec.runtime_env)
        try:
            submitted = self.client.submit_job(
                entrypoint=spec.entrypoint, submission_id=job_id, runtime_env=runtime_env or None, metadata=dict(spec.metadata) or None
            )
        except (RayUnreachable, JobFailed):
            raise
        except Exception as err:
            raise ServiceError(f"Ray refused job {job_id}: {_first_line(err)}") from None
        self._started[submitted] = time.monotonic()
        return submitted

    def wait(self, job_id: str, on_log: LogSink | None = None) -> JobResult:
        started = self._started.get(job_id, time.monotonic())
        seen = 0
        logs = ""
        while True:
            status = str(self.client.get_job_status(job_id))
            status = status.split(".")[-1]  # JobStatus enum str() is the value; be tolerant of "JobStatus.X"
            logs = self._logs(job_id, logs)
            if on_log and len(logs) > seen:
                for line in logs[seen:].splitlines():
                    on_log(line)
                seen = len(logs)
            if status in RAY_TERMINAL:
                break
            if time.monotonic() - started > self.timeout_s:
                self.cancel(job_id)
                result = JobResult(job_id, self.name, "TIMEOUT", time.monotonic() - started, logs)
                raise JobFailed(job_id, "TIMEOUT", f"ran longer than {self.timeout_s:g}s and was stopped", result.log_tail(self.log_tail_lines))
            time.sleep(self.poll_interval_s)
        info = self._info(job_id)
        result = JobResult(job_id, self.name, status, time.monotonic() - started, logs, details=info)
        if not result.ok:
            message = info.get("message") or ""
            raise JobFailed(job_id, status, _first_line(message), result.log_tail(self.log_tail_lines))
        return result

    def _logs(self, job_id: str, previous: str) -> str:
        try:
            return self.client.get_job_logs(job_id)
        except Exception:
            return previous

    def _info(self, job_id: str) -> dict[str, Any]:
        try:
            info = self.client.get_job_info(job_id)
        except Exception:
            return {}
        keep = ("message", "error_type", "driver_exit_code", "start_time", "end_time", "entrypoint", "metadata")
        return {k: getattr(info, k, None) for k in keep if getattr(info, k, None) is not None}

    def cancel(self, job_id: str) -> None:
        try:
            self.client.stop_job(job_id)
        except Exception:
            pass


# --- kuberay --------------------------------------------------------------------------------------
class KubeRayBackend(JobBackend):
    """RayJob custom resources through `kubernetes.client.CustomObjectsApi`, watched until terminal.

    `api_client` is a `kubernetes.client.ApiClient`; by default the in-cluster service account, else the
    kubeconfig (context `kube_context`).
    """

    name = "kuberay"

    def __init__(
        self,
        kcfg: KubeRayConfig,
        *,
        api_client: Any = None,
        poll_interval_s: float = 5.0,
        timeout_s: float = 3 * 3600.0,
        log_tail_lines: int = 40,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.kcfg = kcfg
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.log_tail_lines = log_tail_lines
        self.request_timeout_s = request_timeout_s
        self._api_client = api_client
        self._started: dict[str, float] = {}

    @classmethod
    def from_config(cls, jobs: JobsConfig, api_client: Any = None) -> "KubeRayBackend":
        return cls(jobs.kuberay, api_client=api_client, poll_interval_s=jobs.poll_interval_s, timeout_s=jobs.timeout_s, log_tail_lines=jobs.log_tail_lines)

    @property
    def api_client(self):
        if self._api_client is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config(context=self.kcfg.kube_context)
                except Exception as err:
                    raise ServiceUnreachable(f"no Kubernetes credentials (in-cluster or kubeconfig): {_first_line(err)}") from None
            self._api_client = client.ApiClient()
        return self._api_client

    def _custom(self):
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def _call(self, what: str, fn, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self.request_timeout_s, **kwargs)
        except ApiException as err:
            reason = _k8s_message(err)
            raise ServiceError(f"Kubernetes API refused to {what}: {err.status} {reason}") from None
        except Exception as err:  # urllib3 connection errors
            raise ServiceUnreachable(f"Kubernetes API unreachable while trying to {what}: {_first_line(err)}") from None

    def manifest(self, spec: JobSpec, name: str | None = None) -> dict[str, Any]:
        return build_rayjob_manifest(spec, self.kcfg, name or spec.submission_id or new_job_id(spec.name), active_deadline_s=self.timeout_s)

    def submit(self, spec: JobSpec) -> str:
        body = self.manifest(spec)
        name = body["metadata"]["name"]
        self._call(
            f"create RayJob {self.kcfg.namespace}/{name}",
            self._custom().create_namespaced_custom_object,
            RAYJOB_GROUP, RAYJOB_VERSION, self.kcfg.namespace, RAYJOB_PLURAL, body,
        )  # fmt: skip
        self._started[name] = time.monotonic()
        return name

    def get(self, name: str) -> dict[str, Any]:
        return self._call(
            f"read RayJob {self.kcfg.namespace}/{name}",
            self._custom().get_namespaced_custom_object,
            RAYJOB_GROUP, RAYJOB_VERSION, self.kcfg.namespace, RAYJOB_PLURAL, name,
        )  # fmt: skip

    def wait(self, job_id: str, on_log: LogSink | None = None) -> JobResult:
        started = self._started.get(job_id, time.monotonic())
        last_phase = None
        while True:
            obj = self.get(job_id)
            status = obj.get("status") or {}
            deployment = status.get("jobDeploymentStatus") or ""
            job_status = status.get("jobStatus") or ""
            phase = (deployment, job_status)
            if on_log and phase != last_phase:
                on_log(f"RayJob {job_id}: jobDeploymentStatus={deployment or '-'} jobStatus={job_status or '-'}")
                last_phase = phase
            # Terminal exactly when KubeRay says so (its IsJobDeploymentTerminal): Complete or Failed. A FAILED
            # jobStatus under `Retrying` (backoffLimit > 0) or a Kueue-`Suspended` job is not the end yet.
            if deployment in KUBERAY_TERMINAL_DEPLOYMENT:
                break
            if time.monotonic() - started > self.timeout_s:
                tail = self._submitter_logs(job_id)[-self.log_tail_lines :]
                self.cancel(job_id)
                raise JobFailed(job_id, "TIMEOUT", f"ran longer than {self.timeout_s:g}s; RayJob deleted", tail)
            time.sleep(self.poll_interval_s)
        details = {
            k: status.get(k)
            for k in ("jobDeploymentStatus", "jobStatus", "rayClusterName", "dashboardURL", "jobId", "message", "reason", "startTime", "endTime")
            if status.get(k)
        }
        final = job_status or ("SUCCEEDED" if deployment == "Complete" else "FAILED")
        if deployment == "Failed" and final == "SUCCEEDED":
            final = "FAILED"
        logs = self._submitter_logs(job_id, lines=RESULT_LOG_LINES)
        result = JobResult(job_id, self.name, final, time.monotonic() - started, "\n".join(logs), details)
        if not result.ok:
            message = status.get("message") or status.get("reason") or f"jobDeploymentStatus={deployment}"
            raise JobFailed(job_id, final, _first_line(message), result.log_tail(self.log_tail_lines))
        return result

    def _submitter_logs(self, name: str, lines: int | None = None) -> list[str]:
        """Last lines of the submitter pod (K8sJobMode: a Job named like the RayJob tails the Ray job's logs)."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        try:
            pods = core.list_namespaced_pod(self.kcfg.namespace, label_selector=f"job-name={name}", _request_timeout=self.request_timeout_s)
            if not pods.items:
                return []
            pod = sorted(pods.items, key=lambda p: str(p.metadata.creation_timestamp or ""))[-1]
            text = core.read_namespaced_pod_log(
                pod.metadata.name, self.kcfg.namespace, tail_lines=lines or self.log_tail_lines, _request_timeout=self.request_timeout_s
            )
        except Exception:
            return []  # logs are a courtesy; the status already says what happened
        return str(text).rstrip().splitlines()

    def cancel(self, job_id: str) -> None:
        from kubernetes import client

        try:
            self._custom().delete_namespaced_custom_object(
                RAYJOB_GROUP, RAYJOB_VERSION, self.kcfg.namespace, RAYJOB_PLURAL, job_id,
                body=client.V1DeleteOptions(propagation_policy="Foreground"), _request_timeout=self.request_timeout_s,
            )  # fmt: skip
        except Exception:
            pass


def make_backend(jobs: JobsConfig, backend: str | None = None, *, ray_address: str | None = None, api_client: Any = None) -> JobBackend:
    """The backend named by `backend` (default `jobs.backend`)."""
    name = backend or jobs.backend
    if name == "ray-jobs":
        return RayJobsBackend.from_config(jobs, ray_address)
    if name == "kuberay":
        return KubeRayBackend.from_config(jobs, api_client)
    from codesense_ray.errors import InvalidConfig

    raise InvalidConfig(f"unknown job backend {name!r} (known: ray-jobs, kuberay)")


def _first_line(err: Any) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _k8s_message(err: Any) -> str:
    import json

    try:
        return json.loads(err.body).get("message") or err.reason
    except Exception:
        return str(err.reason or "")
