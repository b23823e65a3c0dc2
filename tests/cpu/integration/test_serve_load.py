"""The Serve retriever's batch step, outside Ray: several concurrent searches served by one model call come back
to each request as exactly what a lone search returns — same hits, same order — with the batch size; a bad
request in the batch fails alone. And the colocated retriever's local handle behaves like a deployment handle.

(`@serve.batch` itself needs a replica; the coalescing and the results under 32 concurrent clients are tested
through the real app in `test_serve.py`.)"""

from __future__ import annotations

import asyncio
import threading

import pytest

from codesense_ray.app.serve.deployments import LocalDeployment, RetrieverDeployment
from codesense_ray.config import load_config
from tests.conftest import CODESENSE_BIN, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(project):
    import subprocess

    # Stages in-process: only the index matters here (the Ray Data path is tested in test_indexing).
    write_config(project, [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
                 index={"in_process_max_files": 1000})
    subprocess.run([CODESENSE_BIN, "index", "--config", str(project / "codesense.yaml"), "--no-progress"], check=True, capture_output=True)
    cfg = load_config(project / "codesense.yaml")
    d = RetrieverDeployment(cfg.model_dump(mode="json") | {"__base_dir__": str(project)})
    yield d
    d.retriever.store.client.close()


QUERIES = [
    ("How are JWT bearer tokens verified?", None, ()),
    ("refund", 3, ("payments",)),
    ("a much longer question about where the payment amount is validated before capture. " * 12, 5, ()),
    ("`verify_bearer_token` raises TokenError", None, ()),
]


def test_one_batch_returns_each_query_its_own_hits(deployment):
    """Rows split back per query give the hits of searching each query alone; every query learns the batch size."""
    together = deployment.search_many(QUERIES + [("refund", None, ("no-such-repo",))])
    assert together[-1]["__error__"]["type"] == "RepositoryNotFound"  # one bad request fails alone
    for (query, k, repos), result in zip(QUERIES, together):
        alone = deployment.retriever.search(query, k, list(repos))
        assert result["batch"] == len(QUERIES) + 1 and "embed_query" in result["timings"]
        assert [(h.path, h.start_line) for h in result["hits"]] == [(h.path, h.start_line) for h in alone], query
        assert [h.score for h in result["hits"]] == pytest.approx([h.score for h in alone], abs=1e-6)


class _Target:
    """A deployment-like class: an async method bound to the loop it first ran on (like `@serve.batch`'s queue)
    and a sync one. (`@serve.batch` itself only runs inside a replica; the colocated app is tested in test_serve.py.)"""

    def __init__(self) -> None:
        self.loops: set = set()

    async def search(self, query: str) -> dict:
        self.loops.add(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return {"query": query, "thread": threading.current_thread().name}

    def status(self) -> dict:
        return {"ready": True}


def test_local_handle_awaits_on_the_loop_and_blocks_from_threads():
    """`LocalDeployment` answers like a Serve handle: `await h.search.remote(...)` on the loop, `.result()` from a
    request thread — the coroutine hops onto the replica's loop, never a new one — and sync methods directly."""
    target = _Target()
    local = LocalDeployment(target)

    async def main():
        local.loop = asyncio.get_running_loop()
        awaited = await local.search.remote("refund")
        from_thread: dict = {}
        t = threading.Thread(target=lambda: from_thread.update(local.search.remote("jwt").result(timeout_s=10)), name="request-thread")
        t.start()
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        return awaited, from_thread, await local.status.remote()

    awaited, from_thread, status = asyncio.run(main())
    assert awaited["query"] == "refund" and from_thread["query"] == "jwt"
    assert len(target.loops) == 1  # both calls ran on the one loop
    assert from_thread["thread"] == awaited["thread"] != "request-thread"
    assert status == {"ready": True} and local.status.remote().result() == {"ready": True}
