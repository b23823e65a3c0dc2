"""Domain exceptions. The CLI turns them into one-line messages and exit codes; Serve into HTTP errors."""

from __future__ import annotations


class CodesenseError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    exit_code = 1


class InvalidConfig(CodesenseError):
    """The configuration file is missing, malformed, or names an unknown key or a wrong type."""

    exit_code = 2


class RepositoryNotFound(CodesenseError):
    """A repository id or path that the configuration or the index does not know."""

    exit_code = 2


class IndexNotBuilt(CodesenseError):
    """Search or status was asked before any index run finished."""

    exit_code = 3

    def __init__(self, message: str = "no index yet: run `codesense index`") -> None:
        super().__init__(message)


class StorageLocked(CodesenseError):
    """Embedded Qdrant storage is held by another process (embedded mode allows exactly one)."""

    exit_code = 4


class IndexingFailed(CodesenseError):
    """An index run failed; the previous index is still serving behind the alias."""

    exit_code = 1


# --- orchestration (converge, Ray jobs, Kubernetes, KFP) ---------------------------------------------

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
