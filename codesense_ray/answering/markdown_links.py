"""Every link a renderer would make from a piece of Markdown, located in the source text.

The answer a user reads is Markdown: the CLI prints it (terminals make `scheme://…` clickable), web UIs render it
with a CommonMark/GFM renderer (links, images, autolinks, reference definitions, raw HTML, bare URLs). Whether a
string *is* a link is therefore decided by a real parser (markdown-it-py, the CommonMark reference algorithm), not by
regexes guessing at the syntax — think of it as linting a manifest with the real schema instead of `grep`.

`scan_markdown(text)` returns every link construct with its exact span in `text`, plus the code regions (code spans,
fenced and indented code blocks), where CommonMark makes nothing a link:

- inline links and images `[label](dest 'title')`, `![alt](<dest with spaces>)`, nested brackets in labels;
- autolinks of any scheme and case `<HTTPS://…>`, `<irc://…>`, `<mailto:…>`, `<a@b.example>`;
- link reference definitions `[ref]: //host/path "title"` (every one, duplicates included);
- raw HTML that links or fetches: any tag with attributes (`<a href>`, `<img src>`, `<form action>`, …), elements
  that load or run things (`<script>`, `<iframe>`, `<svg>`, …), and any HTML that contains a URL;
- bare URLs a linkifying renderer or a terminal turns into links: `scheme://…` in any case, `www.…` (the GFM
  autolink extension), protocol-relative `//host.tld/…`, `host.tld/path`, e-mail addresses and `mailto:`/`xmpp:`.

Reference *uses* (`[text][ref]`, `[ref]`) are reported as `reference` constructs: they are links only while a
definition exists, so removing every definition is what makes them plain text again.

Pure logic: markdown-it-py is a small pure-Python dependency.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any

# Elements that fetch, run or navigate even without a URL attribute the parser would see.
_ACTIVE_ELEMENTS = frozenset(
    "a img image iframe frame frameset object embed applet link base meta form input button script style svg math "
    "video audio source track area map picture portal template noscript use".split()
)

_SCHEME_URL = r"[A-Za-z][A-Za-z0-9+.-]{0,31}:/{2}[^\s<>`]*"
_WWW = r"(?<![\w.-])[Ww]{3}\.[^\s<>`]+"
_PROTOCOL_RELATIVE = r"(?<![\w:/])//[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?(?:[/?#][^\s<>`]*)?(?![\w-])"
_HOST_PATH = r"(?<![\w.@/:-])(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?::\d+)?/[^\s<>`]*"
_EMAIL = r"(?<![\w.+-])(?:(?:mailto|xmpp):)?[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-_]+)*\.[A-Za-z0-9-_]*[A-Za-z0-9]"
_PROTOCOL = r"(?<![\w.+-])(?:mailto|xmpp|javascript|vbscript|data|tel|sms|callto|magnet):[^\s<>`]+"
# A backtick ends a bare URL: a code span binds tighter than the GFM autolink extension.
# Everything outside code that some renderer or terminal would turn into a clickable link.
BARE_URL_RE = re.compile("|".join(f"(?:{p})" for p in (_SCHEME_URL, _WWW, _PROTOCOL_RELATIVE, _HOST_PATH, _EMAIL, _PROTOCOL)), re.I)
# Inside code nothing renders as a link, but a terminal still makes `scheme://…` clickable.
CODE_URL_RE = re.compile("|".join(f"(?:{p})" for p in (_SCHEME_URL, _WWW, _PROTOCOL_RELATIVE)), re.I)
_TRAILING = ".,;:!?'\"*_~)]}>`"


@dataclass(frozen=True)
class LinkConstruct:
    """One link-making construct. `kind`: inline | image | reference | definition | autolink | html | bare | code.

    `start`/`end` span the whole construct in the scanned text; `label` spans the visible label of a link or image
    (without brackets); `url` is the destination as written (None for raw HTML).
    """

    kind: str
    start: int
    end: int
    url: str | None = None
    label: tuple[int, int] | None = None


@dataclass
class MarkdownScan:
    """The link constructs of a text (outermost and nested, in source order) and its code regions."""

    text: str
    constructs: list[LinkConstruct] = field(default_factory=list)
    code: list[tuple[int, int]] = field(default_factory=list)
    code_blocks: list[tuple[int, int]] = field(default_factory=list)
    unmapped: list[tuple[int, int]] = field(default_factory=list)

    def in_code(self, pos: int) -> bool:
        return any(s <= pos < e for s, e in self.code)

    def in_code_block(self, pos: int) -> bool:
        return any(s <= pos < e for s, e in self.code_blocks)

    def links(self) -> list[LinkConstruct]:
        """Constructs that render as links (a reference use is found only while its definition exists)."""
        return [c for c in self.constructs if c.kind != "code"]


def normalise_newlines(text: str) -> str:
    """What markdown-it does before parsing (CRLF/CR → LF, NUL → U+FFFD), so positions line up with the source."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")


