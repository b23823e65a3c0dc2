"""Stream an answer without ever sending text that verification would change.

A model streams raw text; the user may only see *verified* text (citations checked, foreign links removed). The
gate here releases the verified form of a prefix of the raw text, and only a prefix whose meaning later text can no
longer change — like a deployment that only promotes a build once every check on it has finished, never a build
whose checks are still running. Text is held back while anything that could still turn into a link (or stop being
one) is open:

- the current word (a URL, e-mail or `www.` host is only complete at whitespace);
- an incomplete last line that may still open a block (fence, HTML block, list item, definition `[x]:`, …);
- a fenced/indented code block, an HTML block or a reference definition that has not ended yet;
- inside the current paragraph: an unmatched `[`, a `](` without its `)`, an unmatched `<`, an unclosed code span,
  an HTML comment, and a file path that may still be followed by `(lines 10-20)`.

Everything before the last block of Markdown is final (a new block started, so the previous one closed); reference
*uses* never become links after the fact because every definition is removed by verification.

Invariant (tested property-style in tests/answering/test_link_safety.py): the concatenation of everything released
is a prefix of the final verified answer, and renders no link at any point; `finish` sends the rest, so the tokens
add up to exactly the final answer.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from markdown_it.common.html_re import HTML_TAG_RE
from markdown_it.rules_inline.autolink import AUTOLINK_RE, EMAIL_RE

from codesense_ray.answering.markdown_links import normalise_newlines, parse_blocks, trim_answer

log = logging.getLogger("codesense.stream")

_LEAVES = {"paragraph_open", "heading_open", "fence", "code_block", "html_block", "hr"}
_HELD_LEAVES = {"fence", "code_block", "html_block", "definition"}
# A path-like word (as `citations._PATH` sees one): it may still become `path (lines 10-20)` / `path, lines 3-4`.
_PATH_WORD_RE = re.compile(r"(?<![\w/.:-])(?:[A-Za-z0-9][\w.-]*:)?(?:\.{0,2}/)?(?:[\w.@+-]+/)*[\w.@+-]*[\w-]\.[A-Za-z]\w{0,9}")
_LINE_SPEC_PREFIX_RE = re.compile(r"[\s,(\-–\dLlinesto]*")
_ESCAPABLE = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _line_may_open_block(line: str) -> bool:
    """An incomplete line whose first characters could still make it a fence, HTML block, list, definition, …"""
    rest = line.lstrip(" \t>")
    return not rest or rest[0] in "`~<[*-+_=|!\\" or rest[0].isdigit()


def _last_leaf(complete: str) -> tuple[int, str | None]:
    """Line index where the last Markdown leaf block of `complete` starts (0 if none), and its kind.

    A leaf followed by lines outside every leaf (blank lines) is closed: then the start is the end of the text.
    """
    if not complete:
        return 0, None
    tokens, env = parse_blocks(complete)
    leaves = [(t.map[0], t.map[1], t.type) for t in tokens if t.type in _LEAVES and t.map]
    leaves += [(s, e, "definition") for s, e in env["__definitions"]]
    if not leaves:
        return 0, None
    start, end, kind = max(leaves)
    total = complete.count("\n")
    if end < total and kind not in ("fence", "html_block", "code_block"):
        return total, None  # closed by a blank line: everything so far is final
    return start, kind


def _closing_paren(text: str, i: int) -> int:
    """Index of the `)` closing the `(` at `i`, or -1."""
    depth = 0
    j = i
    while j < len(text):
        ch = text[j]
        if ch == "\\" and j + 1 < len(text):
            j += 2
            continue
        if ch == "`":
            return -1  # a code span binds tighter than the link: wait until the paragraph settles it
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
        elif ch == "\n" and text[j + 1 : j + 2] == "\n":
            return -1
        j += 1
    return -1


def _first_pending(text: str) -> int:
    """Offset in `text` (inline Markdown) of the first construct that later text could still complete; -1 if none."""
    openers: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            i += 2
            continue
        if ch == "`":
            run = len(text) - i - len(text[i:].lstrip("`"))
            closing = re.compile(r"(?<!`)" + "`" * run + r"(?!`)")
            m = closing.search(text, i + run)
            if m is None:
                return openers[0] if openers else i
            i = m.end()
            continue
        if ch == "<":
            settled = _angle_settled(text, i)
            if settled is None:
                return min([*openers, i])
            i = settled
            continue
        if ch == "[":
            openers.append(i)
        elif ch == "]" and openers:
            opened = openers.pop()
            if text[i + 1 : i + 2] == "(":
                close = _closing_paren(text, i + 1)
                if close < 0:
                    return min([*openers, opened])
                i = close + 1
                continue
        i += 1
    return openers[0] if openers else -1


def _angle_settled(text: str, i: int) -> int | None:
    """Where scanning continues after the `<` at `i`, or None while later text could still make it a tag/autolink.

    Same precedence as markdown-it: a complete HTML tag/comment/declaration or an autolink is skipped whole (nothing
    inside it is Markdown); a `<` that cannot start either is literal.
    """
    tag = HTML_TAG_RE.match(text, i)
    if tag:
        return tag.end()
    nxt = text[i + 1 : i + 2]
    if not ((nxt.isascii() and nxt.isalpha()) or nxt in ("/", "!", "?")):
        return i + 1
    end = text.find(">", i + 1)
    if end < 0:
        return None
    inner = text[i + 1 : end]
    if AUTOLINK_RE.search(inner) or EMAIL_RE.search(inner):
        return end + 1
    if text.startswith(("<!--", "<?", "<![CDATA["), i) or "'" in inner or '"' in inner:
        return None  # an open comment, or a quoted attribute value that may still contain the `>`
    return i + 1


def _pending_path(text: str) -> int:
    """Start of a trailing file path that `(lines …)` / `, lines …` may still turn into a path citation; -1 if none."""
    for m in _PATH_WORD_RE.finditer(text, max(0, len(text) - 400)):
        tail = text[m.end() :]
        if len(tail) <= 24 and _LINE_SPEC_PREFIX_RE.fullmatch(tail):
            return m.start()
    return -1


def stable_cut(raw: str) -> int:
    """How much of the raw model text `raw` is final: no later text can change how any of it verifies."""
    last_space = max(raw.rfind(" "), raw.rfind("\n"), raw.rfind("\t"))
    if last_space < 0:
        return 0
    cut = last_space + 1
    line_start = raw.rfind("\n") + 1
    if line_start < len(raw) and _line_may_open_block(raw[line_start:]):
        cut = min(cut, line_start)
    complete = raw[:line_start]
    leaf_line, kind = _last_leaf(complete)
    leaf_start = 0 if leaf_line == 0 else len("".join(complete.splitlines(keepends=True)[:leaf_line]))
    if kind in _HELD_LEAVES:
        return min(cut, leaf_start)
    if kind == "paragraph_open" and complete[leaf_start:].lstrip(" \t>").startswith("["):
        return min(cut, leaf_start)  # a paragraph opening with `[x` may still become a reference definition
    # Cutting at a word start may split a construct that spans whitespace (`<a href="x y">`, a code span): the
    # prefix then shows an opener without its closer, which is pending in turn. Repeat until the cut holds still.
    while True:
        region = raw[leaf_start:cut]
        new_cut = cut
        for pending in (_first_pending(region), _pending_path(region)):
            if pending >= 0:
                new_cut = min(new_cut, leaf_start + pending)
        new_cut = max(_word_start(raw, new_cut), min(leaf_start, new_cut))
        if new_cut == cut:
            return cut
        cut = new_cut


def _word_start(raw: str, pos: int) -> int:
    """`pos` moved back to the start of the word it falls in: a cut inside a word could split a URL."""
    while pos > 0 and not raw[pos - 1].isspace():
        pos -= 1
    return pos


class StagedVerifier(Protocol):
    """What the gate needs from verification (`citations.StreamVerifier`)."""

    def first_pass(self, raw: str) -> str: ...

    def sanitize_round(self, text: str) -> str: ...

    def is_safe(self, text: str) -> bool: ...


_MAX_ROUNDS = 6


class VerifiedStream:
    """Turns raw model deltas into verified text deltas (see the module docstring for the rule).

    Verification runs in stages (a first pass over the raw text, then rounds over its own output), and each stage's
    output is cut at its own stable point before the next: an edit can change the structure of what follows it
    (removing `[9]` from `[9]<!--` starts an HTML comment), so stability of the raw text alone is not enough.
    `every` is how many new stable characters trigger a re-verification (it parses the whole prefix each time).
    """

    def __init__(self, verifier: StagedVerifier, every: int = 48) -> None:
        self.verifier = verifier
        self.every = every
        self.raw = ""
        self.sent = ""
        self._checked = 0

    def feed(self, delta: str) -> str:
        """Add raw model text; return the verified text that may be sent now (often empty)."""
        self.raw += normalise_newlines(delta)
        if not any(ch.isspace() for ch in delta):
            return ""  # the stable point only moves at whitespace: nothing new can be released
        cut = stable_cut(self.raw)
        if cut - self._checked < self.every and "\n" not in self.raw[self._checked : cut]:
            return ""
        self._checked = cut
        text = self.verifier.first_pass(self.raw[:cut])
        for _ in range(_MAX_ROUNDS):
            text = text[: stable_cut(text)]
            cleaned = self.verifier.sanitize_round(text)
            if cleaned == text:
                return self._release(trim_answer(text))
            text = cleaned
        return ""

    def finish(self, final_answer: str) -> str:
        """The rest of `final_answer` (the complete verified answer), so that everything sent adds up to it."""
        if not final_answer.startswith(self.sent):
            # Never expected (the property tests guard it); the final answer event still carries the truth.
            log.warning("streamed text is not a prefix of the verified answer; the answer event replaces it")
            return ""
        rest, self.sent = final_answer[len(self.sent) :], final_answer
        return rest

    def _release(self, verified: str) -> str:
        if len(verified) <= len(self.sent) or not verified.startswith(self.sent) or not self.verifier.is_safe(verified):
            return ""
        chunk, self.sent = verified[len(self.sent) :], verified
        return chunk
