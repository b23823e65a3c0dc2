"""Answered questions read back from Langfuse, the production tracing backend — the twin of the MLflow reader.

The tracer writes one `chain` observation `ask` per question (input: question and repositories; output: the
answer; metadata: citation validity, cited files, model) with `retriever` and `generation` children; feedback and
judge grades are Langfuse scores on the trace. This module reads them with the SDK's public API client:

    reader = LangfuseTraceReader.from_config(cfg)
    for trace in reader.traces(since=now - 86400, until=now):   # LangfuseTrace(root, children, scores)
        ...
    reader.skipped    # Counter: traces in the window that are not codesense answers ("unknown") or lack a question

Only real-time read paths are used — `GET /api/public/v2/observations` (cursor pages, start-time window) and
`GET /api/public/v3/scores` — since Langfuse's other read endpoints lag ingestion by minutes. Three paged queries
per window (roots, their children, the scores), never one per trace. Any HTTP error or unreachable server is a
`ServiceError` / `ServiceUnreachable` naming the host and the query (one line, exit 5 on the CLI).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from codesense_ray.errors import InvalidConfig, ServiceError, ServiceUnreachable

log = logging.getLogger(__name__)

ROOT_NAME = "ask"
CHILD_NAMES = ("retrieve", "generate")
ROOT_FIELDS = "core,basic,io,metadata,metrics"
CHILD_FIELDS = "core,basic,io"
# Metadata values longer than 200 characters come back truncated unless named here.
FULL_METADATA = "cited,error"
OBSERVATION_PAGE = 1000  # the v2 observations endpoint's maximum page size
SCORE_PAGE = 100  # the v3 scores endpoint's maximum page size
CHILD_SLACK_S = 600.0  # children start after their root: read them this long past the window's end


def langfuse_settings(cfg: Any, what: str) -> tuple[str, str, str]:
    """(host, public key, secret key) from `tracing.*`; InvalidConfig naming the key when the host is missing."""
    from codesense_ray.config import resolve_secret

    t = cfg.tracing
    if not t.langfuse_host:
        raise InvalidConfig(f"tracing.langfuse_host: {what} on Langfuse needs the Langfuse base URL")
    return t.langfuse_host, resolve_secret(t.langfuse_public_key_env) or "", resolve_secret(t.langfuse_secret_key_env) or ""


def as_json_value(value: Any) -> Any:
    """Span inputs/outputs/attributes (MLflow) and observation input/output/metadata (Langfuse) arrive as strings:
    JSON when they were JSON, else the text itself."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)


@dataclass
class LangfuseTrace:
    """One codesense answer as Langfuse stores it: the `ask` root, its child observations and the trace's scores."""

    root: Any
    children: list[Any] = field(default_factory=list)
    scores: list[Any] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return self.root.trace_id

    @property
    def inputs(self) -> dict[str, Any]:
        value = as_json_value(self.root.input)
        return value if isinstance(value, dict) else {}

    @property
    def outputs(self) -> Any:
        return as_json_value(self.root.output)

    @property
    def metadata(self) -> dict[str, Any]:
        return {k: as_json_value(v) for k, v in (self.root.metadata or {}).items()}

    @property
    def error(self) -> str | None:
        if str(self.root.level or "").upper() != "ERROR":
            return None
        return self.root.status_message or "error"

    @property
    def timestamp(self) -> float:
        return self.root.start_time.timestamp()

    @property
    def latency_s(self) -> float | None:
        if self.root.latency is not None:
            return float(self.root.latency)
        return (self.root.end_time - self.root.start_time).total_seconds() if self.root.end_time else None

    def child(self, name: str) -> Any | None:
        return next((c for c in self.children if c.name == name), None)


