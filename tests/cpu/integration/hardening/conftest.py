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

    def _search(self, query: str, k, repo_ids) -> dict:
        """The retriever deployment's reply: the hits (`SearchHit`s), per-stage timings and the batch size."""
        from codesense_ray.retrieval.retriever import SearchHit

        self.queries.append(query)
        hit = SearchHit(id="1", repo="payments", path="app/auth/jwt.py", start_line=1, end_line=5, url="https://x/app/auth/jwt.py#L1-L5", score=1.0)
        return {"hits": [hit], "timings": {}, "batch": 1}


def make_api(auth_token: str | None = "tok-123", *, ready: bool = True, max_query_chars: int = 4000):
    """The real `create_api` (middleware, validation, routes) over in-process handles."""
    from codesense_ray.answering.answerer import RagAnswerer
    from codesense_ray.app.serve.deployments import _HandleRetriever
    from codesense_ray.app.serve.http import create_api
    from codesense_ray.app.serve.metrics import Metrics

    handle = RetrieverHandle(ready)
    answerer = RagAnswerer(_HandleRetriever(handle), None, _prompts())
    return create_api(answerer, handle, Metrics(), auth_token, None, max_query_chars=max_query_chars), handle


def _prompts():
    from codesense_ray.config.answering import PromptsConfig
    from codesense_ray.answering.prompts.registry import FilePromptRegistry

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


# --- tiny real index projects ---------------------------------------------------------------------
def write_repo(root, files: dict[str, str]) -> None:
    """A small repository directory from {relative path: text}."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


REPO_A = {
    "billing/invoice.py": 'def total_with_tax(amount: float, rate: float) -> float:\n    """Invoice total including tax."""\n    return amount * (1 + rate)\n',
    "billing/refund.py": 'def refund_payment(payment_id: str) -> bool:\n    """Refund a captured payment."""\n    return bool(payment_id)\n',
}
REPO_B = {
    "auth/session.py": 'def rotate_session_cookie(user_id: int) -> str:\n    """Issue a fresh session cookie."""\n    return f"s-{user_id}"\n',
}


class IndexEnv:
    """A tmp project with its own embedded Qdrant; `index()` runs the real indexer in-process (no Ray)."""

    def __init__(self, root, repositories: list[dict], **sections) -> None:
        from tests.conftest import write_config

        self.root = root
        self.sections = {"index": {"in_process_max_files": 1000}, **sections}
        self.set_repositories(repositories)
        write_config(root, repositories, **self.sections)

    def set_repositories(self, repositories: list[dict]) -> None:
        from tests.conftest import write_config

        write_config(self.root, repositories, **self.sections)

    def open(self):
        from codesense_ray.config import load_config
        from codesense_ray.app.compose import build_indexer
        from codesense_ray.store.qdrant import IndexStore, open_client

        cfg = load_config(self.root / "codesense.yaml")
        store = IndexStore(open_client(cfg), cfg.index.collection, embedded=not cfg.qdrant.url)
        return cfg, store, build_indexer(cfg, store)

    def index(self, **kwargs):
        _, store, indexer = self.open()
        try:
            summary = indexer.run(**kwargs)
            return summary, self.snapshot(store)
        finally:
            store.client.close()

    @staticmethod
    def snapshot(store) -> dict:
        live = store.live_collection()
        if live is None:
            return {"live": None, "repos": {}, "versions": store.versions()}
        paths: dict[str, set] = {}
        for p in store.scroll(live):
            if not p.payload.get("_meta"):
                paths.setdefault(p.payload["repo_id"], set()).add(p.payload["path"])
        return {"live": live, "repos": paths, "versions": store.versions()}
