"""Citations: number the context blocks, find what the model cites, verify every citation, strip the rest.

Pure logic (no I/O): the caller passes the retrieved blocks and, optionally, a lookup of indexed files
(`file_line_count(repo, path) -> int | None`, None when the path is not indexed for that repo).

The model is asked to cite numbered context blocks as `[n]`. It may also write `path:L10-L20`-style locations or
links of its own; those are verified too (path indexed for that repo, line range inside the file, overlapping
the retrieved context, links pinned to the indexed ref) and anything that fails is removed from the answer, so
no link reaches a user unless codesense produced it. An answer left without a valid citation says so plainly.

    >>> blocks = [ContextBlock(1, "payments", "app/auth/jwt.py", 10, 42, "https://gitlab.example.com/team/payments/-/blob/main/app/auth/jwt.py#L10-42", "...")]
    >>> report = verify_citations("Tokens are checked in `verify_token` [1][7].", blocks)
    >>> report.answer_text
    'Tokens are checked in `verify_token` [1].'
    >>> report.invalid
    [('[7]', 'no context block [7] (the context has blocks 1-1)')]
    >>> render_sources(report)
    ['[1] Source: https://gitlab.example.com/team/payments/-/blob/main/app/auth/jwt.py#L10-42']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from codesense_ray.answering.markdown_links import MarkdownScan, link_free, normalise_newlines, scan_markdown, trim_answer

FileLineCount = Callable[[str, str], "int | None"]

NO_SOURCE_NOTE = "No verifiable source was cited; treat this answer with caution."
REMOVED_MARKER = "[unverified reference removed]"

# [1]  [1, 3]  [1,3]  [1-3]  — and runs like [1][2], which are matched one by one.
_BLOCK_RE = re.compile(r"\[\s*(\d{1,4}(?:\s*(?:,|-|–)\s*\d{1,4})*)\s*\]")
# A file path with an extension, optionally prefixed by a repository id, followed by a line spec:
#   app/auth/jwt.py:L10-L20   app/auth/jwt.py:10-20   jwt.py#L10   payments:app/auth/jwt.py:L10-L42
#   app/auth/jwt.py (lines 10-20)   app/auth/jwt.py, lines 10–20   app/auth/jwt.py line 12
_PATH = r"(?:(?P<repo>[A-Za-z0-9][\w.-]*):)?(?P<path>(?:\.{0,2}/)?(?:[\w.@+-]+/)*[\w.@+-]*[\w-]\.[A-Za-z][\w]{0,9})"
_LINES = (
    r"(?:(?::L?|#L)(?P<s1>\d+)(?:\s*(?:-|–|:)\s*L?(?P<e1>\d+))?"
    r"|\s*\(\s*(?:lines?|L)\s*(?P<s2>\d+)(?:\s*(?:-|–|to)\s*L?(?P<e2>\d+))?\s*\)"
    r"|,?\s+lines?\s+(?P<s3>\d+)(?:\s*(?:-|–|to)\s*(?P<e3>\d+))?)"
)
_PATH_RE = re.compile(r"(?<![\w/.:@+-])" + _PATH + _LINES + r"(?![\w])")
_ANCHOR_RE = re.compile(r"^(?:L(?P<s>\d+)(?:-L?(?P<e>\d+))?|lines-(?P<s2>\d+)(?::(?P<e2>\d+))?)$")


@dataclass(frozen=True)
class ContextBlock:
    """One numbered excerpt shown to the model: `[number] repo:path:Lstart-Lend`, with its permalink."""

    number: int
    repo: str
    path: str
    start_line: int
    end_line: int
    url: str
    text: str = field(default="", repr=False)
    symbol: str | None = None
    ref: str | None = None

    def header(self) -> str:
        sym = f"  ({self.symbol})" if self.symbol else ""
        return f"[{self.number}] {self.repo}:{self.path}:L{self.start_line}-L{self.end_line}{sym}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("text")
        return d


@dataclass(frozen=True)
class Citation:
    """A citation found in the model's answer. `kind`: `block` ([n]), `path` (path:lines) or `url` (a link).

    `start`/`end` locate `text` in the original answer. For a valid citation, `blocks` are the context blocks it
    resolves to; `path`/`start_line`/`end_line` are what the model claimed (path and URL citations).
    """

    kind: str
    text: str
    start: int
    end: int
    numbers: tuple[int, ...] = ()
    repo: str | None = None
    path: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    url: str | None = None
    blocks: tuple[int, ...] = ()
    form: str | None = None  # for links: the Markdown construct (inline, image, autolink, definition, html, bare, code)
    label: tuple[int, int] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, ()) and k != "label"}


@dataclass
class CitationReport:
    """The checked answer: valid citations, invalid ones with the reason, the cleaned text and the cited sources."""

    valid: list[Citation]
    invalid: list[tuple[str, str]]
    answer_text: str
    sources: list[ContextBlock]

    @property
    def validity(self) -> float | None:
        """Share of citations that verified (None when the model cited nothing) — the `citation_valid` metric."""
        total = len(self.valid) + len(self.invalid)
        return len(self.valid) / total if total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer_text,
            "sources": [b.to_dict() for b in self.sources],
            "valid": [c.to_dict() for c in self.valid],
            "invalid": [{"text": t, "reason": r} for t, r in self.invalid],
            "citation_valid": self.validity,
        }


# --- context --------------------------------------------------------------------------------------------------
def format_context(blocks: Iterable[ContextBlock]) -> str:
    """The numbered context for the prompt's `{context}`: a header per block, then its code fenced."""
    parts = []
    for b in blocks:
        fence = "````" if "```" in b.text else "```"
        parts.append(f"{b.header()}\n{fence}\n{b.text.rstrip()}\n{fence}")
    return "\n\n".join(parts)


