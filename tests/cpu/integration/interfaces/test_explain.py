"""`codesense explain`: the ML concepts, read from docs/ (one source)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from codesense_ray.app.cli.main import main
from codesense_ray.interfaces.explain import UnknownConcept, find_concept, load_concepts, parse_concepts

DOCS = Path(__file__).resolve().parents[4] / "docs"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_docs_concept_is_listed_by_explain(capsys):
    """Each `## Name — analogy` heading in docs/*.md (found here by a plain grep) is a concept that explain lists."""
    headings = {
        m.group(1).strip()
        for f in DOCS.glob("*.md")
        for m in re.finditer(r"^## (.+?) — ", f.read_text(encoding="utf-8"), flags=re.M)
    }
    code, out, _ = _run(capsys, "explain", "--json")
    assert code == 0
    listed = {c["name"] for c in json.loads(out)["concepts"]}
    assert headings and headings == listed


def test_list_shows_every_concept_with_its_analogy(capsys):
    """Without an argument explain prints one line per concept: its key, name and DevOps analogy."""
    code, out, _ = _run(capsys, "explain")
    assert code == 0
    for c in load_concepts(DOCS):
        assert f"{c.name} — {c.analogy}" in out and c.key in out
    assert "reciprocal-rank-fusion" in out and "merging alert lists" in out


def test_explain_one_concept_prints_the_docs_section(capsys):
    """`explain rrf` prints the RRF section of docs/concepts.md verbatim, and nothing of the next section."""
    code, out, _ = _run(capsys, "explain", "rrf")
    assert code == 0
    text = (DOCS / "concepts.md").read_text(encoding="utf-8")
    section = text.split("## Reciprocal-rank fusion (RRF)")[1].split("\n## ")[0].split("\n", 1)[1].strip()
    assert section in out
    assert "Incremental indexing" not in out and "terraform plan" not in out


def test_explain_json_for_one_concept(capsys):
    """`explain embeddings --json` is one JSON document with key, name, analogy, body and the docs source line."""
    code, out, _ = _run(capsys, "explain", "Embeddings", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["key"] == "embeddings" and doc["analogy"] == "a content hash that understands meaning"
    assert doc["source"].startswith("docs/concepts.md:") and "token limit" in doc["body"]


def test_unknown_concept_is_a_one_line_error_naming_the_known_ones(capsys):
    """An unknown concept exits 2 with one stderr line that lists the known keys; stdout stays empty."""
    code, out, err = _run(capsys, "explain", "quantum-annealing")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unknown concept 'quantum-annealing'" in lines[0]
    assert "embeddings" in lines[0] and "alias-swap" in lines[0]


def test_lookup_by_alias_word_and_ambiguity():
    """Aliases (text in parentheses) and a unique word find a concept; a word shared by two is reported as ambiguous."""
    concepts = load_concepts(DOCS)
    assert find_concept(concepts, "RRF").key == "reciprocal-rank-fusion"
    assert find_concept(concepts, "qdrant").key == "vector-index"
    assert find_concept(concepts, "citations").key == "verified-commit-pinned-citations"
    assert find_concept(concepts, "mrr").key == "retrieval-metrics"
    with pytest.raises(UnknownConcept, match="ambiguous"):
        find_concept(parse_concepts("## Alpha index — a\n\n## Beta index — b\n", "t.md"), "index")


def test_parser_ignores_fenced_headings_and_keeps_subsections():
    """A `## x — y` line inside a code fence is not a concept; `###` subsections belong to their concept."""
    md = "# Title\n\n## One (1) — first\nbody\n```\n## Not — a concept\n```\n### Detail\nmore\n## Plain heading\nafter\n"
    [c] = parse_concepts(md, "x.md")
    assert (c.key, c.aliases, c.analogy, c.source) == ("one", ("1",), "first", "x.md:3")
    assert "## Not — a concept" in c.body and "### Detail\nmore" in c.body and "after" not in c.body
