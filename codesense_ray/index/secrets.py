"""Secrets never enter the index: well-known secret files are not read, and secrets inside indexed files are
redacted before chunking.

Like a log scrubber in front of a log shipper: the index (and everything downstream of it — search results,
prompts to an external model, traces) only ever sees the scrubbed text. Detection uses the `detect-secrets`
library (Yelp; the same plugins and false-positive filters as its pre-commit hook) plus a block rule for
PEM private keys. Redaction replaces a secret inside its own line, so the text keeps its line count and every
line number (and citation) stays exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from codesense_ray.config.secrets import DEFAULT_SECRET_FILES, SecretsConfig  # noqa: F401  (re-exported)

REDACTION_MARKER = "[redacted secret: {kind}]"
REDACTION_PREFIX = "[redacted secret: "


_TOKEN_DELIMITERS = re.compile(r"[\s\"'`,;()<>\[\]{}=]")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
# Lines that cannot hold a secret any detect-secrets plugin reports are skipped (the scan costs ~1 ms a line):
# a secret is a long token with a digit, a keyword assignment, URL credentials, or a key header.
_LONG_RUN = re.compile(r"[A-Za-z0-9+/_=.~-]{16,}")
_KEYWORD = re.compile(r"pass|pwd|secret|token|key|auth|cred|private|api|://", re.IGNORECASE)


@dataclass
class Redaction:
    """Where a secret was redacted (1-based line) and which detector found it; never the value."""

    line: int
    kind: str


@dataclass
class ScrubResult:
    text: str
    redactions: list[Redaction] = field(default_factory=list)


def _candidate(line: str) -> bool:
    if _KEYWORD.search(line):
        return True
    return any(any(c.isdigit() for c in m.group(0)) for m in _LONG_RUN.finditer(line))


# Unquoted `NAME=value` / `name: value` assignments (shell exports, .properties, YAML) that detect-secrets'
# keyword plugin only reports in some file types: the name says secret, the value is long and has a digit.
# Starts only at a word boundary, so a long run without "=" is scanned once (linear).
_ASSIGNMENT = re.compile(r"(?<![\w.-])([\w.-]+)[ \t]*[:=][ \t]*([^\s\"'`,;]{16,})")
_SECRET_NAME = re.compile(r"secret|token|passw(?:or)?d|pwd|api_?key|access_?key|private_?key|auth", re.IGNORECASE)


def _detect(lines: dict[int, str], path: str) -> dict[int, list[tuple[str, str]]]:
    """line index -> (kind, value) of each secret found there: detect-secrets (its filters applied) plus assignments."""
    from detect_secrets.core.scan import _process_line_based_plugins  # pinned detect-secrets==1.5.0
    from detect_secrets.settings import default_settings

    found: dict[int, list[tuple[str, str]]] = {}
    with default_settings():  # once per file: entering it resets detect-secrets' caches
        for i, line in lines.items():
            hits = [(s.type, s.secret_value) for s in _process_line_based_plugins([(1, line)], filename=path) if s.secret_value]
            for m in _ASSIGNMENT.finditer(line):
                value = m.group(2)
                if _SECRET_NAME.search(m.group(1)) and any(c.isdigit() for c in value) and any(c.isalpha() for c in value) and "://" not in value:
                    hits.append(("Secret Assignment", value))
            if hits:
                found[i] = hits
    return found


def _expand(line: str, value: str) -> list[tuple[int, int]]:
    """Spans to blank for `value`: each occurrence grown to its whole token (a detector may report a prefix)."""
    spans = []
    start = line.find(value)
    while start >= 0:
        end = start + len(value)
        left = start
        while left > 0 and not _TOKEN_DELIMITERS.match(line[left - 1]):
            left -= 1
        right = end
        while right < len(line) and not _TOKEN_DELIMITERS.match(line[right]):
            right += 1
        spans.append((left, right))
        start = line.find(value, end)
    return spans


def _redact_line(line: str, found: Iterable[tuple[str, str]]) -> tuple[str, list[str]]:
    spans: list[tuple[int, int, str]] = []
    for kind, value in found:
        spans.extend((a, b, kind) for a, b in _expand(line, value))
    if not spans:
        return line, []
    spans.sort()
    merged: list[list] = []
    for a, b, kind in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b, kind])
    out, pos, kinds = [], 0, []
    for a, b, kind in merged:
        out.append(line[pos:a])
        out.append(REDACTION_MARKER.format(kind=kind))
        kinds.append(kind)
        pos = b
    out.append(line[pos:])
    return "".join(out), kinds


def scrub_secrets(text: str, path: str) -> ScrubResult:
    """`text` with every detected secret replaced by a marker; same number of lines, each in its place."""
    lines = text.split("\n")
    result: list[Redaction] = []
    candidates: dict[int, str] = {}
    in_pem = False
    for i, line in enumerate(lines):
        if in_pem:
            if _PEM_END.search(line):
                in_pem = False
            else:
                lines[i] = REDACTION_MARKER.format(kind="Private Key") if line.strip() else line
                if line.strip():
                    result.append(Redaction(i + 1, "Private Key"))
            continue
        if _PEM_BEGIN.search(line):
            in_pem = not _PEM_END.search(line[_PEM_BEGIN.search(line).end() :])
            continue
        if _candidate(line):
            candidates[i] = line
    for i, found in _detect(candidates, path).items() if candidates else ():
        lines[i], kinds = _redact_line(lines[i], found)
        result.extend(Redaction(i + 1, k) for k in kinds)
    result.sort(key=lambda r: r.line)
    return ScrubResult("\n".join(lines), result)


def count_redactions(text: str) -> int:
    """Markers in a chunk's text (what the index summary counts)."""
    return text.count(REDACTION_PREFIX)
