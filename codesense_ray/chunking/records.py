"""The records chunking produces: a definition found in a file and a chunk of a file.

Pure data, no behaviour beyond serialisation, so every later stage (Ray Data rows, Qdrant payloads, search
hits) shares one vocabulary. They live here, at the start of the index path, so that `chunking` imports
nothing from `index`; `codesense_ray.index.schema` re-exports them next to the payload schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Definition:
    """A named definition (function, method, class, resource, ...) with 1-based inclusive lines."""

    name: str
    qualified_name: str
    kind: str
    start_line: int
    end_line: int


@dataclass
class Chunk:
    """A contiguous run of a file's lines.

    `text` is exactly ``"\\n".join(lines[start_line-1:end_line])`` of the file (no trailing newline);
    `header` is a short context line (path, enclosing class, signature) prepended only for embedding.
    """

    path: str
    start_line: int
    end_line: int
    language: str
    text: str
    header: str = ""
    symbol: str | None = None
    kind: str = "code"
    definitions: list[Definition] = field(default_factory=list)
    # True when a single line alone exceeds the token bound (the embedder will truncate it; counted, not silent).
    oversized: bool = False

    @property
    def embed_text(self) -> str:
        return f"{self.header}\n{self.text}" if self.header else self.text
