"""Orchestration errors. Each is a `CodesenseError`, so the CLI prints one line and exits with its code."""

from __future__ import annotations

from codesense_ray.errors import CodesenseError, InvalidConfig


class MissingCredentials(InvalidConfig):
    """An env var named in the config (e.g. `dvc.s3.access_key_id_env`) is not set."""

    def __init__(self, env_name: str, what: str) -> None:
        super().__init__(f"environment variable {env_name} is not set ({what})")
        self.env_name = env_name


class InvalidSchedule(InvalidConfig):
    """A cron expression KFP would reject; raised before any call to the KFP API."""


class ToolMissing(CodesenseError):
    """A command-line tool the step needs (git, dvc, ray) is not installed."""

    exit_code = 2


class ServiceUnreachable(CodesenseError):
    """A service (Ray dashboard, Kubernetes API, KFP API) did not answer within the bounded timeout."""

    exit_code = 5


class RayUnreachable(ServiceUnreachable):
    """The Ray dashboard / Job Submission API at the configured address cannot be reached."""


class ServiceError(CodesenseError):
    """A reachable service refused a request (HTTP 4xx/5xx from Kubernetes or KFP)."""

    exit_code = 5


class JobFailed(CodesenseError):
    """A submitted job ended in FAILED/STOPPED (or ran past its limit). Carries its last log lines."""

    exit_code = 6

    def __init__(self, job_id: str, status: str, message: str = "", log_tail: list[str] | None = None) -> None:
        self.job_id = job_id
        self.status = status
        self.message = message
        self.log_tail = list(log_tail or [])
        text = f"job {job_id} {status}"
        if message:
            text += f": {message}"
        if self.log_tail:
            # The CLI prints one line per error; a failed job is the exception where the user needs the
            # job's own last words, so they follow the headline, indented.
            text += "\n  last log lines:\n" + "\n".join(f"  | {line}" for line in self.log_tail)
        super().__init__(text)


class PipelineFailed(CodesenseError):
    """A local pipeline run finished with a failed task."""

    exit_code = 6