# --- raw HTML --------------------------------------------------------------------------------------------------------
class _TagProbe(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.active = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if attrs or tag.lower() in _ACTIVE_ELEMENTS:
            self.active = True

    handle_startendtag = handle_starttag


def html_makes_link(html: str) -> bool:
    """True when raw HTML could link, fetch or run anything: a tag with attributes, an active element, or a URL."""
    if BARE_URL_RE.search(html) or CODE_URL_RE.search(html):
        return True
    probe = _TagProbe()
    try:
        probe.feed(html)
        probe.close()
    except Exception:  # noqa: BLE001 - HTML the parser cannot read is not shown as HTML either way
        return True
    return probe.active


_HTML_BLOCK_ENDS = [
    (re.compile(r"^<(?:script|pre|style|textarea)(?:\s|>|$)", re.I), re.compile(r"</(?:script|pre|style|textarea)>", re.I)),
    (re.compile(r"^<!--"), re.compile(r"-->")),
    (re.compile(r"^<\?"), re.compile(r"\?>")),
    (re.compile(r"^<![A-Za-z]"), re.compile(r">")),
    (re.compile(r"^<!\[CDATA\["), re.compile(r"\]\]>")),
]


def _html_block_unclosed(content: str) -> bool:
    """An HTML block (comment, `<script>`, `<pre>`, …) still open at the end of the text swallows everything after it,
    the `Source:` lines codesense appends included."""
    head = content.lstrip()
    for start, end in _HTML_BLOCK_ENDS:
        if start.match(head):
            return end.search(head, 2) is None
    return False


# --- the parser ------------------------------------------------------------------------------------------------------
def _record(state: Any, kind: str, start: int, end: int, url: str | None = None, label: tuple[int, int] | None = None) -> None:
    state.env["__links"].append((state.env["__inline"], kind, start, end, url, label))


def _wrap_link(rule, image: bool):
    def wrapped(state, silent):
        start = state.pos
        ok = rule(state, silent)
        if ok and not silent:
            label_start = start + (2 if image else 1)
            saved = state.pos
            state.pos = start + (1 if image else 0)
            label_end = state.md.helpers.parseLinkLabel(state, state.pos, True)
            state.pos = saved
            end = state.pos
            tok = next((t for t in reversed(state.tokens) if t.type in ("link_open", "image")), None)
            url = tok.attrGet("src" if image else "href") if tok is not None else None
            inline_form = state.src[end - 1] == ")"
            # A reference-style use (`[x][ref]`, `![x][ref]`, `[ref]`) is a link only while its definition exists;
            # definitions are removed, so uses stay as text (a later definition must not change earlier text).
            kind = ("image" if image else "inline") if inline_form else "reference"
            _record(state, kind, start, end, url, (label_start, label_end) if label_end >= 0 else None)
        return ok

    return wrapped


def _wrap_simple(rule, kind: str):
    def wrapped(state, silent):
        start = state.pos
        before = len(state.tokens)
        ok = rule(state, silent)
        if ok and not silent:
            if kind == "autolink":
                tok = next((t for t in state.tokens[before:] if t.type == "link_open"), None)
                _record(state, "autolink", start, state.pos, tok.attrGet("href") if tok is not None else None)
            elif kind == "html":
                if html_makes_link(state.src[start : state.pos]):
                    _record(state, "html", start, state.pos)
            else:
                _record(state, kind, start, state.pos)
        return ok

    return wrapped


def _wrap_reference(rule):
    def wrapped(state, start_line, end_line, silent):
        ok = rule(state, start_line, end_line, silent)
        if ok and not silent:
            state.env["__definitions"].append((start_line, state.line))
        return ok

    return wrapped


def _core_inline(state) -> None:
    # markdown-it's own core rule, plus a note of which inline token is being parsed (for source positions).
    for token in state.tokens:
        if token.type == "inline":
            if token.children is None:
                token.children = []
            state.env["__inline"] = token
            state.md.inline.parse(token.content, state.md, state.env, token.children)


@lru_cache(maxsize=1)
def _parser():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    # Every destination counts: a renderer that accepts `javascript:` or `file:` must not get one either.
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    md.normalizeLinkText = lambda url: url  # type: ignore[method-assign]
    _wrap(md.inline.ruler, "link", lambda fn: _wrap_link(fn, image=False))
    _wrap(md.inline.ruler, "image", lambda fn: _wrap_link(fn, image=True))
    _wrap(md.inline.ruler, "autolink", lambda fn: _wrap_simple(fn, "autolink"))
    _wrap(md.inline.ruler, "html_inline", lambda fn: _wrap_simple(fn, "html"))
    _wrap(md.inline.ruler, "backticks", lambda fn: _wrap_simple(fn, "code_span"))
    _wrap(md.block.ruler, "reference", _wrap_reference)
    _wrap(md.core.ruler, "inline", lambda fn: _core_inline)
    return md


def _wrap(ruler, name: str, wrapper) -> None:
    # Replace a rule's function in place: `Ruler.at` would also reset the rule's `alt` chains.
    rule = next(r for r in ruler.__rules__ if r.name == name)
    rule.fn = wrapper(rule.fn)
    ruler.__cache__ = None


def parse_blocks(text: str) -> tuple[list, dict]:
    """markdown-it block and inline tokens of `text` (already newline-normalised), with the recording env."""
    env: dict[str, Any] = {"__links": [], "__definitions": [], "__inline": None}
    tokens = _parser().parse(text, env)
    return tokens, env


class _Lines:
    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def start(self, line: int) -> int:
        return self.starts[line] if line < len(self.starts) else len(self.text)

    def end(self, line: int) -> int:
        """End of `line` without its newline."""
        nxt = self.start(line + 1)
        return nxt - 1 if line + 1 < len(self.starts) else len(self.text)

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos) - 1


