"""The ML concepts codesense uses, read from the docs themselves (one source for `docs/` and `codesense explain`).

A concept is any second-level Markdown heading of the form ``## Name — DevOps analogy`` in ``docs/*.md``; its
section runs to the next heading of level one or two. Adding such a section to the docs adds it to the command:
there is no second copy to keep in sync.

Concepts are addressed by a key: the name outside parentheses, lower-cased, words joined by ``-``
(``Reciprocal-rank fusion (RRF)`` → ``reciprocal-rank-fusion``); the text in parentheses is an alias (``rrf``).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from codesense_ray.errors import CodesenseError, UnknownConcept  # noqa: F401

DOCS_ENV = "CODESENSE_DOCS"
_HEADING = re.compile(r"^##\s+(?P<name>.+?)\s+—\s+(?P<analogy>.+?)\s*$")
_SECTION_END = re.compile(r"^#{1,2}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")




@dataclass(frozen=True)
class Concept:
    key: str
    name: str
    analogy: str
    body: str
    source: str  # docs file and line, e.g. "docs/concepts.md:6"
    aliases: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self) | {"aliases": list(self.aliases)}


def slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def _keys(name: str) -> tuple[str, tuple[str, ...]]:
    outside = re.sub(r"^(the|a|an)\s+", "", re.sub(r"\([^)]*\)", " ", name), flags=re.I)
    inside = [part for group in re.findall(r"\(([^)]*)\)", name) for part in group.split(",")]
    key = slug(outside)
    aliases = tuple(a for a in (slug(x) for x in inside) if a and a != key)
    return key, aliases


def parse_concepts(markdown: str, source: str) -> list[Concept]:
    """Every ``## Name — analogy`` section of one Markdown document (headings inside code fences ignored)."""
    concepts: list[Concept] = []
    current: dict | None = None
    body: list[str] = []
    in_fence = False

    def close() -> None:
        if current is not None:
            concepts.append(Concept(body="\n".join(body).strip("\n"), **current))

    for lineno, line in enumerate(markdown.splitlines(), 1):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and _SECTION_END.match(line):
            close()
            current, body = None, []
            m = _HEADING.match(line)
            if m:
                key, aliases = _keys(m["name"])
                current = {"key": key, "name": m["name"], "analogy": m["analogy"], "source": f"{source}:{lineno}", "aliases": aliases}
            continue
        if current is not None:
            body.append(line)
    close()
    return concepts


def docs_dir() -> Path:
    """Where the docs are: ``$CODESENSE_DOCS``, else the ``docs/`` beside the package (a checkout or the image's /app)."""
    candidates = [Path(os.environ[DOCS_ENV])] if os.environ.get(DOCS_ENV) else []
    candidates.append(Path(__file__).resolve().parents[2] / "docs")
    for path in candidates:
        if (path / "concepts.md").is_file():
            return path
    raise CodesenseError(f"concept docs not found (looked for concepts.md in {', '.join(map(str, candidates))}); set {DOCS_ENV} to the docs/ directory")


def load_concepts(directory: Path | None = None) -> list[Concept]:
    """All concepts of ``docs/*.md``, ``concepts.md`` first, then the other files by name."""
    directory = directory or docs_dir()
    files = sorted(directory.glob("*.md"), key=lambda p: (p.name != "concepts.md", p.name))
    concepts = [c for f in files for c in parse_concepts(f.read_text(encoding="utf-8"), f"docs/{f.name}")]
    seen: dict[str, str] = {}
    for c in concepts:
        if c.key in seen:
            raise CodesenseError(f"concept {c.key!r} is defined twice: {seen[c.key]} and {c.source}")
        seen[c.key] = c.source
    return concepts


def find_concept(concepts: list[Concept], query: str) -> Concept:
    """Exact key or alias first, then the one concept whose key contains the query's words in order."""
    q = slug(query)
    if not q:
        raise UnknownConcept(f"empty concept name; known: {', '.join(c.key for c in concepts)}")
    for c in concepts:
        if q == c.key or q in c.aliases:
            return c
    partial = [c for c in concepts if any(f"-{q}-" in f"-{k}-" for k in (c.key, *c.aliases))]
    if len(partial) == 1:
        return partial[0]
    if partial:
        raise UnknownConcept(f"concept {query!r} is ambiguous: {', '.join(c.key for c in partial)}")
    raise UnknownConcept(f"unknown concept {query!r}; known: {', '.join(c.key for c in concepts)}")


def render_list(concepts: list[Concept]) -> str:
    width = max((len(c.key) for c in concepts), default=0)
    lines = ["ML concepts codesense uses (codesense explain CONCEPT for one):", ""]
    lines += [f"  {c.key:<{width}}  {c.name} — {c.analogy}" for c in concepts]
    return "\n".join(lines)


def render_concept(c: Concept) -> str:
    title = f"{c.name} — {c.analogy}"
    return f"{title}\n{'=' * len(title)}\n\n{c.body}\n\n(from {c.source})"
