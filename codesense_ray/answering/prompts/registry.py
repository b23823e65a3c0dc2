"""The RAG prompt is configuration, not code: a versioned template read from a prompt registry.

Think of it as a ConfigMap for prompts. The service asks the registry for `rag-code-assistant` (optionally a
label such as `production`, like a tag on an image, or a pinned version) and renders it with the question and
the numbered context blocks. Backends:

- `file` (default): the YAML shipped in this package (or a path) — works offline, versioned with the code.
- `mlflow`: the MLflow prompt registry (SQLite by default, an MLflow server in production).
- `langfuse`: Langfuse prompt management, with labels for promotion between environments.

Remote registries are cached for `cache_ttl_s` and never take the service down: when one is unreachable the
last fetched version is reused, else the packaged prompt, and the returned `Prompt` records that a fallback
was used (`fallback=True`, `fallback_reason`), so traces show which prompt actually answered.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

import yaml

from codesense_ray.backends import BackendRegistry
from codesense_ray.errors import CodesenseError, InvalidConfig, PromptNotFound, PromptRegistryError
from codesense_ray.config.answering import PromptsConfig, resolve_mlflow_uri

log = logging.getLogger(__name__)

PACKAGED_PROMPT = "rag-code-assistant"
PLACEHOLDERS = ("question", "context")
_SINGLE = re.compile(r"\{(question|context)\}")
_DOUBLE = re.compile(r"\{\{\s*(question|context)\s*\}\}")






@dataclass(frozen=True)
class Prompt:
    """One version of a chat prompt: a system message and a user template with `{question}` and `{context}`.

    `source` says where it came from (`file:...`, `mlflow:prompts:/...`, `langfuse:...`); `fallback` is True when
    the configured registry could not be asked and this is a cached or the packaged copy (`fallback_reason` says why).
    """

    name: str
    version: str
    system: str
    user: str
    source: str
    fallback: bool = False
    fallback_reason: str | None = None
    description: str = field(default="", compare=False)

    def render(self, question: str, context: str) -> list[dict[str, str]]:
        """Chat messages for a generator. Substitution is a single pass over the template, so braces inside the
        question or the code context are never interpreted."""
        values = {"question": question, "context": context}

        def fill(template: str) -> str:
            return _SINGLE.sub(lambda m: values[m.group(1)], template)

        messages = []
        if self.system.strip():
            messages.append({"role": "system", "content": fill(self.system).strip()})
        messages.append({"role": "user", "content": fill(self.user).strip()})
        return messages

    def trace_attributes(self) -> dict[str, Any]:
        """What a trace records about the prompt (name, version, where from, whether a fallback)."""
        return {"prompt_name": self.name, "prompt_version": self.version, "prompt_source": self.source, "prompt_fallback": self.fallback}

    def chat_template(self, style: Literal["single", "double"] = "double") -> list[dict[str, str]]:
        """The template as chat messages; `double` converts placeholders to `{{name}}` for MLflow and Langfuse."""
        conv = to_double_braces if style == "double" else (lambda s: s)
        out = []
        if self.system.strip():
            out.append({"role": "system", "content": conv(self.system)})
        out.append({"role": "user", "content": conv(self.user)})
        return out


def to_double_braces(template: str) -> str:
    """`{question}` → `{{question}}`: the variable syntax of MLflow and Langfuse prompt registries."""
    return _SINGLE.sub(lambda m: "{{" + m.group(1) + "}}", template)


def from_double_braces(template: str) -> str:
    """`{{ question }}` → `{question}`: registry templates back to this package's syntax."""
    return _DOUBLE.sub(lambda m: "{" + m.group(1) + "}", template)


def prompt_from_messages(name: str, version: Any, messages: list[dict[str, Any]] | str, source: str) -> Prompt:
    """A `Prompt` from a registry's chat template (list of role/content) or text template (the user message)."""
    if isinstance(messages, str):
        system, user = "", messages
    else:
        system = "\n\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
        user = "\n\n".join(m.get("content", "") for m in messages if m.get("role") != "system")
    prompt = Prompt(name=name, version=str(version), system=from_double_braces(system), user=from_double_braces(user), source=source)
    check_prompt(prompt)
    return prompt


