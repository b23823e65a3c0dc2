"""The chunker's per-language definition table: every syntax language is covered, everything else is text."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesense_ray.chunking import chunk_file, extract_definitions
from codesense_ray.chunking.definitions import LANGUAGES
from codesense_ray.sources.languages import detect_language

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "languages"
# Kinds a definition can have (the table's own, plus `method` for functions inside classes).
KINDS = {"function", "method", "class", "interface", "struct", "enum", "impl", "module", "type", "section"}


def _fixture_languages() -> dict[str, Path]:
    return {detect_language(f"repo/{p.name}"): p for p in sorted(FIXTURES.iterdir())}


def test_table_covers_exactly_the_languages_with_a_fixture():
    """Each language the chunker parses has a table entry and a fixture; no table entry lacks a fixture."""
    assert set(LANGUAGES) == set(_fixture_languages())


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_table_entry_matches_the_grammar(language):
    """The grammar loads, the entry names node types it knows (or finds definitions by position), with known kinds."""
    from tree_sitter_language_pack import get_language

    spec = LANGUAGES[language]
    grammar = get_language(language)
    if spec.find is None:
        assert [t for t in spec.defs if grammar.id_for_node_kind(t, True)], f"{language}: no node type in the grammar"
    assert set(spec.defs.values()) <= KINDS
    definitions = extract_definitions(_fixture_languages()[language].read_text(encoding="utf-8"), language)
    assert definitions and {d.kind for d in definitions} <= KINDS | {"resource", "block", "stage"}


@pytest.mark.parametrize("language", ["scala", "toml", "text", "no-such-language"])
def test_language_without_a_table_entry_is_chunked_as_text(language):
    """Code in a language missing from the table goes to the text planner: text chunks, no symbols, no definitions."""
    assert language not in LANGUAGES
    text = (FIXTURES / "payments.py").read_text(encoding="utf-8")
    assert any(c.symbol for c in chunk_file(text, "payments.py", "python", max_tokens=64))  # the contrast

    chunks = chunk_file(text, "payments.py", language, max_tokens=64)
    assert chunks and all(c.kind == "text" and c.symbol is None and not c.definitions for c in chunks)
    lines = text.split("\n")
    assert all(c.text == "\n".join(lines[c.start_line - 1 : c.end_line]) for c in chunks)
    assert extract_definitions(text, language) == []
