"""Which language a file is written in, from its name (and, for scripts without an extension, its shebang).

The names are the chunker's vocabulary: the ones it has a tree-sitter grammar for (`python`, `typescript`,
`tsx`, `hcl`, `dockerfile`, ...) are chunked by syntax; any other name (`toml`, `json`, `sql`, ...) and
`text` are chunked as plain text. Detection never reads the file: the caller passes the first line.
"""

from __future__ import annotations

import posixpath
import re

UNKNOWN = "text"

_EXTENSIONS: dict[str, str] = {
    # Languages the chunker parses with tree-sitter.
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".java": "java",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".ipp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".sh": "bash",
    ".bash": "bash",
    ".zsh": "bash",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".tf": "hcl",
    ".tfvars": "hcl",
    ".hcl": "hcl",
    ".dockerfile": "dockerfile",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    # Chunked as text (the name is kept for display and filtering).
    ".toml": "toml",
    ".json": "json",
    ".jsonc": "json",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "ini",
    ".sql": "sql",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".scss": "css",
    ".xml": "xml",
    ".proto": "proto",
    ".scala": "scala",
    ".swift": "swift",
    ".lua": "lua",
    ".pl": "perl",
    ".pm": "perl",
    ".r": "r",
    ".ex": "elixir",
    ".exs": "elixir",
    ".hs": "haskell",
    ".ps1": "powershell",
    ".sol": "sol",
    ".rst": "rst",
    ".tex": "latex",
    ".mk": "make",
    ".txt": "text",
}

# Exact file names (compared case-insensitively) that carry no telling extension.
_FILENAMES: dict[str, str] = {
    "dockerfile": "dockerfile",
    "containerfile": "dockerfile",
    "makefile": "make",
    "gnumakefile": "make",
    "rakefile": "ruby",
    "gemfile": "ruby",
    "vagrantfile": "ruby",
    "jenkinsfile": "text",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".zshrc": "bash",
    ".profile": "bash",
}

# Interpreter named by a shebang → language.
_INTERPRETERS: dict[str, str] = {
    "python": "python",
    "sh": "bash",
    "bash": "bash",
    "zsh": "bash",
    "dash": "bash",
    "ksh": "bash",
    "node": "javascript",
    "nodejs": "javascript",
    "deno": "typescript",
    "ts-node": "typescript",
    "ruby": "ruby",
    "php": "php",
    "perl": "perl",
}

_SHEBANG = re.compile(r"^#!\s*(\S+)(?:\s+(\S+))?")
_VERSION_SUFFIX = re.compile(r"[\d.]+$")


def detect_language(path: str, first_line: str | None = None) -> str:
    """The language of `path` (POSIX or Windows separators), or ``"text"`` when nothing identifies it.

    The extension decides first, then special names (``Dockerfile``, ``Dockerfile.dev``, ``Makefile``),
    then a shebang in `first_line` for extension-less scripts.
    """
    name = posixpath.basename(path.replace("\\", "/"))
    lower = name.lower()
    if lower in _FILENAMES:
        return _FILENAMES[lower]
    if lower.startswith(("dockerfile.", "containerfile.")):
        return "dockerfile"
    _, ext = posixpath.splitext(lower)
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if first_line:
        return language_from_shebang(first_line) or UNKNOWN
    return UNKNOWN


def language_from_shebang(first_line: str) -> str | None:
    """The language named by a ``#!`` line (``#!/usr/bin/env python3`` → ``python``), else None."""
    match = _SHEBANG.match(first_line.strip())
    if not match:
        return None
    program = posixpath.basename(match.group(1))
    if program == "env" and match.group(2):
        argument = match.group(2)
        if argument.startswith("-") or "=" in argument:  # `env -S node --flag` and `env VAR=x prog` are rare; skip
            return None
        program = posixpath.basename(argument)
    return _INTERPRETERS.get(_VERSION_SUFFIX.sub("", program) or program)
