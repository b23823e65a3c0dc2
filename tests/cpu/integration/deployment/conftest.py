"""Fixtures: a local Kubernetes API (real `kubernetes` client pointed at it) and a local Prometheus."""

from __future__ import annotations

import pytest

from tests.cpu.integration.deployment.fake_cluster import start_cluster, start_prometheus


@pytest.fixture
def cluster():
    """Factory: `(state, api_client)` for a FakeCluster with the given readiness behaviour."""
    servers = []

    def start(**kwargs):
        from kubernetes import client

        state, server = start_cluster(**kwargs)
        servers.append(server)
        conf = client.Configuration()
        conf.host = server.url
        return state, client.ApiClient(conf)

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def prometheus():
    """Factory: `(state, url)` for a Prometheus answering `answer(query)`."""
    servers = []

    def start(answer):
        state, server = start_prometheus(answer)
        servers.append(server)
        return state, server.url

    yield start
    for s in servers:
        s.close()
