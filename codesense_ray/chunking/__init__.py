"""Chunking: split a source file into chunks along its syntax, each under the embedding model's token bound.

`chunk_file` parses the file with tree-sitter, finds its definitions (functions, classes, methods,
Terraform blocks, Dockerfile stages, Markdown sections, YAML top-level keys, ...) and makes each one a
chunk. A definition too large for the bound is split at its children's boundaries (a class into its
methods, a function into runs of statements), recursively, and as a last resort into line windows.
Code between definitions (imports, constants, comments) is packed into chunks of its own; consecutive
chunks smaller than `min_tokens` are merged while the result stays within the bound. Nothing is dropped:
every non-blank line of the file lies in exactly one chunk.

Files in a language without a grammar here, and files whose parse fails, are split as text: at the
boundaries `langchain-text-splitters` uses for that language where it knows one (``\\nclass ``,
``\\ndef ``, blank lines, ...), else at blank lines, and always at whole lines.

Owns, in the order a file goes through them:

- `records.py`: `Chunk` and `Definition`, the records every later stage shares.
- `grammars.py`: tree-sitter parsers (one per language and thread) and queries, loaded on first use.
- `definitions.py`: the per-language table (definition node types → kind, how to name them) and
  finding the definitions in a tree; `extract_definitions`.
- `syntax_planner.py`: tree → pieces, definitions whole when they fit, else split at children.
- `text_planner.py`: the separator-based fallback for files without a grammar or a usable parse.
- `packing.py`: token accounting (`Budget`, `approx_token_count`) and merging pieces up to the bound.
- `assembly.py`: `chunk_file`: picks the planner, writes headers, builds the `Chunk` records.

Pure logic: no Ray, no I/O; importing the package loads neither tree-sitter nor langchain.
"""

from codesense_ray.chunking.assembly import chunk_file
from codesense_ray.chunking.definitions import extract_definitions
from codesense_ray.chunking.packing import TokenCounter, approx_token_count
from codesense_ray.chunking.records import Chunk, Definition

__all__ = ["Chunk", "Definition", "TokenCounter", "approx_token_count", "chunk_file", "extract_definitions"]
