"""The RAG answerer's pure parts and its flow with injected backends (no model, no index)."""

from __future__ import annotations

import pytest

from codesense_ray.answering.answerer import (
    InvalidQuestion,
    RagAnswerer,
    assemble_context,
    check_question,
    extractive_answer,
    first_doc_line,
)
from codesense_ray.config import AnswerConfig
from codesense_ray.answering.generators.base import Generation, GeneratorError
from codesense_ray.answering.prompts.registry import FilePromptRegistry
from codesense_ray.retrieval.retriever import SearchHit


def hit(path, s, e, text="def f():\n    pass", symbol=None, repo="payments"):
    url = f"https://github.com/acme/{repo}/blob/abc123/{path}#L{s}-L{e}"
    return SearchHit(id=f"{path}:{s}", repo=repo, path=path, start_line=s, end_line=e, url=url, score=1.0, symbol=symbol, text=text, ref="abc123")


class FakeRetriever:
    """Stands in for `Retriever`: fixed hits, and file lengths for citation checks."""

    def __init__(self, hits, lines=None):
        self.hits = hits
        self.lines = lines or {}

    def search(self, query, k=None, repo_ids=()):
        return self.hits[: k or len(self.hits)]

    def file_line_count(self, repo, path):
        return self.lines.get((repo, path))


class FakeGenerator:
    name, model = "fake", "echo"

    def __init__(self, text, fail=False):
        self.text, self.fail = text, fail
        self.seen = []

    def generate(self, messages, *, max_tokens=None, temperature=None):
        self.seen.append(messages)
        if self.fail:
            raise GeneratorError("fake", "connection refused")
        return Generation(text=self.text, model=self.model, prompt_tokens=10, completion_tokens=5)

    def stream(self, messages, *, max_tokens=None, temperature=None):
        if self.fail:
            raise GeneratorError("fake", "connection refused")
        for word in self.text.split(" "):
            yield word + " "


def test_assemble_context_prefers_distinct_files_and_drops_overlaps():
    """Overlapping chunks of one file are dropped; the first pass takes one block per file; numbering follows rank."""
    hits = [hit("a.py", 1, 20), hit("a.py", 10, 30), hit("a.py", 40, 50), hit("b.py", 1, 5), hit("a.py", 60, 70)]
    blocks = assemble_context(hits, budget_tokens=10_000, max_per_file=2)
    assert [(b.path, b.start_line) for b in blocks] == [("a.py", 1), ("a.py", 40), ("b.py", 1)]
    assert [b.number for b in blocks] == [1, 2, 3]


def test_assemble_context_respects_budget_but_keeps_one_block():
    """The token budget limits the context, yet the best block is always included."""
    big = "x" * 4000
    blocks = assemble_context([hit("a.py", 1, 100, big), hit("b.py", 1, 100, big)], budget_tokens=500, max_per_file=2)
    assert [b.path for b in blocks] == ["a.py"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('def verify(token):\n    """Check the JWT signature and expiry."""\n    return 1', "Check the JWT signature and expiry."),
        ("// Middleware enforcing API keys.\nfunc Auth() {}", "Middleware enforcing API keys."),
        ("/**\n * Refreshes the session token.\n */\nexport function refresh() {}", "Refreshes the session token."),
        ('resource "aws_iam_role" "svc" {\n  name = "x"\n}', 'resource "aws_iam_role" "svc" {'),
    ],
)
def test_first_doc_line(text, expected):
    """The extractive summary line is the first docstring/comment sentence, else the first code line."""
    assert first_doc_line(text) == expected


def test_extractive_answer_cites_every_item():
    """The no-LLM answer lists files with symbol, summary and a [n] citation per block."""
    blocks = assemble_context([hit("app/auth/jwt.py", 5, 9, 'def verify():\n    """Verify tokens."""', "verify")], 1000, 2)
    text = extractive_answer("How?", blocks)
    assert "`app/auth/jwt.py`" in text and "`verify`: Verify tokens. [1]" in text
    assert extractive_answer("How?", []).startswith("I found no indexed code")


def test_stream_holds_links_split_across_deltas():
    """A URL split over several stream deltas never reaches the client; the tokens add up to the verified answer."""
    answerer = RagAnswerer(FakeRetriever([hit("a.py", 1, 2)]), FakeGenerator("see https://evil.exa mple.com/x now [1] ok"), FilePromptRegistry())
    events = list(answerer.ask_events("Where?", stream=True))
    streamed = "".join(v for k, v in events if k == "token")
    assert "evil" not in streamed and "see" in streamed and "now" in streamed
    assert streamed == events[-1][1].answer


def test_check_question_limits():
    """Empty and oversized questions are rejected with the configured limit in the message."""
    with pytest.raises(InvalidQuestion, match="empty"):
        check_question("  ", 10)
    with pytest.raises(InvalidQuestion, match="limit 10"):
        check_question("x" * 11, 10)


def test_answerer_verifies_model_citations():
    """Invented block numbers and foreign links are removed; the valid [1] becomes a permalink source."""
    hits = [hit("app/auth/jwt.py", 5, 9, symbol="verify"), hit("app/api.py", 1, 3)]
    gen = FakeGenerator("Tokens are verified in `verify` [1][9]. Details: https://evil.example.com/jwt.py#L1")
    answerer = RagAnswerer(FakeRetriever(hits, {("payments", "app/auth/jwt.py"): 40}), gen, FilePromptRegistry())
    ans = answerer.ask("How are tokens verified?")
    assert "[9]" not in ans.answer and "evil.example.com" not in ans.answer
    assert "[1] Source: https://github.com/acme/payments/blob/abc123/app/auth/jwt.py#L5-L9" in ans.answer
    assert ans.citations["valid"] == 1 and len(ans.citations["invalid"]) == 2
    assert ans.prompt["name"] == "rag-code-assistant" and ans.model == "fake:echo"
    # The prompt came from the registry and carries the numbered context.
    assert "[1] payments:app/auth/jwt.py:L5-L9" in gen.seen[0][-1]["content"]


def test_answer_without_valid_citation_says_so():
    """A model answer citing nothing verifiable ends with the plain caution note."""
    answerer = RagAnswerer(FakeRetriever([hit("a.py", 1, 2)]), FakeGenerator("It is done somewhere."), FilePromptRegistry())
    assert "No verifiable source was cited" in answerer.ask("Where?").answer


def test_generator_error_carries_sources():
    """A failing generator raises GeneratorError with the retrieved sources attached (for the 502 body)."""
    answerer = RagAnswerer(FakeRetriever([hit("a.py", 1, 2)]), FakeGenerator("", fail=True), FilePromptRegistry(), cfg=AnswerConfig())
    with pytest.raises(GeneratorError) as err:
        answerer.ask("Where?")
    assert err.value.sources[0]["path"] == "a.py"


def test_stream_events_order():
    """Streaming yields sources first, then tokens, then the verified answer."""
    answerer = RagAnswerer(FakeRetriever([hit("a.py", 1, 2)]), FakeGenerator("It is in the handler module [1] which checks it.\nThe second line explains more of it [1] and ends."), FilePromptRegistry())
    kinds = [k for k, _ in answerer.ask_events("Where?", stream=True)]
    assert kinds[0] == "sources" and kinds[-1] == "answer" and kinds.count("token") >= 2
