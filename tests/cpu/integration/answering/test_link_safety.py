"""No link reaches a user unless codesense built it: a corpus of Markdown/HTML link forms through every output path.

What is a link is what a CommonMark/GFM renderer (or a terminal) would make clickable. Each variant below smuggles a
link to `evil.example` into a model answer; after verification the answer must render no foreign link, the valid
`[1]` citation and its commit-pinned `Source:` permalink must survive exactly, and the stream must never send what
the final answer removes.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesense_ray.answering.answerer import RagAnswerer
from codesense_ray.answering.citations import REMOVED_MARKER, ContextBlock, StreamVerifier, defang, renders_no_foreign_link, verify_citations
from codesense_ray.answering.generators.base import Generation
from codesense_ray.answering.markdown_links import link_free, scan_markdown
from codesense_ray.answering.prompts.registry import FilePromptRegistry
from codesense_ray.retrieval.retriever import SearchHit
from codesense_ray.answering.verified_stream import VerifiedStream, stable_cut

SHA = "4f1c2ab9d3e5f60718293a4b5c6d7e8f90a1b2c3"
PERMALINK = f"https://gitlab.example.com/team/payments/-/blob/{SHA}/app/auth/jwt.py#L10-42"
CONTEXT_CODE = 'def verify_token(token):\n    jwks = fetch("https://idp.example.com/.well-known/jwks.json")'
BLOCKS = [ContextBlock(1, "payments", "app/auth/jwt.py", 10, 42, PERMALINK, CONTEXT_CODE, "verify_token", SHA)]
LINES = {("payments", "app/auth/jwt.py"): 120}
LEAD = "Tokens are verified in `verify_token` [1]."

# Every form of link CommonMark, GFM, raw HTML or a terminal turns into something clickable, pointing at evil.example.
FOREIGN = [
    # inline links: titles, angle destinations with spaces, nested brackets, odd schemes and cases
    "[docs](https://evil.example/a)",
    "[docs [with] brackets](https://evil.example/a)",
    "[docs [nested [deep]] label](https://evil.example/a)",
    "[docs](https://evil.example/a 'single title')",
    '[docs](https://evil.example/a "double title")',
    "[docs](https://evil.example/a (paren title))",
    "[docs](<https://evil.example/a b c>)",
    "[docs](<//evil.example/a b> 'title')",
    "[docs](//evil.example/protocol-relative)",
    "[docs](HTTPS://EVIL.EXAMPLE/upper)",
    "[docs](javascript:alert('evil.example'))",
    "[docs](data:text/html,evil.example)",
    "[docs](https://evil.example/a\\))",
    "[docs](https&#58;//evil.example/entity)",
    "[multi\nline label](https://evil.example/a)",
    "[docs](\nhttps://evil.example/next-line\n)",
    "[`code label`](https://evil.example/a)",
    # images (fetched by the renderer without a click)
    "![img](https://evil.example/pixel.png)",
    '![img](https://evil.example/p.png "t")',
    "[![img](https://evil.example/i.png)](https://evil.example/a)",
    # reference links and definitions (the definition may come anywhere, even hijack a citation number)
    "[docs][ref]\n\n[ref]: https://evil.example/full",
    "[ref][]\n\n[ref]: https://evil.example/collapsed",
    "[ref]\n\n[ref]: https://evil.example/shortcut",
    "[Ref]\n\n[REF]: <https://evil.example/a b> 'case-insensitive label'",
    "[ref]\n\n[ref]:\n  https://evil.example/next-line\n  \"title on its own line\"",
    "[1]: https://evil.example/hijacked-citation",
    "[ref]\n\n[ref]: https://evil.example/first\n[ref]: https://evil.example/duplicate",
    # inside blocks and containers
    "> [docs](https://evil.example/quoted)",
    "> [docs\n> spanning](https://evil.example/quoted)",
    ">\t[docs](https://evil.example/tab)",
    "- item [docs](https://evil.example/list)",
    "1. item <https://evil.example/ordered>",
    "# Heading [docs](https://evil.example/h) #",
    "Setext [docs](https://evil.example/s)\n===",
    "| a | [docs](https://evil.example/table) |\n|---|---|",
    "text with a hard break  \n[docs](https://evil.example/after-break)",
    # autolinks of any scheme and case
    "<https://evil.example/a>",
    "<HTTPS://EVIL.EXAMPLE/steal-upper>",
    "<Https://Evil.Example/mixed>",
    "<irc://evil.example/chan>",
    "<ftp://evil.example/f>",
    "<made-up+scheme://evil.example/x>",
    "<mailto:admin@evil.example>",
    "<admin@evil.example>",
    # bare URLs a linkifying renderer (GFM autolink extension) or a terminal makes clickable
    "https://evil.example/a",
    "HTTPS://EVIL.EXAMPLE/a",
    "(see https://evil.example/a)",
    "www.evil.example/a",
    "WWW.EVIL.EXAMPLE",
    "//evil.example/a",
    "evil.example/a/b",
    "admin@evil.example",
    "mailto:admin@evil.example",
    "ssh://git@evil.example/x.git",
    "htt[99]ps://evil.example/formed-after-removal",
    # raw HTML: any tag with URL attributes, active elements, block and inline, multi-line
    '<a href="https://evil.example/a">docs</a>',
    "<A HREF='//evil.example/a'>docs</A>",
    "<a href=https://evil.example/unquoted>docs</a>",
    '<a\nhref="https://evil.example/multiline">docs</a>',
    '<img src="https://evil.example/p.png">',
    "<img src=x onerror=\"fetch('//evil.example')\">",
    '<iframe src="https://evil.example"></iframe>',
    '<form action="https://evil.example/post"><button>go</button></form>',
    '<div>\n<a href="https://evil.example/block">docs</a>\n</div>',
    '<video poster="https://evil.example/p.jpg"></video>',
    '<svg><a xlink:href="https://evil.example/s">x</a></svg>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    "<link rel=stylesheet href=//evil.example/s.css>",
    '<base href="https://evil.example/">',
    "<!-- https://evil.example/hidden -->",
    "<script>location='//evil.example'</script>",
    # code: not a link in a renderer, but a terminal makes scheme URLs clickable unless they quote the context
    "`curl https://evil.example/x`",
    "```\ncurl https://evil.example/x\n```",
    "    curl https://evil.example/indented",
]


def lookup(repo: str, path: str) -> int | None:
    return LINES.get((repo, path))


def only_codesense_links(text: str) -> bool:
    """Every link `text` renders is a `Source:` permalink codesense built (or code quoting the context verbatim)."""
    scan = scan_markdown(text.replace("\r\n", "\n"))
    built = {b.url for b in BLOCKS}
    for c in scan.constructs:
        quoted = scan.text[c.start : c.end]
        if c.kind == "code" and quoted in CONTEXT_CODE:
            continue
        line_start = scan.text.rfind("\n", 0, c.start) + 1
        if c.kind == "bare" and c.url in built and scan.text[line_start : c.start] == "[1] Source: ":
            continue
        return False
    return not scan.unmapped


def evil_free(text: str) -> bool:
    return "evil.example" not in text.lower()


@pytest.mark.parametrize("variant", FOREIGN)
def test_foreign_link_never_survives(variant):
    """Whatever form the link takes, the verified answer renders no link to it and the valid [1] stays."""
    report = verify_citations(f"{LEAD}\n\n{variant}\n", BLOCKS, lookup)
    assert evil_free(report.answer_text), report.answer_text
    assert renders_no_foreign_link(report.answer_text, BLOCKS), report.answer_text
    assert "[1]" in report.answer_text and [b.number for b in report.sources] == [1]
    assert report.invalid, "the removal is counted with its reason"


@pytest.mark.parametrize("variant", FOREIGN)
def test_crlf_and_inline_placement_do_not_help(variant):
    """The same link inside a sentence and with Windows line endings is removed too."""
    report = verify_citations(f"See {variant} here [1].\r\nDone.", BLOCKS, lookup)
    assert evil_free(report.answer_text) and renders_no_foreign_link(report.answer_text, BLOCKS)


@pytest.mark.parametrize(
    "variant",
    [f"[the check]({PERMALINK})", f"<{PERMALINK}>", PERMALINK, f"[jwt]\n\n[jwt]: {PERMALINK}", f"[the check](<{PERMALINK}> 'title')"],
)
def test_codesense_permalink_is_kept_exact_as_a_citation(variant):
    """A link to a verified location becomes [1]; the only link left is the exact `Source:` permalink codesense renders."""
    report = verify_citations(f"Tokens are verified here: {variant}\n", BLOCKS, lookup)
    assert report.invalid == [] and [b.number for b in report.sources] == [1]
    assert link_free(report.answer_text), report.answer_text
    from codesense_ray.answering.citations import render_answer

    assert render_answer(report).endswith(f"\n[1] Source: {PERMALINK}")


def test_labels_keep_their_text_and_lose_the_link():
    """A removed link keeps its label (itself checked), so the sentence still reads."""
    report = verify_citations("Read [the [auth] guide](<//evil.example/a b> 'x') [1].", BLOCKS, lookup)
    assert report.answer_text == f"Read the [auth] guide {REMOVED_MARKER} [1]."


def test_reference_use_stays_plain_text_once_its_definition_is_gone():
    """`[docs]` renders as a link only while `[docs]: …` exists; the definition is removed, the use stays as text."""
    report = verify_citations("See [docs] [1].\n\n[docs]: https://evil.example/x\n", BLOCKS, lookup)
    assert report.answer_text.startswith("See [docs] [1].") and scan_markdown(report.answer_text).links() == []


def test_context_quote_in_code_is_kept_but_not_outside_code():
    """A URL quoted verbatim from the indexed code stays inside code; the same URL in prose is a link and is removed."""
    quote = "https://idp.example.com/.well-known/jwks.json"
    report = verify_citations(f"It fetches `{quote}` [1]. Open {quote} too.", BLOCKS, lookup)
    assert f"`{quote}`" in report.answer_text and report.answer_text.count(quote) == 1


def test_plain_prose_is_untouched():
    """Prose with brackets, angle brackets, file names and dotted names that no renderer links is left as written."""
    text = "Use `List<String>` or List<String>, see app/auth/jwt.py:L12 and ASP.NET, a < b > c, [note] [1]."
    assert verify_citations(text, BLOCKS, lookup).answer_text == text


@pytest.mark.parametrize("text", ["HTTPS://EVIL.EXAMPLE/x", "[a](//evil.example/y)", "<img src=x>", "admin@evil.example", "[9]", "app/x.py:L1-L2"])
def test_defang_makes_diagnostics_inert(text):
    """Removed references listed in `citations.invalid` render no link; plain citations are shown unchanged."""
    out = defang(text)
    assert link_free(out) and evil_free(out)
    if link_free(text):
        assert out == text


# --- every output path: the answerer (CLI text and --json, HTTP JSON) and its event stream (SSE) ---------------------
class ScriptedGenerator:
    """A generator that streams the given deltas (and returns their concatenation when not streaming)."""

    name, model = "scripted", "test"

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas

    def generate(self, messages, *, max_tokens=None, temperature=None):
        return Generation(text="".join(self.deltas), model=self.model, prompt_tokens=1, completion_tokens=1)

    def stream(self, messages, *, max_tokens=None, temperature=None):
        yield from self.deltas


class OneBlockRetriever:
    def __init__(self, text: str = CONTEXT_CODE) -> None:
        self.text = text

    def search(self, query, k=None, repo_ids=()):
        b = BLOCKS[0]
        return [SearchHit(id="1", repo=b.repo, path=b.path, start_line=b.start_line, end_line=b.end_line, url=b.url, score=1.0, symbol=b.symbol, text=self.text, ref=SHA)]

    def file_line_count(self, repo, path):
        return lookup(repo, path)


def answerer(deltas: list[str] | None, context: str = CONTEXT_CODE) -> RagAnswerer:
    return RagAnswerer(OneBlockRetriever(context), ScriptedGenerator(deltas) if deltas is not None else None, FilePromptRegistry())


def stream(ans: RagAnswerer) -> tuple[list[str], object]:
    events = list(ans.ask_events("How is the payment token verified?", stream=True))
    return [v for k, v in events if k == "token"], events[-1][1]


def assert_stream_consistent(tokens: list[str], answer) -> None:
    sent = ""
    for token in tokens:
        sent += token
        assert answer.answer.startswith(sent), (sent, answer.answer)
        assert only_codesense_links(sent), sent
    assert sent == answer.answer


@pytest.mark.parametrize("variant", FOREIGN)
def test_every_output_path_is_clean(variant):
    """Non-streamed answer (CLI text, --json, HTTP JSON) and the token stream (SSE) carry no foreign link."""
    model_text = f"{LEAD} More about it: {variant}\n\nThat is all [1]."
    plain = answerer([model_text]).ask("How is the payment token verified?")
    document = json.dumps(plain.to_dict())
    assert evil_free(plain.answer) and evil_free(document), document
    assert plain.answer.endswith(f"[1] Source: {PERMALINK}")
    deltas = [model_text[i : i + 5] for i in range(0, len(model_text), 5)]
    tokens, streamed = stream(answerer(deltas))
    assert all(evil_free(t) for t in tokens)
    assert_stream_consistent(tokens, streamed)
    assert streamed.answer == plain.answer


def test_extractive_answer_of_a_poisoned_docstring():
    """The issue's repro without a model: the docstring's autolink is removed from the answer and from the stream."""
    context = 'def verify_payment_token(token):\n    """Payment token docs: <HTTPS://EVIL.EXAMPLE/steal-upper> (verify here)"""\n'
    tokens, answer = stream(answerer(None, context))
    assert evil_free(answer.answer) and "(verify here) [1]" in answer.answer
    assert_stream_consistent(tokens, answer)
    assert evil_free(json.dumps(answer.to_dict()))