def _inline_mapper(token, lines: _Lines):
    """Map offsets in an inline token's content back to the source; None when the content is not a source slice."""
    if token.map is None:
        return None
    first = token.map[0]
    bases: list[tuple[int, int, int]] = []  # (content offset of line, leading spaces dropped, source offset)
    offset = 0
    for j, content_line in enumerate(token.content.split("\n")):
        line = first + j
        if line >= token.map[1]:
            return None
        stripped = content_line.lstrip(" \t")
        lead = len(content_line) - len(stripped)
        source = lines.text[lines.start(line) : lines.end(line)]
        at = source.rfind(stripped) if stripped else len(source)
        if at < 0:
            return None
        bases.append((offset, lead, lines.start(line) + at))
        offset += len(content_line) + 1

    def to_source(pos: int) -> int:
        for off, lead, src in reversed(bases):
            if pos >= off:
                return src + max(0, pos - off - lead)
        return bases[0][2]

    return to_source


def scan_markdown(text: str) -> MarkdownScan:
    """Parse `text` (newline-normalised) and locate every link construct and code region in it."""
    scan = MarkdownScan(text)
    tokens, env = parse_blocks(text)
    lines = _Lines(text)
    for t in tokens:
        if t.type in ("fence", "code_block") and t.map:
            region = (lines.start(t.map[0]), lines.end(t.map[1] - 1))
            scan.code.append(region)
            scan.code_blocks.append(region)
        elif t.type == "html_block" and t.map:
            start, end = lines.start(t.map[0]), lines.end(t.map[1] - 1)
            start += len(text[start:end]) - len(text[start:end].lstrip(" \t>"))
            if html_makes_link(text[start:end]) or _html_block_unclosed(t.content):
                scan.constructs.append(LinkConstruct("html", start, end))
    for first, nxt in env["__definitions"]:
        start, end = lines.start(first), lines.end(nxt - 1)
        raw = text[start:end]
        start += raw.find("[") if "[" in raw else 0
        url = _definition_url(text[start:end])
        scan.constructs.append(LinkConstruct("definition", start, end, url))
    mappers: dict[int, Any] = {}
    for token, kind, s, e, url, label in env["__links"]:
        if id(token) not in mappers:
            mappers[id(token)] = _inline_mapper(token, lines)
        to_source = mappers[id(token)]
        if to_source is None:
            scan.unmapped.append((lines.start(token.map[0]), lines.end(token.map[1] - 1)) if token.map else (0, len(text)))
            continue
        start, end = to_source(s), to_source(e - 1) + 1
        if kind == "code_span":
            scan.code.append((start, end))
            continue
        mapped_label = (to_source(label[0]), to_source(label[1] - 1) + 1 if label[1] > label[0] else to_source(label[0])) if label else None
        scan.constructs.append(LinkConstruct(kind, start, end, url, mapped_label))
    for m in BARE_URL_RE.finditer(text):
        if scan.in_code(m.start()):
            continue
        url = _strip_trailing(m.group(0))
        if url:
            scan.constructs.append(LinkConstruct("bare", m.start(), m.start() + len(url), url))
    for s, e in scan.code:
        for m in CODE_URL_RE.finditer(text, s, e):
            url = _strip_trailing(m.group(0))
            if url:
                scan.constructs.append(LinkConstruct("code", m.start(), m.start() + len(url), url))
    scan.constructs.sort(key=lambda c: (c.start, -c.end))
    return scan


