"""Tree-sitter, loaded on first use: a parser per language and thread, cached queries, and node helpers.

Importing this module loads neither `tree_sitter` nor `tree_sitter_language_pack`; the first parse does.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

# Parsers are cached per thread (a tree-sitter parser is not safe to share); compiled queries are immutable.
_thread_state = threading.local()
_queries: dict[tuple[str, tuple[str, ...]], Any] = {}


def parse(language: str, text: str) -> Any:
    """The tree-sitter tree of `text` in `language` (a name `tree_sitter_language_pack` knows)."""
    parsers: dict[str, Any] = _thread_state.__dict__.setdefault("parsers", {})
    parser = parsers.get(language)
    if parser is None:
        from tree_sitter_language_pack import get_parser

        parser = parsers[language] = get_parser(language)
    # surrogatepass: text decoded with surrogateescape must not crash; tree-sitter tolerates bad UTF-8.
    return parser.parse(text.encode("utf-8", "surrogatepass"))


def nodes_of_types(root: Any, language: str, node_types: Iterable[str]) -> list[Any]:
    """Nodes under `root` whose type is one of `node_types`, by start (outermost first), found by one
    tree-sitter query (runs in C, not a Python walk). Types the grammar does not know are skipped (some are
    absent in older grammar versions)."""
    from tree_sitter import Query, QueryCursor

    key = (language, tuple(node_types))
    query = _queries.get(key)
    if query is None:
        from tree_sitter_language_pack import get_language

        lang = get_language(language)
        types = [t for t in key[1] if lang.id_for_node_kind(t, True)]
        query = _queries[key] = Query(lang, "[" + " ".join(f"({t})" for t in types) + "] @def")
    captures = QueryCursor(query).captures(root)
    return sorted(captures.get("def", []), key=lambda n: (n.start_byte, -n.end_byte))


def rows(node: Any) -> tuple[int, int]:
    """First and last row a node has text on (a node ending at column 0 ends on the row before)."""
    lo = node.start_point.row
    end = node.end_point
    hi = end.row - 1 if end.column == 0 and end.row > lo else end.row
    return lo, hi


def extent(node: Any) -> tuple[int, int]:
    """Size of a node for picking the one to open: rows first, then bytes."""
    return node.end_point.row - node.start_point.row, node.end_byte - node.start_byte


def node_text(node: Any | None) -> str:
    """The node's source text ("" for no node)."""
    if node is None:
        return ""
    return node.text.decode("utf-8", "replace")