# --- extraction -----------------------------------------------------------------------------------------------
def _expand_numbers(group: str) -> tuple[int, ...] | None:
    numbers: list[int] = []
    for part in re.split(r"\s*,\s*", group.strip()):
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 1:
            numbers.append(int(bounds[0]))
        elif len(bounds) == 2:
            lo, hi = int(bounds[0]), int(bounds[1])
            if hi < lo or hi - lo > 50:
                return None
            numbers.extend(range(lo, hi + 1))
        else:
            return None
    return tuple(numbers)


def _candidates(scan: MarkdownScan, kinds: set[str] | frozenset[str] = frozenset({"url", "path", "block"})) -> list[Citation]:
    """Every citation-like reference of a scanned text, outermost first (a construct nested in another is left to the
    outer one: a link's label is checked when the link is replaced)."""
    text = scan.text
    found: list[Citation] = []
    for c in scan.constructs:
        if c.kind == "reference":
            continue  # a reference use is plain text once its definition is gone; definitions are candidates
        found.append(Citation("url", text[c.start : c.end], c.start, c.end, url=c.url, form=c.kind, label=c.label))
    for m in _PATH_RE.finditer(text):
        if scan.in_code_block(m.start()) or re.search(r"\n[ \t]*\n", m.group(0)):
            continue  # code, or a "path … (lines …)" split across paragraphs: not one citation
        start = int(m.group("s1") or m.group("s2") or m.group("s3"))
        end_s = m.group("e1") or m.group("e2") or m.group("e3")
        path = re.sub(r"^(?:\./|/)+", "", m.group("path"))
        if "/" not in path and len(path.rsplit(".", 1)[0]) < 2:
            continue  # "e.g line 5", "i.e line 2": abbreviations, not files
        found.append(Citation("path", m.group(0), m.start(), m.end(), repo=m.group("repo"), path=path, start_line=start, end_line=int(end_s) if end_s else start))
    for m in _BLOCK_RE.finditer(text):
        if scan.in_code(m.start()):
            continue
        numbers = _expand_numbers(m.group(1))
        if numbers is None:
            continue
        found.append(Citation("block", m.group(0), m.start(), m.end(), numbers=numbers))
    # Outermost first: a link wins over the URL, path or [n] inside it; a path wins over a bare URL inside it.
    rank = {"url": 0, "path": 1, "block": 2}
    found = [c for c in found if c.kind in kinds]
    found.sort(key=lambda c: (c.start, -c.end, rank[c.kind]))
    outer: list[Citation] = []
    for c in found:
        if outer and c.start < outer[-1].end:
            continue
        outer.append(c)
    return outer


