"""Prometheus metrics of the Serve ingress (one registry per replica, scraped at `/metrics`)."""

from __future__ import annotations

class Metrics:
    """Prometheus metrics of the ingress: requests, per-stage latency, citation validity."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
        self.requests = Counter("codesense_requests_total", "HTTP requests by path and status.", ["path", "status"], registry=self.registry)
        self.latency = Histogram("codesense_request_seconds", "HTTP request latency.", ["path"], buckets=buckets, registry=self.registry)
        self.stages = Histogram("codesense_stage_seconds", "Latency of a RAG stage.", ["stage"], buckets=buckets, registry=self.registry)
        self.validity = Histogram(
            "codesense_citation_validity", "Share of an answer's citations that verified.", buckets=(0.0, 0.25, 0.5, 0.75, 0.99, 1.0), registry=self.registry
        )
        self.invalid = Counter("codesense_citations_removed_total", "Citations removed because they did not verify.", registry=self.registry)
        self.batches = Histogram(
            "codesense_query_batch_size", "Queries whose embeddings shared one model call in the retriever.", buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry
        )

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def stage(self, name: str, seconds: float) -> None:
        self.stages.labels(name).observe(seconds)

    def query_batch(self, size: int | None) -> None:
        """Seen once per query: the size of the embedding batch it was part of (None: nothing was embedded)."""
        if size:
            self.batches.observe(size)

    def answer(self, answer) -> None:
        self.stage("answer", answer.latency_s)
        if answer.citations.get("citation_valid") is not None:
            self.validity.observe(answer.citations["citation_valid"])
        self.invalid.inc(len(answer.citations.get("invalid", [])))

    def render(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
