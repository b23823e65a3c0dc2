"""Citation checking against adversarial model outputs: every link a user sees must be one codesense produced."""

from __future__ import annotations

import pytest

from codesense_ray.answering.citations import (
    NO_SOURCE_NOTE,
    REMOVED_MARKER,
    ContextBlock,
    extract_citations,
    format_context,
    render_answer,
    render_sources,
    verify_citations,
)

GITLAB = "https://gitlab.example.com/team/payments"
GITHUB = "https://github.com/acme/ledger"
SHA = "4f1c2ab9d3e5f60718293a4b5c6d7e8f90a1b2c3"

BLOCKS = [
    ContextBlock(1, "payments", "app/auth/jwt.py", 10, 42, f"{GITLAB}/-/blob/{SHA}/app/auth/jwt.py#L10-42", "def verify_token(token):\n    ...", "verify_token", SHA),
    ContextBlock(2, "payments", "app/auth/permissions.py", 1, 30, f"{GITLAB}/-/blob/{SHA}/app/auth/permissions.py#L1-30", "ROLES = {...}", "require_role", SHA),
    ContextBlock(3, "ledger", "src/ledger/api.go", 100, 140, f"{GITHUB}/blob/main/src/ledger/api.go#L100-L140", 'http.Get("https://internal.example.com/health")', "Handler", "main"),
]
LINES = {("payments", "app/auth/jwt.py"): 120, ("payments", "app/auth/permissions.py"): 80, ("ledger", "src/ledger/api.go"): 300}


def lookup(repo: str, path: str) -> int | None:
    return LINES.get((repo, path))


def check(answer: str, blocks=BLOCKS):
    return verify_citations(answer, blocks, lookup)


# --- extraction ------------------------------------------------------------------------------------------
def test_extracts_every_citation_form():
    """[1], [1, 3], [1][2], [1-2], path:L10-L20, path (lines 5-9), raw URLs and markdown links are all found, in order."""
    text = "A [1, 3]. B [1][2]. C [1-2]. D app/auth/jwt.py:L10-L20 and api.go (lines 5-9). E https://x.example/y. F [doc](https://z.example/w)."
    found = extract_citations(text)
    assert [(c.kind, c.numbers or c.path or c.url) for c in found] == [
        ("block", (1, 3)),
        ("block", (1,)),
        ("block", (2,)),
        ("block", (1, 2)),
        ("path", "app/auth/jwt.py"),
        ("path", "api.go"),
        ("url", "https://x.example/y"),
        ("url", "https://z.example/w"),
    ]
    assert (found[4].start_line, found[4].end_line, found[5].start_line, found[5].end_line) == (10, 20, 5, 9)


def test_abbreviations_are_not_paths():
    """'e.g line 5' is prose, not a file citation."""
    assert extract_citations("See e.g line 5 and i.e lines 2-3.") == []


def test_code_is_not_a_citation():
    """`items[1]` in inline code and [2] inside fenced blocks are code, not citations."""
    text = "Use `items[1]` here [1].\n```python\nx = arr[2]\n```\n"
    assert [c.numbers for c in extract_citations(text)] == [(1,)]


# --- valid answers ---------------------------------------------------------------------------------------
def test_valid_block_citations_map_to_permalinks():
    """[1] and [2] resolve to their blocks; sources render as `Source: <commit-pinned permalink>`, nothing flagged."""
    report = check("Tokens are checked by `verify_token` [1]; roles by `require_role` [2].")
    assert report.invalid == [] and report.validity == 1.0
    assert [b.number for b in report.sources] == [1, 2]
    assert render_sources(report) == [f"[1] Source: {BLOCKS[0].url}", f"[2] Source: {BLOCKS[1].url}"]
    assert render_sources(report, numbered=False)[0] == f"Source: {BLOCKS[0].url}"
    assert f"/-/blob/{SHA}/" in report.sources[0].url
    assert render_answer(report).endswith(f"[2] Source: {BLOCKS[1].url}")


def test_valid_path_citation_overlapping_context_is_kept():
    """A path:line citation inside the file and overlapping a retrieved block stays and maps to that block."""
    report = check("Expiry is enforced in app/auth/jwt.py:L30-L35.")
    assert report.invalid == [] and report.answer_text == "Expiry is enforced in app/auth/jwt.py:L30-L35."
    assert [b.number for b in report.sources] == [1]


def test_exact_permalink_is_normalised_to_its_block():
    """A link identical to one codesense produced is accepted and replaced by its [n] (links are rendered by us only)."""
    report = check(f"See {BLOCKS[2].url}.")
    assert report.invalid == [] and report.answer_text == "See [3]."


def test_model_written_link_into_indexed_range_is_verified():
    """A model-written link at the indexed commit, inside the file and overlapping the context, resolves to its block."""
    report = check(f"See [the check]({GITLAB}/-/blob/{SHA}/app/auth/jwt.py#L12-20).")
    assert report.invalid == [] and report.answer_text == "See the check [1]."


# --- adversarial answers ---------------------------------------------------------------------------------
def test_block_number_beyond_context_is_removed():
    """[9] with three blocks is invalid: removed from the text, counted with the reason; valid members of a group stay."""
    report = check("Auth is in `verify_token` [9]. Roles [2, 7].")
    assert report.answer_text == "Auth is in `verify_token`. Roles [2]."
    assert report.invalid == [("[9]", "no context block [9] (the context has blocks 1-3)"), ("[7]", "no context block [7] (the context has blocks 1-3)")]
    assert report.validity == pytest.approx(1 / 3)