def extract_citations(text: str) -> list[Citation]:
    """Every citation-like reference in `text`, in order: `[n]` groups, links, and `path:lines` locations.

    What is a link is decided by a Markdown parser (see `markdown_links`): inline links, images, autolinks,
    reference definitions, raw HTML that links, bare URLs. Code is respected: `[n]` inside inline code or code
    blocks (`items[1]`) is code, not a citation, and path-like strings inside code blocks are ignored. URLs inside
    code are reported as `url` citations too (the verifier decides whether they are quotes of the context).
    """
    return _candidates(scan_markdown(normalise_newlines(text)))


# --- verification ---------------------------------------------------------------------------------------------
@dataclass
class _Repo:
    """What the blocks tell about one repository: its link prefix (…/blob/<ref>/), ref, and host."""

    id: str
    prefixes: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)


def _repos(blocks: Sequence[ContextBlock]) -> dict[str, _Repo]:
    repos: dict[str, _Repo] = {}
    for b in blocks:
        r = repos.setdefault(b.repo, _Repo(b.repo))
        if b.ref:
            r.refs.add(b.ref)
        base = b.url.split("#", 1)[0]
        qpath = quote(b.path.lstrip("/"), safe="/")
        for candidate in (qpath, b.path.lstrip("/")):
            if base.endswith(candidate):
                r.prefixes.add(base[: len(base) - len(candidate)])
                break
        r.hosts.add(urlsplit(b.url).netloc.lower())
    return repos


class _Verifier:
    def __init__(self, blocks: Sequence[ContextBlock], file_line_count: FileLineCount | None) -> None:
        self.blocks = {b.number: b for b in blocks}
        self.ordered = sorted(blocks, key=lambda b: b.number)
        self.lookup = file_line_count
        self.repos = _repos(blocks)
        self._line_counts: dict[tuple[str, str], int | None] = {}
        self.urls = {_normalise_url(b.url): b.number for b in blocks}

    def line_count(self, repo: str, path: str) -> int | None:
        """Lines in an indexed file; without a lookup, only files present in the context count as indexed."""
        key = (repo, path)
        if key not in self._line_counts:
            if self.lookup is not None:
                try:
                    self._line_counts[key] = self.lookup(repo, path)
                except Exception:  # noqa: BLE001 - a broken lookup must not accept the citation
                    self._line_counts[key] = None
            else:
                ends = [b.end_line for b in self.ordered if b.repo == repo and b.path == path]
                self._line_counts[key] = max(ends) if ends else None
        return self._line_counts[key]

    def block_range(self) -> str:
        nums = sorted(self.blocks)
        return f"blocks {nums[0]}-{nums[-1]}" if nums else "no blocks"

    def check_block(self, n: int) -> str | None:
        b = self.blocks.get(n)
        if b is None:
            return f"no context block [{n}] (the context has {self.block_range()})"
        if self.lookup is not None:
            count = self.line_count(b.repo, b.path)
            if count is None:
                return f"block [{n}]: {b.path} is no longer indexed for {b.repo}"
            if b.end_line > count:
                return f"block [{n}]: lines {b.start_line}-{b.end_line} outside {b.path} ({count} lines)"
        return None

    def resolve_path(self, repo: str | None, path: str) -> list[tuple[str, str]]:
        """Candidate (repo, path) pairs for a cited path: exact matches in the context first, then a unique
        suffix match (`auth/jwt.py` for `app/auth/jwt.py`), else the path in every repository of the context."""
        if repo is not None and repo not in self.repos:
            # `word:path` where word is no repository of the context (e.g. "see:"): not a repo prefix.
            repo = None
        repos = [repo] if repo else list(self.repos)
        exact = [(r, path) for r in repos if any(b.repo == r and b.path == path for b in self.ordered)]
        if exact:
            return exact
        suffix = sorted({(b.repo, b.path) for b in self.ordered if b.repo in repos and b.path.endswith("/" + path)})
        if len(suffix) == 1:
            return suffix
        return [(r, path) for r in repos]

    def check_location(self, repo: str | None, path: str, start: int | None, end: int | None) -> tuple[tuple[int, ...], str | None]:
        """Blocks a claimed location resolves to, or the reason it is invalid."""
        candidates = self.resolve_path(repo, path)
        reasons: list[str] = []
        unindexed: list[str] = []
        for r, p in candidates:
            count = self.line_count(r, p)
            if count is None:
                unindexed.append(r)
                continue
            if start is not None and end is not None:
                if start < 1 or end < start or end > count:
                    reasons.append(f"lines {start}-{end} are outside {p} ({count} lines)")
                    continue
                hits = tuple(b.number for b in self.ordered if b.repo == r and b.path == p and b.start_line <= end and start <= b.end_line)
            else:
                hits = tuple(b.number for b in self.ordered if b.repo == r and b.path == p)
            if hits:
                return hits, None
            where = f"lines {start}-{end} of {p}" if start is not None else p
            reasons.append(f"{where} were not in the retrieved context")
        if reasons:
            # A real file with a bad range is the more useful reason than "not indexed" in another repository.
            return (), reasons[0]
        if not unindexed:
            return (), f"{path} is not in any repository of the context"
        return (), f"{path} is not indexed for {', '.join(unindexed)}"

    def check_url(self, url: str) -> tuple[tuple[int, ...], str | None, Citation | None]:
        norm = _normalise_url(url)
        if norm in self.urls:
            return (self.urls[norm],), None, None
        for repo in self.repos.values():
            for prefix in repo.prefixes:
                if url.startswith(prefix):
                    rest = url[len(prefix) :]
                    path_part, _, anchor = rest.partition("#")
                    path = unquote(path_part.split("?", 1)[0]).strip("/")
                    start = end = None
                    if anchor:
                        m = _ANCHOR_RE.match(anchor)
                        if not m:
                            return (), f"link anchor #{anchor} is not a line range", None
                        start = int(m.group("s") or m.group("s2"))
                        end_s = m.group("e") or m.group("e2")
                        end = int(end_s) if end_s else start
                    hits, reason = self.check_location(repo.id, path, start, end)
                    return hits, reason, Citation("url", url, 0, 0, repo=repo.id, path=path, start_line=start, end_line=end, url=url)
        scheme_m = re.match(r"^([A-Za-z][\w+.-]*):", url)
        if scheme_m is None and "@" in url.split("/", 1)[0]:
            return (), "link to a location codesense did not produce (e-mail address)", None
        schemeless_host = scheme_m is None and not url.startswith(("/", ".", "#")) and re.match(r"^[\w-]+(?:\.[\w-]+)+(?::\d+)?(?:[/?#]|$)", url)
        try:
            host = urlsplit("//" + url if schemeless_host else url).netloc.lower()
        except ValueError:
            host = ""
        if host in {h for r in self.repos.values() for h in r.hosts}:
            return (), "link does not point into an indexed repository at its indexed ref", None
        scheme = scheme_m.group(1).lower() if scheme_m else "relative"
        return (), f"link to a location codesense did not produce ({host or scheme + ' URL'})", None


