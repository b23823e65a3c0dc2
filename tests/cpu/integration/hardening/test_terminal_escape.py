"""Terminal output escapes control characters: file names, symbols and answers cannot drive the terminal."""

from __future__ import annotations

import pytest

from codesense_ray.app.cli.terminal import printable

HOSTILE = {
    "escape (colour)": "\x1b[31mred.py",
    "OSC 8 hyperlink": "\x1b]8;;https://evil.example/\x07click.py\x1b]8;;\x07",
    "window title": "\x1b]0;pwned\x07a.py",
    "bell": "a\x07.py",
    "backspace overwrite": "safe.py\x08\x08\x08evil",
    "carriage return": "ok.py\rEVIL.py",
    "newline": "a.py\nfake line",
    "tab": "a\tb.py",
    "NUL": "a\x00.py",
    "DEL": "a\x7f.py",
    "C1 CSI": "a\x9b31m.py",
    "C1 OSC": "a\x9d0;x\x9c.py",
    "RLO (trojan source)": "invoice\u202egpj.py",
    "LRI/PDI isolates": "a\u2066b\u2069.py",
    "Arabic letter mark": "a\u061c.py",
    "lone surrogate": "a\udcff.py",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_names_escaped(name):
    """Each control/bidi/surrogate character becomes a visible \\x.. or \\u.... escape; the result is printable UTF-8."""
    out = printable(HOSTILE[name])
    assert all(c.isprintable() for c in out), repr(out)
    out.encode("utf-8")
    assert "\\x" in out or "\\u" in out


@pytest.mark.parametrize("text", ["app/auth/jwt.py", "src/ünïcode/日本.py", "emoji😀.md", "a b.py", "C:\\\\path\\\\x.py"])
def test_ordinary_names_unchanged(text):
    """Ordinary names, spaces, non-Latin scripts and emoji are printed as they are."""
    assert printable(text) == text


def test_multiline_keeps_layout_only():
    """Answers keep newlines and tabs but still lose escape sequences."""
    assert printable("a\n\tb\x1b[2Jc", multiline=True) == "a\n\tb\\x1b[2Jc"


def test_cli_search_prints_escaped_names(tmp_path, capsys, monkeypatch):
    """`codesense search` (human output) shows hostile file names and symbols escaped; --json keeps them as data."""
    import json

    from codesense_ray.app import cli
    from codesense_ray.retrieval.retriever import SearchHit

    hit = SearchHit(id="1", repo="r", path="\x1b]8;;https://evil/\x07x.py", start_line=1, end_line=2, url="https://h/\x1b[2J", score=1.0, symbol="f\u202e")

    class FakeRetriever:
        def search(self, query, k=None, repo_ids=()):
            return [hit]

    monkeypatch.setattr("codesense_ray.app.compose.build_retriever", lambda cfg: FakeRetriever())
    from tests.conftest import write_config

    write_config(tmp_path, [{"id": "r", "path": "r"}])
    assert cli.main(["search", "x", "--config", str(tmp_path / "codesense.yaml")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b]8;;https://evil/\\x07x.py" in out
    assert cli.main(["search", "x", "--json", "--config", str(tmp_path / "codesense.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0]["path"] == hit.path


def test_cli_error_line_escaped(capsys, tmp_path):
    """An error message naming a hostile argument stays one escaped line on stderr."""
    from codesense_ray.app import cli

    assert cli.main(["status", "--config", str(tmp_path / "missing\x1b[2J\nx.yaml")]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and len(err.strip().splitlines()) == 1
