"""Every domain exception of codesense, and the one table that maps each to a CLI exit code and an HTTP status.

The core raises these; only the edges translate them: the CLI prints `codesense: error: <message>` and exits
with `exit_code(err)`, the HTTP API answers `http_status(err)` with `{"error": {"type", "message"}}`.
Anything that is not a `CodesenseError` is a bug and surfaces as one (exit 1 with a traceback / HTTP 500).
"""

from __future__ import annotations


class CodesenseError(Exception):
    """Base class: a problem the user can act on, reported without a traceback."""

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    @property
    def http_status(self) -> int:
        return http_status(self)



class InvalidConfig(CodesenseError):
    """The configuration file is missing, malformed, or names an unknown key or a wrong type."""



class RepositoryNotFound(CodesenseError):
    """A repository id or path that the configuration or the index does not know."""



class IndexNotBuilt(CodesenseError):
    """Search or status was asked before any index run finished."""


    def __init__(self, message: str = "no index yet: run `codesense index`") -> None:
        super().__init__(message)


class StorageLocked(CodesenseError):
    """Embedded Qdrant storage is held by another process (embedded mode allows exactly one)."""



class NoRollbackTarget(CodesenseError):
    """`codesense index rollback` has no retained version to move the alias to (or the one named is not retained)."""


class IndexingFailed(CodesenseError):
    """An index run failed; the previous index is still serving behind the alias."""



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



class ServiceUnreachable(CodesenseError):
    """A service (Ray dashboard, Kubernetes API, KFP API) did not answer within the bounded timeout."""



class RayUnreachable(ServiceUnreachable):
    """The Ray dashboard / Job Submission API at the configured address cannot be reached."""


class ServiceError(CodesenseError):
    """A reachable service refused a request (HTTP 4xx/5xx from Kubernetes or KFP)."""



class JobFailed(CodesenseError):
    """A submitted job ended in FAILED/STOPPED (or ran past its limit). Carries its last log lines."""


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


# --- answering ------------------------------------------------------------------------------------------
class InvalidQuestion(CodesenseError):
    """An empty or oversized question or query (HTTP 422)."""


class InvalidQuery(CodesenseError):
    """A search query that is empty, too long or not valid Unicode (HTTP 422)."""


class GeneratorError(CodesenseError):
    """The model backend is down, timed out, or answered with an error. The HTTP layer maps it to 502.

    `backend` names the generator, `status` is the HTTP status the backend returned (None for connection
    errors and timeouts), `reason` is a short human-readable cause.
    """

    def __init__(self, backend: str, reason: str, status: int | None = None) -> None:
        self.backend = backend
        self.reason = reason
        self.status = status
        super().__init__(f"generator `{backend}` failed: {reason}")


class PromptNotFound(CodesenseError):
    """The registry has no prompt under that name, label or version."""


class PromptRegistryError(CodesenseError):
    """Pushing to a prompt registry failed (unreachable, unauthorised, rejected); the message says which and why."""


# --- interfaces (OpenAI-compatible chat, MCP, explain) ---------------------------------------------------
class InvalidChatRequest(CodesenseError):
    """A chat request codesense cannot answer as given (HTTP 422)."""


class ModelNotFound(CodesenseError):
    """A `model` that is no configured chat profile (HTTP 404)."""


class InvalidArgument(CodesenseError):
    """An MCP tool argument that is wrong (bad range, path outside the repository, file not indexed)."""


class UnknownConcept(CodesenseError):
    """`codesense explain NAME` for a concept no docs section defines; the message lists the known keys."""


# --- training (golden set, distillation, fine-tuning, registry) ------------------------------------------
class InvalidTrainingData(CodesenseError):
    """An empty, missing or malformed training dataset."""


class RegistryError(CodesenseError):
    """A model, version or alias that does not exist, or a promotion/rollback that cannot happen."""


class PromotionRefused(CodesenseError):
    """The gate failed: `champion` did not move."""


class TeacherUnavailable(CodesenseError):
    """The teacher refused every request (bad key, unknown model): the run stops instead of skipping everything."""


# --- monitoring -------------------------------------------------------------------------------------------
class TraceNotFound(CodesenseError):
    """A trace id the tracing backend does not know (`POST /v1/feedback` → HTTP 404)."""


# --- deployment (Kubernetes, Prometheus) -------------------------------------------------------------------
class DeployError(CodesenseError):
    """The cluster refused an object, or cannot be reached."""


class PrometheusError(CodesenseError):
    """Prometheus is unreachable or refused a query."""


# --- evaluation -----------------------------------------------------------------------------------------
class InvalidDataset(CodesenseError):
    """The dataset file is missing, empty, or has a malformed line (the message names the line and the problem)."""


class InvalidGates(CodesenseError):
    """The gates file is missing or malformed."""


# --- the table --------------------------------------------------------------------------------------------
#: Domain error → (CLI exit code, HTTP status). The first matching row wins, so subclasses come before their
#: bases. Exit codes: 1 failed run, 2 bad input or config, 3 no index yet, 4 storage busy, 5 a service failed,
#: 6 a job or pipeline failed.
ERROR_TABLE: tuple[tuple[type[CodesenseError], int, int], ...] = (
    (InvalidQuestion, 2, 422),
    (InvalidQuery, 2, 422),
    (InvalidChatRequest, 2, 422),
    (ModelNotFound, 2, 404),
    (InvalidArgument, 2, 422),
    (UnknownConcept, 2, 404),
    (InvalidDataset, 2, 422),
    (InvalidGates, 2, 422),
    (PromptNotFound, 2, 404),
    (InvalidSchedule, 2, 422),
    (MissingCredentials, 2, 500),
    (InvalidConfig, 2, 500),
    (RepositoryNotFound, 2, 404),
    (TraceNotFound, 2, 404),
    (InvalidTrainingData, 2, 422),
    (RegistryError, 2, 404),
    (PromotionRefused, 1, 409),
    (TeacherUnavailable, 5, 502),
    (IndexNotBuilt, 3, 503),
    (NoRollbackTarget, 2, 409),
    (StorageLocked, 4, 503),
    (GeneratorError, 5, 502),
    (PromptRegistryError, 5, 502),
    (DeployError, 5, 502),
    (PrometheusError, 5, 502),
    (ToolMissing, 2, 500),
    (ServiceUnreachable, 5, 502),
    (ServiceError, 5, 502),
    (JobFailed, 6, 500),
    (PipelineFailed, 6, 500),
    (IndexingFailed, 1, 500),
    (CodesenseError, 1, 500),
)


def _row(err: BaseException) -> tuple[int, int]:
    for cls, code, status in ERROR_TABLE:
        if isinstance(err, cls):
            return code, status
    return 1, 500


def exit_code(err: BaseException) -> int:
    """The CLI exit code for an error (1 for anything the table does not know)."""
    return _row(err)[0]


def http_status(err: BaseException) -> int:
    """The HTTP status for an error (500 for anything the table does not know)."""
    return _row(err)[1]