def check_prompt(prompt: Prompt) -> None:
    """A usable RAG prompt puts both placeholders somewhere; without `{context}` the model never sees the code."""
    text = prompt.system + prompt.user
    missing = [p for p in PLACEHOLDERS if "{" + p + "}" not in text]
    if missing:
        raise InvalidConfig(f"prompt {prompt.name!r} (version {prompt.version}, {prompt.source}) lacks placeholder(s) {', '.join('{' + m + '}' for m in missing)}")


def load_prompt_file(path: str | Path | None = None) -> Prompt:
    """Read a prompt YAML (`name`, `version`, `system`, `user`, optional `description`); default: the packaged one."""
    if path is None:
        resource = files("codesense_ray.answering.prompts").joinpath(f"{PACKAGED_PROMPT}.yaml")
        text, where = resource.read_text(encoding="utf-8"), f"file:packaged/{PACKAGED_PROMPT}.yaml"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InvalidConfig(f"prompts.path: prompt file not found: {p}")
        text, where = p.read_text(encoding="utf-8"), f"file:{p}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidConfig(f"{where}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise InvalidConfig(f"{where}: expected a mapping with name, version, system, user")
    known = {"name", "version", "description", "system", "user"}
    unknown = sorted(set(data) - known)
    missing = sorted({"name", "version", "user"} - set(data))
    if unknown or missing:
        raise InvalidConfig(f"{where}: " + "; ".join(filter(None, [unknown and f"unknown key(s) {unknown}", missing and f"missing key(s) {missing}"])))
    prompt = Prompt(
        name=str(data["name"]),
        version=str(data["version"]),
        system=str(data.get("system") or ""),
        user=str(data["user"]),
        source=where,
        description=str(data.get("description") or ""),
    )
    check_prompt(prompt)
    return prompt


class PromptRegistry(Protocol):
    """Where the service gets its prompt. `get()` never raises for an unreachable remote registry (it falls back)."""

    backend: str

    def get(self) -> Prompt: ...


class FilePromptRegistry:
    """The packaged YAML (default) or a YAML file; re-read when the file changes, like a mounted ConfigMap."""

    backend = "file"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else None
        self._cached: tuple[float, Prompt] | None = None

    def get(self) -> Prompt:
        if self.path is None:
            if self._cached is None:
                self._cached = (0.0, load_prompt_file(None))
            return self._cached[1]
        mtime = self.path.stat().st_mtime if self.path.is_file() else -1.0
        if self._cached is None or self._cached[0] != mtime:
            self._cached = (mtime, load_prompt_file(self.path))
        return self._cached[1]