def _normalise_url(url: str) -> str:
    return url.strip().rstrip("/")


def _in_context_text(url: str, blocks: Iterable[ContextBlock]) -> bool:
    return any(url in b.text for b in blocks)


_MAX_LABEL_DEPTH = 4
_MAX_ROUNDS = 6


class _Checker:
    """One verification run: the verifier, the context, and the valid/invalid citations found so far."""

    def __init__(self, blocks: Sequence[ContextBlock], file_line_count: FileLineCount | None) -> None:
        self.blocks = blocks
        self.verifier = _Verifier(blocks, file_line_count)
        self.valid: list[Citation] = []
        self.invalid: list[tuple[str, str]] = []

    def quoted(self, c: Citation) -> bool:
        """A URL inside code that appears verbatim in the context: the model quotes code, that is not a citation."""
        return c.form == "code" and _in_context_text(c.text, self.blocks)

    def check(self, text: str, depth: int = 0) -> str:
        """`text` with every citation checked: valid ones kept (links become `[n]`), the rest removed."""
        scan = scan_markdown(text)
        edits: list[tuple[int, int, str]] = []
        for c in _candidates(scan):
            replacement = self._replacement(c, text, depth)
            if replacement is not None and replacement != c.text:
                edits.append((c.start, c.end, replacement))
        for start, end in scan.unmapped:
            # A link inside Markdown whose source position could not be recovered: drop the whole block.
            self.invalid.append((text[start:end], "link inside Markdown that could not be located exactly"))
            edits.append((start, end, REMOVED_MARKER))
        return _apply_edits(text, edits)

    def _replacement(self, c: Citation, text: str, depth: int) -> str | None:
        if c.kind == "block":
            good = []
            for n in c.numbers:
                reason = self.verifier.check_block(n)
                if reason:
                    self.invalid.append((f"[{n}]", reason))
                else:
                    good.append(n)
            if good:
                self.valid.append(Citation("block", c.text, c.start, c.end, numbers=tuple(good), blocks=tuple(dict.fromkeys(good))))
            return "[" + ", ".join(str(n) for n in dict.fromkeys(good)) + "]" if good else ""
        if c.kind == "path":
            hits, reason = self.verifier.check_location(c.repo, c.path or "", c.start_line, c.end_line)
            if reason:
                self.invalid.append((c.text, reason))
                return REMOVED_MARKER
            self.valid.append(Citation("path", c.text, c.start, c.end, repo=c.repo, path=c.path, start_line=c.start_line, end_line=c.end_line, blocks=hits))
            return None
        if self.quoted(c):
            return None
        label = ""
        if c.label is not None and c.form in ("inline", "image"):
            raw = text[c.label[0] : c.label[1]]
            label = self.check(raw, depth + 1).strip() if depth < _MAX_LABEL_DEPTH else ""
        url = c.url or ""
        if c.form == "html":
            self.invalid.append((c.text, "raw HTML that links or loads a resource"))
            return REMOVED_MARKER
        if c.form == "image":
            self.invalid.append((url, "image: a renderer would fetch it"))
            return f"{label} {REMOVED_MARKER}".strip()
        hits, reason, located = self.verifier.check_url(url)
        if reason:
            self.invalid.append((url, reason))
            return f"{label} {REMOVED_MARKER}".strip()
        info = located or Citation("url", url, 0, 0, url=url)
        self.valid.append(Citation("url", c.text, c.start, c.end, repo=info.repo, path=info.path, start_line=info.start_line, end_line=info.end_line, url=url, blocks=hits, form=c.form))
        if c.form == "definition":
            return ""  # the definition only powers reference uses; those stay plain text
        marker = "[" + ", ".join(str(n) for n in hits) + "]"
        return f"{label} {marker}".strip()

    def sanitize_round(self, text: str) -> str:
        """One round of removing links that only appeared once others were removed (`htt[9]ps://…`, a label)."""
        scan = scan_markdown(text)
        edits = []
        for c in _candidates(scan, kinds={"url"}):
            if self.quoted(c):
                continue
            self.invalid.append((c.text, "link formed after other references were removed"))
            edits.append((c.start, c.end, REMOVED_MARKER))
        edits += [(s, e, REMOVED_MARKER) for s, e in scan.unmapped]
        return _apply_edits(text, edits) if edits else text

    def leftovers(self, text: str) -> str:
        """`sanitize_round` until nothing is left to remove."""
        for _ in range(_MAX_ROUNDS):
            cleaned = self.sanitize_round(text)
            if cleaned == text:
                return text
            text = cleaned
        # Pathological input: drop every line that still renders a link.
        while not link_free(text, self.allowed_code_urls(text)):
            scan = scan_markdown(text)
            bad = [c for c in scan.constructs if not (c.kind == "code" and self.quoted(Citation("url", text[c.start : c.end], c.start, c.end, form="code")))]
            spans = [(c.start, c.end) for c in bad] + scan.unmapped
            lines = text.split("\n")
            offsets = [0]
            for line in lines:
                offsets.append(offsets[-1] + len(line) + 1)
            drop = {i for s, e in spans for i in range(len(lines)) if offsets[i] < max(e, s + 1) and s < offsets[i + 1]}
            text = "\n".join(REMOVED_MARKER if i in drop else line for i, line in enumerate(lines))
        return text

    def allowed_code_urls(self, text: str) -> set[str]:
        scan = scan_markdown(text)
        return {text[c.start : c.end] for c in scan.constructs if c.kind == "code" and _in_context_text(text[c.start : c.end], self.blocks)}


