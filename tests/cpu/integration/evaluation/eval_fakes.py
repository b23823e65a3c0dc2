"""Deterministic stand-ins for the retriever and the answerer, speaking their real APIs (`Retriever`, `RagAnswerer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from codesense_ray.answering.answerer import Answer
from codesense_ray.retrieval.retriever import SearchHit


@dataclass
class FakeRetriever:
    """The `Retriever` API over scripted rankings: `files[question]` = [(repo, path, score)], `chunks[question]` =
    [(repo, path, start, end, score)]; `index` maps (repo, path) to its line count."""

    index: dict[tuple[str, str], int]
    files: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    chunks: dict[str, list[tuple[str, str, int, int, float]]] = field(default_factory=dict)
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    store: object = field(default_factory=lambda: SimpleNamespace(live_collection=lambda: "codesense__fake"))

    def repositories(self) -> dict[str, dict]:
        return {repo: {} for repo, _ in self.index}

    def search(self, query, k=10, repo_ids=()):
        """Scripted chunks first, then one hit per scripted file not already among them (best first)."""
        self.calls.append(("search", query, k))
        rows = list(self.chunks.get(query, []))
        seen = {(r, p) for r, p, *_ in rows}
        rows += [(r, p, 1, 1, s) for r, p, s in self.files.get(query, []) if (r, p) not in seen]
        rows = [r for r in rows if not repo_ids or r[0] in repo_ids]
        return [
            SearchHit(id=f"{p}:{a}", repo=r, path=p, start_line=a, end_line=b, url=f"file:///{p}#L{a}", score=s, text=f"code of {p} {a}-{b}")
            for r, p, a, b, s in rows
        ][:k]

    def file_line_count(self, repo, path):
        return self.index.get((repo, path))


@dataclass
class FakeAnswerer:
    """The `RagAnswerer` API: `answers[question]` = (text, cited (repo, path) list, invalid citation count), or an
    exception to raise."""

    answers: dict[str, object]
    latency_s: float = 0.5

    def ask(self, question, k=None, repo_ids=()):
        script = self.answers[question]
        if isinstance(script, Exception):
            raise script
        text, cited, invalid = script
        sources = [{"repo": r, "path": p, "start_line": 1, "end_line": 5, "url": f"file:///{p}#L1-5"} for r, p in cited]
        citations = {"valid": len(cited), "invalid": [{"text": "[9]", "reason": "no such block"}] * invalid}
        total = len(cited) + invalid
        citations["citation_valid"] = len(cited) / total if total else None
        return Answer(
            answer=text, sources=sources, trace_id=None, model="fake:model", prompt={"name": "rag-code-assistant", "version": "7", "source": "file"},
            citations=citations, latency_s=self.latency_s,
            context=[SimpleNamespace(path="app/auth/jwt.py", start_line=78, end_line=110, text="def verify_bearer_token(...): ...")],
        )