# --- the stream, property-style -----------------------------------------------------------------------------------
FRAGMENTS = [
    "Tokens ", "are ", "verified ", "in ", "`verify_token` ", "[1]", "[1].", "[9]", " ", " ", "\n", "\n\n", "[", "]", "(", ")",
    "<", ">", "`", "```\n", "~~~", "!", "\\", "'", '"', "#", "> ", "- ", "1. ", "* ", "|", "===", "\t",
    "https://evil.example/x", "HTTPS://EVIL.EXAMPLE/y", "//evil.example/p", "www.evil.example", "admin@evil.example",
    "<a href='//evil.example'>", "</a>", "<img src=x>", "<!-- ", " -->", "htt", "ps://evil.example/z", "evil.example/q",
    "app/auth/jwt.py", " (lines 10-20)", "app/auth/jwt.py:L12", ", line 900", "app/auth/nope.py", "[ref]", "[ref]: ",
    "[docs](", "](", "<https://", PERMALINK, f"[ok]({PERMALINK})", "https://idp.example.com/.well-known/jwks.json",
]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=40), st.lists(st.integers(1, 12), min_size=1, max_size=60))
def test_stream_sends_only_a_prefix_of_the_verified_answer(pieces, sizes):
    """For any model text and any split into deltas: every prefix sent renders no foreign link, and the tokens add up
    to exactly the final verified answer (nothing sent is ever taken back)."""
    text = "".join(pieces)
    deltas, i, n = [], 0, 0
    while i < len(text):
        size = sizes[n % len(sizes)]
        deltas.append(text[i : i + size])
        i, n = i + size, n + 1
    tokens, answer = stream(answerer(deltas))
    assert_stream_consistent(tokens, answer)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=30))
def test_stable_cut_is_monotonic(pieces):
    """Appending text never moves the stable point backwards past text already judged final."""
    text, last = "", 0
    for piece in pieces:
        text += piece
        cut = stable_cut(text)
        assert last <= cut <= len(text)
        last = cut


def test_stream_releases_text_before_the_end():
    """Prose without open constructs streams as it comes (held back only while something may still become a link)."""
    sentence = "Tokens are verified by the gateway before the handler runs [1]. "
    deltas = [w + " " for w in (sentence * 4).split(" ")] + ["See <HTTPS://EVIL.", "EXAMPLE/steal> now."]
    gate = VerifiedStream(StreamVerifier(BLOCKS, lookup))
    sent = ""
    early = None
    for k, d in enumerate(deltas):
        sent += gate.feed(d)
        if early is None and sent:
            early = k
    assert early is not None and early < len(deltas) - 2
    assert evil_free(sent)