def test_invented_path_is_removed():
    """A file that is not indexed (invented by the model) is replaced by a removal marker, with the reason."""
    report = check("Authorization lives in app/auth/rbac.py:L1-L20 [1].")
    assert REMOVED_MARKER in report.answer_text and "rbac.py" not in report.answer_text
    assert report.invalid == [("app/auth/rbac.py:L1-L20", "app/auth/rbac.py is not indexed for payments, ledger")]


def test_out_of_range_lines_are_removed():
    """Lines past the end of an indexed file are invalid even though the file exists."""
    report = check("See app/auth/jwt.py:900-950 [1].")
    assert report.invalid == [("app/auth/jwt.py:900-950", "lines 900-950 are outside app/auth/jwt.py (120 lines)")]
    assert "900" not in report.answer_text


def test_lines_outside_retrieved_context_are_removed():
    """Real lines of an indexed file that were not in the retrieved context cannot be vouched for: removed."""
    report = check("Also app/auth/jwt.py (lines 100-110) [1].")
    assert report.invalid == [("app/auth/jwt.py (lines 100-110)", "lines 100-110 of app/auth/jwt.py were not in the retrieved context")]


@pytest.mark.parametrize(
    "url,reason",
    [
        ("https://evil.example.net/payments/app/auth/jwt.py#L10", "link to a location codesense did not produce (evil.example.net)"),
        (f"{GITLAB}/-/blob/deadbeef/app/auth/jwt.py#L10-20", "link does not point into an indexed repository at its indexed ref"),
        (f"{GITLAB}/-/blob/{SHA}/app/auth/jwt.py#L500-510", "lines 500-510 are outside app/auth/jwt.py (120 lines)"),
        (f"{GITLAB}/-/blob/{SHA}/app/secrets.py#L1-5", "app/secrets.py is not indexed for payments"),
        ("file:///etc/passwd", "link to a location codesense did not produce (file URL)"),
    ],
)
def test_links_not_produced_by_codesense_are_stripped(url, reason):
    """Other hosts, other commits, out-of-range anchors, unindexed files and local files never reach the user."""
    report = check(f"Details: {url} and [1].")
    assert url not in report.answer_text and REMOVED_MARKER in report.answer_text
    assert report.invalid == [(url, reason)]
    assert [b.number for b in report.sources] == [1]


def test_markdown_link_to_other_host_keeps_label_only():
    """A markdown link to a foreign host keeps its label text; the URL is removed."""
    report = check("Read [the auth guide](https://phish.example.com/login) [2].")
    assert report.answer_text == f"Read the auth guide {REMOVED_MARKER} [2]."


@pytest.mark.parametrize(
    "answer,expected,reason",
    [
        ("Click [here](javascript:alert(1)) [1].", f"Click here {REMOVED_MARKER} [1].", "javascript URL"),
        ("Mirror at www.evil-mirror.example/jwt [1].", f"Mirror at {REMOVED_MARKER} [1].", "www.evil-mirror.example"),
        ("See [jwt](app/auth/jwt.py#L10-20) [1].", f"See jwt {REMOVED_MARKER} [1].", "relative URL"),
    ],
)
def test_non_http_and_schemeless_links_are_stripped(answer, expected, reason):
    """javascript: targets, GFM-autolinked `www.` hosts and relative markdown links are removed too."""
    report = check(answer)
    assert report.answer_text == expected
    assert len(report.invalid) == 1 and reason in report.invalid[0][1]


def test_no_citations_gets_a_plain_warning():
    """An answer without any citation says plainly that nothing verifiable was cited."""
    report = check("Authorization uses JWTs.")
    assert report.valid == [] and report.sources == [] and report.validity is None
    assert report.answer_text == f"Authorization uses JWTs.\n\n{NO_SOURCE_NOTE}"


def test_only_invalid_citations_also_get_the_warning():
    """When every citation was invalid, the cleaned answer carries the warning and validity is 0."""
    report = check("It is in app/auth/rbac.py:10 [8].")
    assert report.validity == 0.0 and report.answer_text.endswith(NO_SOURCE_NOTE)


def test_url_quoted_from_context_code_is_left_alone():
    """A URL inside code that appears verbatim in a context block is a quote of the code, not a citation."""
    report = check('The handler calls `http.Get("https://internal.example.com/health")` [3].')
    assert "https://internal.example.com/health" in report.answer_text and report.invalid == []


def test_stale_index_block_is_rejected_by_lookup():
    """A block whose file is no longer indexed (lookup says None) is not a valid source."""
    report = verify_citations("X [1].", BLOCKS, lambda repo, path: None)
    assert report.invalid and "no longer indexed" in report.invalid[0][1]


def test_without_lookup_only_context_files_count():
    """Without a lookup, only files present in the context are considered indexed."""
    report = verify_citations("See app/auth/other.py:1-2 and app/auth/jwt.py:11-12.", BLOCKS)
    assert [t for t, _ in report.invalid] == ["app/auth/other.py:1-2"]
    assert [b.number for b in report.sources] == [1]


def test_format_context_numbers_blocks_for_the_prompt():
    """The prompt context heads each block `[n] repo:path:Ls-Le` and fences its code."""
    ctx = format_context(BLOCKS[:2])
    assert ctx.startswith("[1] payments:app/auth/jwt.py:L10-L42  (verify_token)\n```\ndef verify_token")
    assert "\n\n[2] payments:app/auth/permissions.py:L1-L30" in ctx


def test_report_to_dict_is_json_ready():
    """to_dict() gives the answer, sources, valid/invalid lists and citation_valid for the API and traces."""
    import json

    d = check("X [1] [5].").to_dict()
    json.dumps(d)
    assert d["citation_valid"] == 0.5 and d["invalid"] == [{"text": "[5]", "reason": "no context block [5] (the context has blocks 1-3)"}]
    assert d["sources"][0]["url"] == BLOCKS[0].url and "text" not in d["sources"][0]
