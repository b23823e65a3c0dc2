"""Checks on free text from users (search queries, questions) before any work is done on it.

Bounded length keeps per-request CPU bounded; valid Unicode keeps every later step (embedding, JSON,
logging, terminals) from failing halfway with a traceback or a 500.
"""

from __future__ import annotations

from typing import Any

from codesense_ray.errors import CodesenseError, InvalidQuery  # noqa: F401




def invalid_unicode_at(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (not encodable as UTF-8), else `None`.

    Lone surrogates arrive as JSON escapes (`"\\ud800"`) or as undecodable command-line bytes
    (Python maps those to U+DC80..U+DCFF).
    """
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as err:
        return err.start


def unicode_problem(text: str, what: str) -> str | None:
    """A one-line reason when `text` is not valid Unicode, naming the offending code point and position."""
    pos = invalid_unicode_at(text)
    if pos is None:
        return None
    return f"{what} is not valid Unicode: lone surrogate U+{ord(text[pos]):04X} at character {pos + 1} (invalid UTF-8 or a bad \\u escape)"


def utf8_problem(data: bytes, what: str = "request body") -> str | None:
    """A one-line reason when `data` is not valid UTF-8 (position and byte), else `None`."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as err:
        return f"{what} is not valid UTF-8: byte 0x{data[err.start]:02x} at position {err.start}"


def check_query(query: Any, max_chars: int, key: str = "search.max_query_chars") -> str:
    """The query if usable; raises `InvalidQuery` for empty, too long (over `max_chars`) or invalid Unicode."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidQuery("empty query")
    if len(query) > max_chars:
        raise InvalidQuery(f"query too long: {len(query)} characters (limit {max_chars}, `{key}`)")
    problem = unicode_problem(query, "query")
    if problem:
        raise InvalidQuery(problem)
    return query
