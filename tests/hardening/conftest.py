"""Shared pieces of the hardening tests: the ingress API over in-process retriever/generator handles."""

from __future__ import annotations

from typing import Any, Callable

import pytest


class _Response:
    """What a Serve `DeploymentResponse` offers the ingress: `await` it, or `.result()` off the event loop."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self):
        async def get():
            return self.value

        return get().__await__()

    def result(self) -> Any:
        return self.value


class _Method:
    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def remote(self, *args):
        return _Response(self.fn(*args))


class RetrieverHandle:
    """An in-process stand-in for the retriever deployment handle: fixed status, one hit per search."""

    def __init__(self, ready: bool = True) -> None:
        self.queries: list[str] = []
        self.status = _Method(lambda: {"ready": ready, "collection": "codesense__1", "repos": {"payments": "4f1c2ab"}} if ready else {"ready": False})
        self.search = _Method(self._search)
        self.file_line_count = _Method(lambda repo, path: 100)

    def _search(self, query: str, k, repo_ids) -> list[dict]:
        self.queries.append(query)
        hit = {"id": "1", "repo": "payments", "path": "app/auth/jwt.py", "start_line": 1, "end_line": 5, "url": "https://x/app/auth/jwt.py#L1-L5", "score": 1.0}
        return [hit]


def make_api(auth_token: str | None = "tok-123", *, ready: bool = True, max_query_chars: int = 4000):
    """The real `create_api` (middleware, validation, routes) over in-process handles."""
    from codesense_ray.answering import RagAnswerer
    from codesense_ray.serve_app import Metrics, _HandleRetriever, create_api

    handle = RetrieverHandle(ready)
    answerer = RagAnswerer(_HandleRetriever(handle), None, _prompts())
    return create_api(answerer, handle, Metrics(), auth_token, None, max_query_chars=max_query_chars), handle


def _prompts():
    from codesense_ray.config import PromptsConfig
    from codesense_ray.prompts.registry import FilePromptRegistry

    return FilePromptRegistry(PromptsConfig().path)


@pytest.fixture
def client_factory():
    from fastapi.testclient import TestClient

    clients = []

    def factory(**kwargs):
        api, handle = make_api(**kwargs)
        c = TestClient(api, raise_server_exceptions=False)
        clients.append(c)
        return c, handle

    yield factory
    for c in clients:
        c.close()
