"""The Serve retriever replica's batch step, outside Ray: the query passages of several requests embedded in
one call of the real MiniLM come back to each request as exactly its own embeddings.

(`@serve.batch` itself needs a replica; the coalescing and the results under 32 concurrent clients are tested
through the real app in `test_serve.py`.)"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from codesense_ray.app.serve.deployments import RetrieverDeployment
from codesense_ray.config import load_config
from tests.conftest import write_config

pytestmark = pytest.mark.slow


def test_one_model_call_returns_each_query_its_own_vectors(tmp_path, monkeypatch):
    """Rows split back per query equal the vectors of embedding each query alone (padding in the shared call
    changes nothing); every query learns how many queries shared the call."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    write_config(tmp_path, [{"id": "payments", "path": "payments"}])
    cfg = load_config(tmp_path / "codesense.yaml")
    deployment = RetrieverDeployment(cfg.model_dump(mode="json") | {"__base_dir__": str(tmp_path)})  # no index needed
    passages = [
        ["How are JWT bearer tokens verified?"],
        ["refund"],
        ["a much longer question about where the payment amount is validated before capture", "and its second passage"],
        ["`verify_bearer_token` raises TokenError"],
    ]
    together = asyncio.run(deployment._embed_batch(passages))
    model = deployment.retriever.embedder
    for texts, (rows, batch) in zip(passages, together):
        assert batch == len(passages) and rows.shape == (len(texts), model.dimension)
        assert np.allclose(rows, model.embed_queries(texts), atol=1e-5), texts
    deployment.retriever.store.client.close()
