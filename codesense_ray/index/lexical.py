"""Code-aware lexical signal: tokens that understand identifiers, as a Qdrant sparse vector.

Plain word tokenizers see `PaymentAuthorizer.verify_token` as one opaque word. Developers search for
`verify token`, `verify_token`, `PaymentAuthorizer` or `authorizer` — so each identifier yields its whole
form plus its camelCase / snake_case / dotted parts. Documents carry BM25-style saturated term frequencies;
Qdrant's IDF modifier supplies the inverse document frequency at query time (it knows the corpus).
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from typing import Iterable, Iterator

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_BACKTICKED = re.compile(r"`([^`\n]{1,200})`")

# Words so common in code or questions that they carry no signal (IDF would mute them anyway; dropping
# them keeps sparse vectors short).
STOPWORDS = frozenset(
    """a an and are as at be by do does for from how i if in is it its of on or that the this to was what
    when where which who why with you your we can should would there their then than into not no yes""".split()
)

BM25_K1 = 1.2
BM25_B = 0.75
# Typical chunk length in tokens; length normalisation is relative to it (the corpus average is not known
# while a single batch is being embedded).
AVG_DOC_TOKENS = 120.0


def split_identifier(ident: str) -> list[str]:
    """`PaymentAuthorizer.verify_JWTToken` → ['payment', 'authorizer', 'verify', 'jwt', 'token']."""
    parts: list[str] = []
    for piece in re.split(r"[._]+", ident):
        parts.extend(p.lower() for p in _CAMEL.findall(piece))
    return [p for p in parts if len(p) > 1 and not p.isdigit()]


def code_tokens(text: str) -> list[str]:
    """Tokens of a code or question text: whole identifiers (lower-cased) plus their parts."""
    out: list[str] = []
    for match in _IDENT.finditer(text):
        ident = match.group(0)
        whole = ident.lower()
        parts = split_identifier(ident)
        if "." in ident:
            # Dotted names: the whole path and each component as identifiers of their own.
            out.append(whole)
            for comp in ident.split("."):
                if len(comp) > 1:
                    out.append(comp.lower())
        elif len(whole) > 1 and whole not in STOPWORDS:
            out.append(whole)
        if len(parts) > 1 or "." in ident:
            out.extend(p for p in parts if p not in STOPWORDS)
    return out


def path_tokens(path: str) -> list[str]:
    """Tokens of a file path: directory names and the file stem, split like identifiers."""
    out: list[str] = []
    for seg in re.split(r"[/\\]+", path):
        stem = seg.rsplit(".", 1)[0] if "." in seg.strip(".") else seg
        if not stem:
            continue
        lower = stem.lower()  # once: lowering it per part made long stems quadratic
        out.append(lower)
        out.extend(p for p in split_identifier(stem.replace("-", "_")) if p != lower)
    return out


def token_index(token: str) -> int:
    """Stable 32-bit index of a token (Qdrant sparse indices are uint32; collisions are rare and harmless)."""
    return zlib.crc32(token.encode("utf-8"))


def _to_sparse(weights: dict[int, float]) -> tuple[list[int], list[float]]:
    items = sorted(weights.items())
    return [i for i, _ in items], [w for _, w in items]


def document_sparse_vector(text: str, path: str = "") -> tuple[list[int], list[float]]:
    """BM25 term-frequency part for a chunk; the path counts as extra tokens (file names matter)."""
    tokens = code_tokens(text) + path_tokens(path) * 2
    if not tokens:
        return [], []
    tf = Counter(token_index(t) for t in tokens)
    norm = BM25_K1 * (1 - BM25_B + BM25_B * len(tokens) / AVG_DOC_TOKENS)
    return _to_sparse({i: (c * (BM25_K1 + 1)) / (c + norm) for i, c in tf.items()})


def query_sparse_vector(query: str) -> tuple[list[int], list[float]]:
    """Query side: each distinct token once; repeated mentions add a little weight."""
    tokens = code_tokens(query)
    tf = Counter(token_index(t) for t in tokens)
    return _to_sparse({i: 1.0 + math.log(c) for i, c in tf.items()})


_FILE_EXTENSIONS = frozenset("py pyi go ts tsx js jsx mjs java kt rs c h cc cpp hpp cs rb php sh tf yaml yml md toml json sql txt log".split())
_DOMAINS = frozenset("com org net io dev app example local internal svc cluster".split())


def _dotted_is_code(ident: str) -> bool:
    parts = ident.split(".")
    if len(parts[0]) < 2 or len(parts[-1]) < 2:
        return False  # "e.g", "i.e"
    return parts[-1].lower() not in _FILE_EXTENSIONS and parts[-1].lower() not in _DOMAINS


def query_identifiers(query: str) -> list[str]:
    """Names in a question that look like code: backticked, dotted (`processor.capture`), snake_case,
    camelCase / PascalCase with an inner capital (`refreshAccessToken`, `SessionExpiredError`).

    Plain and merely capitalised words ("authorization", "Payment", "POST") are left to the dense and sparse
    signals: matched against definition names they mostly hit unrelated classes, headings and config keys.
    File names (`session.ts`) are the path signal's. Returned lower-cased, de-duplicated, in order.
    """
    seen: dict[str, None] = {}

    def add(name: str) -> None:
        name = name.strip().strip("()").lower()
        if len(name) > 2 and name not in STOPWORDS:
            seen.setdefault(name, None)

    for match in _BACKTICKED.finditer(query):
        for ident in _IDENT.findall(match.group(1)):
            add(ident)
            add(ident.rsplit(".", 1)[-1])
    for ident in _IDENT.findall(query):
        if "." in ident:
            if _dotted_is_code(ident):
                add(ident)
                add(ident.rsplit(".", 1)[-1])
        elif "_" in ident.strip("_") or re.search(r"[a-z][A-Z]", ident):
            add(ident)
    return list(seen)


def definition_names(definitions: Iterable[dict]) -> list[str]:
    """Keys stored in the payload for exact-identifier lookups: names and qualified names, lower-cased."""
    names: dict[str, None] = {}
    for d in definitions:
        for key in (d.get("name"), d.get("qualified_name")):
            if key:
                names.setdefault(key.lower(), None)
    return list(names)


_TRACE_FRAME = re.compile(r'File "([^"\n]+)", line (\d+)(?:, in ([A-Za-z_<>][\w<>]*))?')
_PATH_EXTENSIONS = "py|pyi|go|ts|tsx|js|jsx|mjs|java|kt|rs|c|h|cc|cpp|hpp|cs|rb|php|sh|tf|yaml|yml|md|toml|json|sql"
# A path mention is found in three linear steps instead of one backtracking pattern (which was quadratic on
# inputs like "a+a+a+..."): split the text into runs of path characters, cut each run after its last
# `.<extension>` at a word boundary, then check the cut's shape anchored (segments split at "/" are unambiguous).
_PATH_RUN = re.compile(r"[\w.@+/-]+")
_EXTENSION_END = re.compile(rf"\.(?:{_PATH_EXTENSIONS})(?!\w)")
_PATH_SHAPE = re.compile(rf"(?:[\w.@+-]+/)*[\w@+-][\w.@+-]*\.(?:{_PATH_EXTENSIONS})")


def _path_mentions(text: str) -> Iterator[tuple[int, str]]:
    """(start, path) of each relative file path named in `text`, in order. Linear in `len(text)`."""
    for run in _PATH_RUN.finditer(text):
        last = None
        for last in _EXTENSION_END.finditer(run.group(0)):
            pass
        if last is None:
            continue
        candidate = run.group(0)[: last.end()]
        if _PATH_SHAPE.fullmatch(candidate):
            yield run.start(), candidate


def path_suffixes(path: str, max_parts: int = 4) -> list[str]:
    """`a/b/c/d.py` → ['d.py', 'c/d.py', 'b/c/d.py', 'a/b/c/d.py'] (lower-cased; at most `max_parts` segments)."""
    parts = [p for p in path.replace("\\", "/").lower().split("/") if p and p not in (".", "..")]
    return ["/".join(parts[-n:]) for n in range(1, min(len(parts), max_parts) + 1)]


def query_paths(query: str) -> list[str]:
    """File paths a query names: traceback frames first (innermost last in Python, so reversed), then plain mentions.

    A traceback's `File "/usr/lib/python3.11/site-packages/httpx/_client.py"` names a file by an absolute path
    that the index knows as `_client.py` or `httpx/_client.py`; suffixes are matched against `path_tails`.
    """
    seen: dict[str, None] = {}
    for m in reversed(list(_TRACE_FRAME.finditer(query))):
        seen.setdefault(m.group(1), None)
    for start, path in _path_mentions(query):
        if "://" not in query[max(0, start - 8) : start]:
            seen.setdefault(path, None)
    return list(seen)


def traceback_functions(query: str) -> list[str]:
    """Function names of traceback frames, innermost first (where the error was raised)."""
    names = [m.group(3) for m in _TRACE_FRAME.finditer(query) if m.group(3) and not m.group(3).startswith("<")]
    return list(dict.fromkeys(reversed(names)))


def split_passages(text: str, max_chars: int = 1200) -> list[str]:
    """A long query as passages of whole paragraphs (each ≤ `max_chars` where possible).

    Embedding models see a few hundred tokens; a whole issue text would be cut after its first paragraph.
    Embedding each passage and fusing the rankings keeps the signal in the traceback at the end too.
    """
    if len(text) <= max_chars:
        return [text]
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    passages: list[str] = []
    current = ""
    for para in paragraphs:
        while len(para) > max_chars:  # a huge paragraph (a long traceback): cut at line boundaries
            cut = para.rfind("\n", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            if current:
                passages.append(current)
                current = ""
            passages.append(para[:cut])
            para = para[cut:].lstrip("\n")
        if current and len(current) + len(para) + 2 > max_chars:
            passages.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    if current:
        passages.append(current)
    return passages
