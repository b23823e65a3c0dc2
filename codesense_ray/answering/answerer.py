"""The RAG answerer: retrieve → assemble context → prompt from the registry → generate → verify citations.

A plain class with its backends passed in (retriever, generator, prompt registry, tracer), so the CLI, the
Serve deployments and the tests compose it the same way. With no generator (`generator.backend: extractive`)
the answer is built deterministically from the retrieved code — no LLM, nothing leaves the machine.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from codesense_ray.answering.citations import ContextBlock, StreamVerifier, defang, defang_reason, format_context, render_sources, verify_citations
from codesense_ray.answering.generators.base import Generator, GeneratorError
from codesense_ray.answering.markdown_links import closing_fence, trim_answer
from codesense_ray.answering.prompts.registry import PromptRegistry
from codesense_ray.answering.tracing import NoopTracer, Tracer
from codesense_ray.answering.verified_stream import VerifiedStream
from codesense_ray.config import AnswerConfig
from codesense_ray.errors import InvalidQuestion
from codesense_ray.retrieval.retriever import Retriever, SearchHit
from codesense_ray.retrieval.query_guard import unicode_problem

CHARS_PER_TOKEN = 4  # budget estimate: generators have their own tokenizers; 4 chars/token is conservative for code




@dataclass
class Answer:
    """What `ask` returns (CLI `--json`, HTTP `/v1/ask`): the contract fields plus diagnostics."""

    answer: str
    sources: list[dict]
    trace_id: str | None
    model: str
    prompt: dict[str, Any]
    citations: dict[str, Any]
    latency_s: float
    #: The numbered context the answer was generated from (for evaluation's judge; not part of the wire format).
    context: list[ContextBlock] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "sources": self.sources,
            "trace_id": self.trace_id,
            "model": self.model,
            "prompt": self.prompt,
            "citations": self.citations,
            "latency_s": round(self.latency_s, 4),
        }


def check_question(question: Any, max_chars: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InvalidQuestion("empty question")
    if len(question) > max_chars:
        raise InvalidQuestion(f"question too long: {len(question)} characters (limit {max_chars}, `answer.max_question_chars`)")
    problem = unicode_problem(question, "question")
    if problem:
        raise InvalidQuestion(problem)
    return question.strip()


def assemble_context(hits: Sequence[SearchHit], budget_tokens: int, max_per_file: int) -> list[ContextBlock]:
    """Pick context blocks in rank order under a token budget.

    Overlapping chunks of one file are dropped, each file contributes at most `max_per_file` blocks, and the
    first pass takes one block per file so the context covers distinct files before going deeper into any.
    """
    chosen: list[SearchHit] = []
    used = 0
    per_file: dict[tuple[str, str], list[SearchHit]] = {}

    def fits(h: SearchHit) -> bool:
        mine = per_file.get((h.repo, h.path), [])
        if len(mine) >= max_per_file:
            return False
        return not any(h.start_line <= o.end_line and o.start_line <= h.end_line for o in mine)

    for first_pass in (True, False):
        for h in hits:
            if h in chosen or (first_pass and (h.repo, h.path) in per_file) or not fits(h):
                continue
            cost = (len(h.text) + len(h.header) + 80) // CHARS_PER_TOKEN
            if chosen and used + cost > budget_tokens:
                continue
            chosen.append(h)
            per_file.setdefault((h.repo, h.path), []).append(h)
            used += cost
    order = {id(h): i for i, h in enumerate(hits)}
    chosen.sort(key=lambda h: order[id(h)])
    return [
        ContextBlock(i, h.repo, h.path, h.start_line, h.end_line, h.url, h.text, h.symbol, h.ref) for i, h in enumerate(chosen, start=1)
    ]


_DOC_PATTERNS = [
    re.compile(r'^\s*(?:[rbuRBU]{0,2})("""|\'\'\')\s*(?P<t>[^\n]*?)\s*(?:\1|$)', re.M),  # Python docstring
    re.compile(r"^\s*/\*\*?\s*(?P<t>[^*\n][^\n]*?)\s*(?:\*/)?$", re.M),  # /** JSDoc / C */
    re.compile(r"^\s*(?://+|#+(?!!)|--|;+)\s*(?P<t>\S[^\n]*)$", re.M),  # line comments, Markdown headings
    re.compile(r"^\s*\*\s+(?P<t>\S[^\n]*)$", re.M),  # continuation of a block comment
]


def first_doc_line(text: str) -> str:
    """The first docstring or comment sentence of a code excerpt, else its first code line (trimmed)."""
    for pattern in _DOC_PATTERNS:
        m = pattern.search(text)
        if m and len(m.group("t").strip(" */#-")) > 3:
            line = m.group("t").strip(" */")
            return line[:160]
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:160]
    return ""


def extractive_answer(question: str, blocks: Sequence[ContextBlock], max_items: int = 5) -> str:
    """A deterministic answer without an LLM: the most relevant files and symbols, what each says, cited.

    Fast and useful on its own (it is a ranked, summarised search result), and the baseline every generator
    must beat.
    """
    if not blocks:
        return "I found no indexed code relevant to this question."
    files: dict[tuple[str, str], list[ContextBlock]] = {}
    for b in blocks:
        files.setdefault((b.repo, b.path), []).append(b)
    lines = [f"The code most relevant to \u201c{question.strip()}\u201d:"]
    for (repo, path), group in list(files.items())[:max_items]:
        parts = []
        for b in group:
            what = f"`{b.symbol}`" if b.symbol else f"lines {b.start_line}-{b.end_line}"
            doc = first_doc_line(b.text)
            parts.append(f"{what}: {doc} [{b.number}]" if doc else f"{what} [{b.number}]")
        repo_note = f" ({repo})" if len({r for r, _ in files}) > 1 else ""
        lines.append(f"- `{path}`{repo_note} \u2014 " + "; ".join(parts))
    return "\n".join(lines)


