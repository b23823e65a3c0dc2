"""Pair mining for embedding fine-tuning: which pairs a small repository yields, and that evaluation gold never does."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from codesense_ray.training.embedding_pairs import EvalExclusions, GoldSpan, mine_pairs, python_functions

TOKENS = textwrap.dedent('''
    def parse_header(value):
        """Split an Authorization header into its scheme and credentials."""
        scheme, _, token = value.partition(" ")
        if not token:
            raise ValueError("missing credentials in header")
        return scheme.lower(), token


    def sign_payload(payload, key):
        """Sign the serialised payload with the shared secret key."""
        data = repr(payload).encode()
        return hmac_digest(key, data)


    def hmac_digest(key, data):
        return key + data
''').lstrip()

TESTS = textwrap.dedent('''
    from app.tokens import parse_header, sign_payload


    def test_parse_header_scheme():
        assert parse_header("Bearer abc") == ("bearer", "abc")


    def test_sign_payload_roundtrip():
        assert sign_payload({"a": 1}, b"k")


    def test_unrelated_helper():
        assert parse_header("Basic x")
''').lstrip()


def fixture_functions():
    return [*python_functions("svc", "app/tokens.py", TOKENS), *python_functions("svc", "tests/test_tokens.py", TESTS)]


def summary(report):
    return sorted((p.kind, p.anchor.splitlines()[0], p.path, p.start_line) for p in report.pairs)


def test_python_functions_strip_the_docstring_from_the_code():
    """A function's code is its definition without the docstring; calls and literal raise messages are recorded."""
    fn = next(f for f in python_functions("svc", "app/tokens.py", TOKENS) if f.name == "parse_header")
    assert (fn.start_line, fn.end_line) == (1, 6)
    assert "Split an Authorization header" not in fn.code and fn.code.startswith("def parse_header(value):")
    assert fn.raises == ("ValueError: missing credentials in header",)
    assert "partition" in fn.calls


def test_mining_yields_docstring_raise_and_test_pairs():
    """Docstring ↔ body, raised error ↔ function, and test ↔ the source function whose name it shares."""
    report = mine_pairs(fixture_functions())
    assert summary(report) == [
        ("docstring", "Sign the serialised payload with the shared secret key.", "app/tokens.py", 9),
        ("docstring", "Split an Authorization header into its scheme and credentials.", "app/tokens.py", 1),
        ("raise", "ValueError: missing credentials in header", "app/tokens.py", 1),
        ("test", "def test_parse_header_scheme():", "app/tokens.py", 1),
        ("test", "def test_sign_payload_roundtrip():", "app/tokens.py", 9),
    ]
    test_pair = next(p for p in report.pairs if p.kind == "test" and "parse_header_scheme" in p.anchor)
    assert test_pair.positive.startswith("app/tokens.py\ndef parse_header(value):")


def test_evaluation_gold_and_named_tests_are_excluded(tmp_path: Path):
    """A pair whose positive overlaps a gold span, whose test is named in a question, or whose anchor an
    evaluation question quotes is dropped and counted."""
    dataset = tmp_path / "bugs.jsonl"
    rows = [
        {"id": "b1", "question": "`pytest tests/test_tokens.py::test_sign_payload_roundtrip` fails", "repo": "svc",
         "gold": [{"path": "app/tokens.py", "start_line": 3, "end_line": 4}]},
        {"id": "d1", "question": "Sign the serialised payload with the shared secret key.", "repo": "other", "gold": [{"path": "x.py"}]},
    ]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = mine_pairs(fixture_functions(), EvalExclusions.from_datasets([dataset]))
    assert summary(report) == []  # parse_header is gold; the sign_payload test is named; its docstring is quoted
    assert report.dropped["excluded_gold"] == 5


def test_gold_span_in_another_repository_does_not_exclude():
    """Gold spans match by repository and path: the same path in another repository is still mined."""
    exclusions = EvalExclusions([GoldSpan("elsewhere", "app/tokens.py", 1, 20)])
    assert len(mine_pairs(fixture_functions(), exclusions).pairs) == 5
