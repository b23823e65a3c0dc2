"""Text made safe for a terminal: file names and model output can carry escape sequences.

A file named `x\\x1b]8;;http://evil\\x07.py` would otherwise print a hidden hyperlink, move the cursor or
retitle the window; bidirectional overrides ("Trojan Source") reorder what the reader sees. Every such
character is shown as a visible escape (`\\x1b`, `\\u202e`) instead. `--json` output needs none of this:
JSON escapes control characters itself.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, Unicode bidi embedding/override/isolate characters, lone surrogates.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_KEEP_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, multiline: bool = False) -> str:
    """`text` with control and bidi-override characters escaped; `multiline` keeps newlines and tabs."""
    return (_UNSAFE_KEEP_LAYOUT if multiline else _UNSAFE).sub(_escape, str(text))