def _memoised(file_line_count):
    """One lookup per file for the whole answer: the stream re-verifies growing prefixes of the same text."""
    seen: dict[tuple[str, str], int | None] = {}

    def lookup(repo: str, path: str) -> int | None:
        if (repo, path) not in seen:
            seen[(repo, path)] = file_line_count(repo, path)
        return seen[(repo, path)]

    return lookup


class RagAnswerer:
    """Question in, verified answer out. Backends are injected; nothing here knows Ray or HTTP."""

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator | None,
        prompts: PromptRegistry,
        tracer: Tracer | None = None,
        cfg: AnswerConfig | None = None,
    ) -> None:
        self.retriever = retriever
        self.generator = generator
        self.prompts = prompts
        self.tracer = tracer or NoopTracer()
        self.cfg = cfg or AnswerConfig()

    @property
    def model_name(self) -> str:
        return f"{self.generator.name}:{self.generator.model}" if self.generator else "extractive"

    def retrieve(self, question: str, k: int | None, repo_ids: Sequence[str]) -> tuple[list[SearchHit], list[ContextBlock]]:
        hits = self.retriever.search(question, k=k or self.cfg.k, repo_ids=repo_ids)
        return hits, assemble_context(hits, self.cfg.context_tokens, self.cfg.max_blocks_per_file)

    def ask(self, question: str, k: int | None = None, repo_ids: Sequence[str] = ()) -> Answer:
        events = list(self.ask_events(question, k, repo_ids, stream=False))
        return events[-1][1]

    def ask_events(self, question: str, k: int | None = None, repo_ids: Sequence[str] = (), *, stream: bool = True) -> Iterator[tuple[str, Any]]:
        """Yields ("sources", [...]) once retrieved, ("token", text) while generating, ("answer", Answer) last."""
        question = check_question(question, self.cfg.max_question_chars)
        started = time.perf_counter()
        with self.tracer.trace("ask", inputs={"question": question, "repo": list(repo_ids), "k": k}) as trace:
            with trace.span("retrieve", {"query": question, "k": k or self.cfg.k, "repo": list(repo_ids)}) as span:
                t0 = time.perf_counter()
                hits, blocks = self.retrieve(question, k, repo_ids)
                span.end(
                    [{"path": h.path, "lines": [h.start_line, h.end_line], "score": h.score} for h in hits],
                    latency_s=time.perf_counter() - t0,
                    hits=len(hits),
                    context_blocks=len(blocks),
                )
            yield "sources", [b.to_dict() for b in blocks]
            prompt = self.prompts.get()
            prompt_info = {"name": prompt.name, "version": prompt.version, "source": prompt.source}
            lookup = _memoised(self.file_line_count)
            # Every token sent is verified text: the gate releases only what verification can no longer change.
            gate = VerifiedStream(StreamVerifier(blocks, lookup))
            if self.generator is None:
                text = extractive_answer(question, blocks)
            else:
                messages = prompt.render(question, format_context(blocks))
                with trace.span("generate", {"messages": messages}) as span:
                    t0 = time.perf_counter()
                    try:
                        text, usage = yield from self._generate(messages, stream, gate)
                    except GeneratorError as err:
                        err.sources = [b.to_dict() for b in blocks] if self.cfg.sources_on_generator_error else []
                        span.end(error=str(err))
                        raise
                    span.end(text, latency_s=time.perf_counter() - t0, model=self.model_name, prompt_version=prompt.version, **usage)
            report = verify_citations(text, blocks, lookup)
            answer_text = trim_answer(report.answer_text)
            answer_text += closing_fence(answer_text)
            lines = render_sources(report, numbered=True)
            if lines:
                answer_text = answer_text + "\n\n" + "\n".join(lines)
            if stream:
                rest = gate.finish(answer_text)
                if rest:
                    yield "token", rest
            citations = {
                "valid": len(report.valid),
                # What was removed, defanged: a client that renders this list must not get the links back.
                "invalid": [{"text": defang(t), "reason": defang_reason(r)} for t, r in report.invalid],
                "citation_valid": report.validity,
            }
            answer = Answer(
                answer=answer_text,
                sources=[b.to_dict() for b in report.sources] or [],
                trace_id=trace.id,
                model=self.model_name,
                prompt=prompt_info,
                citations=citations,
                latency_s=time.perf_counter() - started,
                context=list(blocks),
            )
            cited = [{"repo": b.repo, "path": b.path, "start_line": b.start_line, "end_line": b.end_line} for b in report.sources]
            trace.end({"answer": answer_text}, citation_valid=report.validity, invalid_citations=len(report.invalid), model=self.model_name, prompt_name=prompt.name, prompt_version=prompt.version, cited=cited)
        yield "answer", answer

    def _generate(self, messages: list[dict], stream: bool, gate: VerifiedStream):
        assert self.generator is not None
        if not stream:
            gen = self.generator.generate(messages)
            return gen.text, {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens}
        parts: list[str] = []
        deltas = self.generator.stream(messages)
        while True:
            try:
                delta = next(deltas)
            except StopIteration as done:
                gen = done.value  # the stream's `Generation`: token usage when the backend reports it
                break
            parts.append(delta)
            safe = gate.feed(delta)
            if safe:
                yield "token", safe
        usage = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens} if gen is not None else {}
        return "".join(parts), usage

    def file_line_count(self, repo: str, path: str) -> int | None:
        return self.retriever.file_line_count(repo, path)