class _CachedRemoteRegistry(ABC):
    """TTL cache and outage fallback shared by the remote registries; subclasses implement `_fetch()`."""

    backend = "remote"

    def __init__(
        self,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
        cache_ttl_s: float = 60.0,
        fallback: Prompt | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if label and version:
            raise InvalidConfig("prompts: give `label` or `version`, not both")
        self.name = name
        self.label = label
        self.version = version
        self.cache_ttl_s = cache_ttl_s
        self._fallback = fallback
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: tuple[float, Prompt] | None = None
        self.last_error: str | None = None

    @abstractmethod
    def _fetch(self) -> Prompt:
        """Read the prompt from the remote registry (each backend implements it)."""

    def _packaged(self) -> Prompt:
        return self._fallback or load_prompt_file(None)

    def get(self) -> Prompt:
        with self._lock:
            now = self._clock()
            if self._entry is not None and now - self._entry[0] < self.cache_ttl_s:
                return self._entry[1]
            try:
                prompt = self._fetch()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a registry outage must not fail the request
                reason = f"{self.backend} fetch failed: {type(exc).__name__}: {exc}"[:500]
                self.last_error = reason
                previous = self._entry[1] if self._entry is not None else None
                if previous is not None and previous.source.startswith(self.backend + ":"):
                    log.warning("prompt registry %s failed (%s); reusing cached version %s", self.backend, reason, previous.version)
                    prompt = replace(previous, fallback=True, fallback_reason=f"stale cache; {reason}")
                else:
                    log.warning("prompt registry %s failed (%s); using the packaged prompt", self.backend, reason)
                    prompt = replace(self._packaged(), fallback=True, fallback_reason=reason)
            self._entry = (now, prompt)
            return prompt

    def invalidate(self) -> None:
        """Forget the cached prompt: the next `get()` asks the registry."""
        with self._lock:
            self._entry = None


class MlflowPromptRegistry(_CachedRemoteRegistry):
    """The MLflow prompt registry (`prompts:/<name>@<alias>` or `/<version>`), on SQLite or an MLflow server.

    Labels map to MLflow prompt aliases; without label or version the latest version is used.
    """

    backend = "mlflow"

    def __init__(self, tracking_uri: str, name: str = PACKAGED_PROMPT, *, client: Any = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.tracking_uri = tracking_uri
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def uri(self) -> str:
        if self.version:
            return f"prompts:/{self.name}/{self.version}"
        return f"prompts:/{self.name}@{self.label or 'latest'}"

    def _fetch(self) -> Prompt:
        uri = self.uri()
        # MLflow keeps its own cache; ours (with the fallback) is the one that counts.
        pv = self.client.load_prompt(uri, allow_missing=True, cache_ttl_seconds=0)
        if pv is None:
            raise PromptNotFound(f"{uri} is not registered (run `codesense prompts push --to mlflow`)")
        return prompt_from_messages(pv.name, pv.version, pv.template, source=f"mlflow:{uri}")


class LangfusePromptRegistry(_CachedRemoteRegistry):
    """Langfuse prompt management: `GET /api/public/v2/prompts/{name}?label=...|version=...`.

    Uses the Langfuse SDK's API client (`langfuse.api.LangfuseAPI`, the one `Langfuse().get_prompt` calls) rather
    than the `Langfuse()` client itself: that client is a process-wide singleton per public key and the first
    construction fixes its tracing settings, so a prompt-only instance would silently switch off the tracer's
    exports. Without label or version Langfuse serves the `production` label.
    """

    backend = "langfuse"

    def __init__(
        self, host: str, public_key: str, secret_key: str, name: str = PACKAGED_PROMPT, *, fetch_timeout_s: float = 5.0, **kwargs: Any
    ) -> None:
        super().__init__(name, **kwargs)
        self.host = host.rstrip("/")
        self.fetch_timeout_s = fetch_timeout_s
        from langfuse.api import LangfuseAPI

        self._api = LangfuseAPI(base_url=self.host, username=public_key, password=secret_key, x_langfuse_public_key=public_key, timeout=fetch_timeout_s)

    def _fetch(self) -> Prompt:
        # No SDK retries: a failed fetch falls back at once and the TTL cache spaces out the next attempt.
        options = {"timeout_in_seconds": max(1, math.ceil(self.fetch_timeout_s)), "max_retries": 0}
        # Folder-style names ("team/rag") go in one path segment, encoded as the Langfuse client does.
        resp = self._api.prompts.get(quote(self.name, safe=""), version=self.version, label=self.label, request_options=options)
        if resp.type == "chat":
            messages = [{"role": getattr(m, "role", "user"), "content": getattr(m, "content", "")} for m in resp.prompt]
        else:
            messages = resp.prompt
        where = f"langfuse:{self.host}/{self.name}@" + (self.label or (f"v{self.version}" if self.version else "production"))
        return prompt_from_messages(resp.name, resp.version, messages, source=where)


def _langfuse_keys(cfg: PromptsConfig) -> tuple[str, str, str]:
    from codesense_ray.config import resolve_secret

    if not cfg.langfuse_host:
        raise InvalidConfig("prompts.langfuse_host: backend `langfuse` needs the Langfuse base URL")
    public = resolve_secret(cfg.langfuse_public_key_env)
    secret = resolve_secret(cfg.langfuse_secret_key_env)
    return cfg.langfuse_host, public or "", secret or ""


def _file_registry(cfg: PromptsConfig, home: Path) -> PromptRegistry:
    return FilePromptRegistry(cfg.path)


def _common(cfg: PromptsConfig) -> dict[str, Any]:
    return {"label": cfg.label, "version": cfg.version, "cache_ttl_s": cfg.cache_ttl_s, "fallback": load_prompt_file(cfg.path)}


def _mlflow_registry(cfg: PromptsConfig, home: Path) -> PromptRegistry:
    return MlflowPromptRegistry(resolve_mlflow_uri(cfg.mlflow_tracking_uri, home), cfg.name, **_common(cfg))


def _langfuse_registry(cfg: PromptsConfig, home: Path) -> PromptRegistry:
    host, public, secret = _langfuse_keys(cfg)
    return LangfusePromptRegistry(host, public, secret, cfg.name, fetch_timeout_s=cfg.fetch_timeout_s, **_common(cfg))


#: `prompts.backend` → factory(cfg, home). Remote registries fall back to the packaged prompt when unreachable.
PROMPT_REGISTRIES: BackendRegistry[PromptRegistry] = BackendRegistry("prompts.backend")
PROMPT_REGISTRIES.register("file", _file_registry)
PROMPT_REGISTRIES.register("mlflow", _mlflow_registry)
PROMPT_REGISTRIES.register("langfuse", _langfuse_registry)


def build_prompt_registry(cfg: PromptsConfig, home: Path) -> PromptRegistry:
    """The configured registry. Remote ones fall back to the packaged prompt (or `cfg.path`) when unreachable."""
    return PROMPT_REGISTRIES.build(cfg.backend, cfg, home)


def push_prompt(
    to: Literal["mlflow", "langfuse"],
    cfg: PromptsConfig,
    home: Path,
    prompt: Prompt | None = None,
    *,
    mlflow_client: Any = None,
) -> dict[str, Any]:
    """Register the packaged prompt (or `prompt`, or `cfg.path`) in a registry; idempotent.

    A new registry version is created only when the template differs from the one the registry serves now
    (like `kubectl apply`: no change, no new revision). `cfg.label` becomes an MLflow alias / Langfuse label
    (default `production` for Langfuse, so the service picks it up). Returns what was done, for `--json`.
    Raises `PromptRegistryError` when the registry cannot be reached or refuses the prompt.
    """
    try:
        return _push_prompt(to, cfg, home, prompt, mlflow_client=mlflow_client)
    except CodesenseError:
        raise
    except Exception as exc:  # noqa: BLE001 - SDK/network errors become one domain error for the CLI
        where = cfg.langfuse_host if to == "langfuse" else resolve_mlflow_uri(cfg.mlflow_tracking_uri, home)
        raise PromptRegistryError(f"prompts push --to {to} ({where}) failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _push_prompt(
    to: Literal["mlflow", "langfuse"],
    cfg: PromptsConfig,
    home: Path,
    prompt: Prompt | None = None,
    *,
    mlflow_client: Any = None,
) -> dict[str, Any]:
    prompt = prompt or load_prompt_file(cfg.path)
    name = cfg.name
    messages = prompt.chat_template("double")
    if to == "mlflow":
        uri = resolve_mlflow_uri(cfg.mlflow_tracking_uri, home)
        if mlflow_client is None:
            from mlflow import MlflowClient

            mlflow_client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        current = mlflow_client.load_prompt(f"prompts:/{name}@latest", allow_missing=True, cache_ttl_seconds=0)
        created = current is None or current.template != messages
        if created:
            current = mlflow_client.register_prompt(
                name=name,
                template=messages,
                commit_message=f"codesense prompt {prompt.name} v{prompt.version} ({prompt.source})",
                tags={"codesense_prompt_version": prompt.version, "codesense_source": prompt.source},
            )
        if cfg.label:
            mlflow_client.set_prompt_alias(name, alias=cfg.label, version=int(current.version))
        return {"to": "mlflow", "name": name, "version": str(current.version), "created": created, "label": cfg.label, "uri": f"prompts:/{name}/{current.version}", "tracking_uri": uri}
    if to == "langfuse":
        from langfuse.api import CreateChatPromptRequest, CreateChatPromptType, LangfuseAPI, NotFoundError

        host, public, secret = _langfuse_keys(cfg)
        api = LangfuseAPI(base_url=host.rstrip("/"), username=public, password=secret, x_langfuse_public_key=public, timeout=cfg.fetch_timeout_s)
        label = cfg.label or "production"
        try:
            current = api.prompts.get(quote(name, safe=""), label=label)
            same = current.type == "chat" and [{"role": m.role, "content": m.content} for m in current.prompt] == messages
        except NotFoundError:
            current, same = None, False
        if same:
            return {"to": "langfuse", "name": name, "version": str(current.version), "created": False, "label": label, "host": host}
        request = CreateChatPromptRequest(
            name=name,
            prompt=messages,
            labels=[label],
            tags=["codesense"],
            config={"codesense_prompt_version": prompt.version},
            commit_message=f"codesense prompt {prompt.name} v{prompt.version}",
            type=CreateChatPromptType.CHAT,
        )
        created = api.prompts.create(request=request)
        return {"to": "langfuse", "name": name, "version": str(created.version), "created": True, "label": label, "host": host}
    raise InvalidConfig(f"prompts push: unknown registry {to!r} (known: mlflow, langfuse)")