def verify_citations(answer: str, blocks: Sequence[ContextBlock], file_line_count: FileLineCount | None = None, *, note: bool = True) -> CitationReport:
    """Check every citation in `answer` against the context `blocks` and the index (`file_line_count`).

    Valid `[n]` markers and verified locations stay; an invalid marker is dropped (a group keeps its valid
    members); an invalid location or any link codesense did not produce is replaced by
    "[unverified reference removed]" (a link or image keeps its label, itself checked). A link to a verified location
    is replaced by the `[n]` of the block it points into, so the answer text renders no link at all: the only links
    a user sees are the `Source:` permalinks codesense renders. What is a link is decided by a Markdown parser
    (`markdown_links`): inline and reference links, images, autolinks of any scheme, raw HTML, bare URLs. Reference
    definitions are removed (their uses stay as plain text). URLs inside code that quote the context verbatim are left
    alone. Without any valid citation, `NO_SOURCE_NOTE` is appended (unless `note=False`).
    """
    checker = _Checker(blocks, file_line_count)
    text = checker.leftovers(checker.check(normalise_newlines(answer)))
    cited = sorted({n for c in checker.valid for n in c.blocks})
    sources = [checker.verifier.blocks[n] for n in cited]
    if not checker.valid and note:
        text = trim_answer(text.rstrip() + "\n\n" + NO_SOURCE_NOTE)
    return CitationReport(valid=checker.valid, invalid=checker.invalid, answer_text=text, sources=sources)


