"""From chunk rankings to file rankings for bug reports over whole repositories (pure logic).

Three levers, measured on the bug-report dev set (`benchmarks/quality.py --sets bugs`):

* **traceback frames by depth and role** — a pasted traceback names several files; the innermost frame
  in the project's *source* is where a fix most likely goes, the test that failed is only the messenger.
  Like reading a stack of alerts from the one closest to the failing component outwards, skipping the
  synthetic probe that fired them. The chunk holding the frame's line is the most specific match.
* **path priors** — a whole repository holds tests and docs that quote the same identifiers as the code
  (a test body *is* the reproducer); unless the question asks about tests or docs, their chunks count less.
* **file aggregation** — a file is scored by its best chunk plus a decaying share of its next ones, so a
  file that several chunks point at beats one lucky chunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

from codesense_ray.index.lexical import _TRACE_FRAME, path_suffixes, query_paths

TEST_DIRS = frozenset({"tests", "test", "testing", "spec", "specs", "__tests__", "testsuite"})
DOC_DIRS = frozenset({"docs", "doc", "documentation"})
DOC_SUFFIXES = (".md", ".rst", ".adoc")
# Multipliers on a file's fused score by its role, unless the question asks for that role.
ROLE_PRIOR = {"source": 1.0, "test": 0.5, "docs": 0.6}
# Weight of a file's 2nd, 3rd, ... chunk relative to the one before (0: the best chunk alone decides).
# 0.3 costs one question @1 on top of the role prior on the bug set (benchmarks/quality.py): off by default.
AGGREGATION_DECAY = 0.0
AGGREGATION_CHUNKS = 3
# Asking *about* tests ("which test covers refunds?"), not reporting a failing one ("test failure on main").
_WANTS_TESTS = re.compile(r"\b(which|what|where|any)\s+(\w+\s+){0,3}tests?\b|\b(tested|untested|unit tests? for|fixtures?)\b", re.I)
_WANTS_DOCS = re.compile(r"\b(docs?|documentation|readme|changelog|tutorial|guide)\b", re.I)


def path_role(path: str) -> str:
    """`source`, `test` or `docs`, from the path alone (`tests/test_core.py` → test, `docs/api.rst` → docs)."""
    parts = path.replace("\\", "/").lower().split("/")
    name = parts[-1]
    if any(p in TEST_DIRS for p in parts[:-1]) or name.startswith("test_") or name == "conftest.py":
        return "test"
    if re.search(r"[._-](test|spec)\.[a-z]+$", name):
        return "test"
    if any(p in DOC_DIRS for p in parts[:-1]) or name.endswith(DOC_SUFFIXES) or name.startswith(("changes", "changelog", "history")):
        return "docs"
    return "source"


def wanted_roles(query: str) -> set[str]:
    """Roles a question asks about explicitly ("which test covers ...", "where is this documented")."""
    asked = set()
    # A traceback's own `tests/...` paths or `pytest` command line do not mean the user asks about tests.
    prose = _TRACE_FRAME.sub(" ", re.sub(r"`[^`]*`|```.*?```", " ", query, flags=re.S))
    if _WANTS_TESTS.search(prose):
        asked.add("test")
    if _WANTS_DOCS.search(prose):
        asked.add("docs")
    return asked


@dataclass(frozen=True)
class Frame:
    path: str
    line: int
    function: str | None


def traceback_frames(query: str) -> list[Frame]:
    """Frames of every Python traceback in the query, innermost first, source frames before test frames."""
    frames = [Frame(m.group(1), int(m.group(2)), m.group(3)) for m in _TRACE_FRAME.finditer(query)]
    frames.reverse()
    source = [f for f in frames if path_role(f.path) != "test"]
    tests = [f for f in frames if path_role(f.path) == "test"]
    return source + tests


def frame_functions(query: str) -> list[str]:
    """Function names of traceback frames in `traceback_frames` order (source innermost first), de-duplicated."""
    names = [f.function for f in traceback_frames(query) if f.function and not f.function.startswith("<")]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Mention:
    path: str
    line: int | None


def path_mentions(query: str) -> list[Mention]:
    """Files a query names, most telling first: traceback frames (see `traceback_frames`), then plain mentions."""
    out: list[Mention] = [Mention(f.path, f.line) for f in traceback_frames(query)]
    framed = {m.path for m in out}
    out.extend(Mention(p, None) for p in query_paths(query) if p not in framed)
    return out


def order_path_matches(mentions: Sequence[Mention], matches: Iterable[tuple[str, Mapping]]) -> list[str]:
    """Chunk ids of the files `mentions` name, ordered by the first mention each file answers best.

    A mention matches the chunks whose `path_tails` share its longest suffix (two `core.py` in a repository:
    the one with the longer common path wins). Inside a file, the chunk holding the frame's line comes first.
    """
    chunks = [(pid, payload, set(payload.get("path_tails") or [])) for pid, payload in matches]
    placed: dict[str, tuple[int, int, int]] = {}
    for j, mention in enumerate(mentions):
        suffixes = path_suffixes(mention.path)
        depth = {pid: max((d for d, s in enumerate(suffixes, start=1) if s in tails), default=0) for pid, _, tails in chunks}
        best = max(depth.values(), default=0)
        if best == 0:
            continue
        for pid, payload, _ in chunks:
            if depth[pid] != best or pid in placed:
                continue
            start, end = payload.get("start_line", 0), payload.get("end_line", payload.get("start_line", 0))
            holds_line = mention.line is not None and start <= mention.line <= end
            placed[pid] = (j, 0 if holds_line else 1, start)
    return sorted(placed, key=lambda pid: placed[pid])


def aggregate_files(
    fused: Sequence[tuple[Hashable, float]],
    files: Mapping[Hashable, Hashable],
    roles: Mapping[Hashable, str] | None = None,
    *,
    query: str = "",
    decay: float = AGGREGATION_DECAY,
    depth: int = AGGREGATION_CHUNKS,
    prior: Mapping[str, float] | None = ROLE_PRIOR,
) -> list[tuple[Hashable, float]]:
    """Files ranked from fused chunk scores: best chunk + decay × next + decay² × ..., times the role prior.

    `files` maps chunk id → file key; `roles` file key → role (default: `path_role` of the key's last
    element when it is a (repo, path) tuple or a path).
    """
    per_file: dict[Hashable, list[float]] = {}
    order: dict[Hashable, int] = {}
    for pid, score in fused:
        key = files.get(pid)
        if key is None:
            continue
        order.setdefault(key, len(order))
        per_file.setdefault(key, []).append(score)
    asked = wanted_roles(query) if prior else set()
    out = []
    for key, scores in per_file.items():
        top = sorted(scores, reverse=True)[: max(1, depth)]
        score = sum(s * decay**i for i, s in enumerate(top))
        if prior:
            role = (roles or {}).get(key) or path_role(key[-1] if isinstance(key, tuple) else str(key))
            if role not in asked:
                score *= prior.get(role, 1.0)
        out.append((key, score))
    out.sort(key=lambda kv: (-kv[1], order[kv[0]]))
    return out