class LangfuseTraceReader:
    """Pages through a Langfuse project's codesense traces in a time window (the SDK's public API client)."""

    def __init__(self, host: str, public_key: str, secret_key: str, client: Any = None) -> None:
        self.host = host.rstrip("/")
        self._keys = (public_key, secret_key)
        self._client = client
        self.skipped: Counter[str] = Counter()

    @classmethod
    def from_config(cls, cfg: Any) -> "LangfuseTraceReader":
        return cls(*langfuse_settings(cfg, "reading traces"))

    @property
    def client(self) -> Any:
        if self._client is None:
            from codesense_ray.answering.tracing import open_langfuse

            self._client = open_langfuse(self.host, *self._keys)
        return self._client

    def traces(self, since: float, until: float, limit: int | None = None) -> list[LangfuseTrace]:
        """codesense traces whose root started in `[since, until)`, oldest first; others are counted in `skipped`.
        With `limit`, paging stops after that many codesense traces (Langfuse lists the newest first)."""
        self.skipped = Counter()
        roots: dict[str, LangfuseTrace] = {}
        for obs in self._observations("listing root observations", is_root_observation=True, from_start_time=_utc(since),
                                      to_start_time=_utc(until), fields=ROOT_FIELDS, expand_metadata=FULL_METADATA):
            reason = None if obs.name == ROOT_NAME else "unknown"
            if reason is None and not LangfuseTrace(obs).inputs.get("question"):
                reason = "malformed"
            if reason:
                self.skipped[reason] += 1
            else:
                roots[obs.trace_id] = LangfuseTrace(obs)
                if limit is not None and len(roots) >= limit:
                    break
        if self.skipped:
            log.warning("Langfuse %s: skipped %d trace(s) that are not codesense answers: %s", self.host, sum(self.skipped.values()), dict(self.skipped))
        if roots:
            oldest = min(t.timestamp for t in roots.values())
            self._attach_children(roots, oldest, until)
            self._attach_scores(roots, oldest)
        return sorted(roots.values(), key=lambda t: t.timestamp)

    def _attach_children(self, roots: dict[str, LangfuseTrace], since: float, until: float) -> None:
        for name in CHILD_NAMES:
            for obs in self._observations(f"listing `{name}` observations", name=name, from_start_time=_utc(since),
                                          to_start_time=_utc(until + CHILD_SLACK_S), fields=CHILD_FIELDS):
                if obs.trace_id in roots:
                    roots[obs.trace_id].children.append(obs)

    def _attach_scores(self, roots: dict[str, LangfuseTrace], since: float) -> None:
        # Feedback and judge scores arrive after the answer: every score since the window opened, matched by trace.
        by_trace: dict[str, list[Any]] = defaultdict(list)
        pages = self._paged("listing scores", self.client.api.scores.get_many, limit=SCORE_PAGE, fields="details,subject", from_timestamp=_utc(since))
        for score in pages:
            subject = getattr(score, "subject", None)
            trace_id = getattr(subject, "trace_id", None) or (subject.id if getattr(subject, "kind", None) == "trace" else None)
            if trace_id in roots:
                by_trace[trace_id].append(score)
        for trace_id, scores in by_trace.items():
            roots[trace_id].scores = sorted(scores, key=lambda s: s.timestamp)

    def _observations(self, what: str, **query: Any) -> Iterator[Any]:
        return self._paged(what, self.client.api.observations.get_many, limit=OBSERVATION_PAGE, **query)

    def _paged(self, what: str, fetch: Callable[..., Any], **query: Any) -> Iterator[Any]:
        """Every item of a cursor-paginated list endpoint; HTTP failures become one-line domain errors."""
        cursor = None
        while True:
            page = call_langfuse(self.host, what, fetch, cursor=cursor, **query)
            yield from page.data
            cursor = page.meta.cursor
            if not cursor or not page.data:
                return


def call_langfuse(host: str, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """`fn(**kwargs)` on the SDK's API client; an HTTP error or an unreachable server becomes one line naming `what`."""
    import httpx
    from langfuse.api.core.api_error import ApiError

    try:
        return fn(**kwargs)
    except ApiError as err:
        raise ServiceError(f"Langfuse at {host} answered HTTP {err.status_code} to {what}: {_message(err.body)}") from None
    except httpx.HTTPError as err:
        raise ServiceUnreachable(f"Langfuse at {host} is unreachable ({what}): {type(err).__name__}: {err}") from None


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body)[:200]