def _apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    out = []
    pos = 0
    for start, end, replacement in sorted(edits):
        if start < pos:
            continue
        out.append(text[pos:start])
        if replacement == "" and out and out[-1].endswith(" ") and text[end : end + 1] in {"", " ", ".", ",", ";", ":", "\n", ")"}:
            out[-1] = out[-1].rstrip(" ")  # "claim [9]." → "claim."
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def render_sources(report: CitationReport, *, numbered: bool = True) -> list[str]:
    """One line per cited block: `[n] Source: <permalink>` (`Source: <permalink>` with `numbered=False`)."""
    return [f"[{b.number}] Source: {b.url}" if numbered else f"Source: {b.url}" for b in report.sources]


def render_answer(report: CitationReport) -> str:
    """The checked answer followed by its verified sources, as shown to a user."""
    lines = render_sources(report)
    return report.answer_text.rstrip() + ("\n\n" + "\n".join(lines) if lines else "")


class StreamVerifier:
    """Verification in the two stages a stream needs (see `verified_stream`): the first pass over raw model text,
    then rounds removing links that only formed once other text was removed."""

    def __init__(self, blocks: Sequence[ContextBlock], file_line_count: FileLineCount | None = None) -> None:
        self.blocks = blocks
        self.lookup = file_line_count

    def first_pass(self, raw: str) -> str:
        return _Checker(self.blocks, self.lookup).check(normalise_newlines(raw))

    def sanitize_round(self, text: str) -> str:
        return _Checker(self.blocks, self.lookup).sanitize_round(text)

    def is_safe(self, text: str) -> bool:
        return renders_no_foreign_link(text, self.blocks)


def renders_no_foreign_link(text: str, blocks: Sequence[ContextBlock]) -> bool:
    """True when `text` renders no link, except URLs inside code that quote the context verbatim."""
    scan = scan_markdown(normalise_newlines(text))
    allowed = {scan.text[c.start : c.end] for c in scan.constructs if c.kind == "code" and _in_context_text(scan.text[c.start : c.end], blocks)}
    return link_free(text, allowed)


_DEFANG = str.maketrans({".": "[.]", ":": "[:]", "@": "[@]", "<": "‹", ">": "›", "(": "❨", ")": "❩"})


def defang(text: str) -> str:
    """A removed reference as inert text (`https[:]//evil[.]example/x`): shown in diagnostics, never a link again.

    Text that renders no link (a `[9]`, an invented `path:L1-L5`) is returned unchanged.
    """
    if link_free(text):
        return text
    inert = text.translate(_DEFANG)
    return inert if link_free(inert) else f"(removed link, {len(text)} characters)"


def defang_reason(reason: str) -> str:
    """A reason naming a foreign host (`… did not produce (evil.example)`) with the host made inert too."""
    return re.sub(r"\(([^()\s]+\.[^()\s]+)\)$", lambda m: "(" + m.group(1).replace(".", "[.]") + ")", reason)