_DEFINITION_RE = re.compile(r"\[(?:\\.|[^\\\]])*\]:\s*(<[^>\n]*>|\S+)", re.S)


def _definition_url(source: str) -> str | None:
    m = _DEFINITION_RE.match(source)
    if not m:
        return None
    dest = m.group(1)
    return dest[1:-1] if dest.startswith("<") else dest


def _strip_trailing(url: str) -> str:
    while url and url[-1] in _TRAILING:
        # Keep a closing parenthesis that balances one inside the URL (wiki-style links), as GFM does.
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def link_free(text: str, allowed_code_urls: frozenset[str] | set[str] = frozenset()) -> bool:
    """True when `text` renders no link at all; a URL inside code passes only when it is in `allowed_code_urls`."""
    scan = scan_markdown(normalise_newlines(text))
    if scan.unmapped:
        return False
    return all(c.kind == "code" and scan.text[c.start : c.end] in allowed_code_urls for c in scan.constructs)


def trim_answer(text: str) -> str:
    """`text` without leading blank lines and trailing whitespace. Not `strip()`: removing the indentation of the
    first line could turn an indented code block into a paragraph, and its content into links."""
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


def closing_fence(text: str) -> str:
    """What closes a fenced code block left open at the end of `text` (e.g. `"\\n```"`), else "".

    Text appended after an unclosed fence (the `Source:` lines) would otherwise render as code.
    """
    tokens, _ = parse_blocks(text)
    fences = [t for t in tokens if t.type == "fence" and t.map and t.level == 0]
    if not fences:
        return ""
    last = fences[-1]
    lines = text.split("\n")
    if last.map[1] < len(lines) or last.map[1] - last.map[0] < 1:
        return ""
    tail = lines[last.map[1] - 1].strip(" \t>")
    marker = last.markup
    if last.map[1] - last.map[0] >= 2 and tail.startswith(marker) and set(tail) == {marker[0]}:
        return ""
    return "\n" + marker
