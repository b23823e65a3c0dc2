"""Building the searchable index from source files (the write path).

Owns: `schema.py` (the payload schema: field names, chunk ids, `INDEX_SCHEMA`), `lexical.py` (code-aware
tokens → sparse vectors, definition names), `embedding.py` (embedders and their model resolution),
`indexer.py` (plan → build a new version → verify → promote behind the alias), `stages.py` (the Ray Data
stages: plain callable classes) and `pipeline.py` (the Ray Data graph that chains them — the only module here
that knows Ray).
"""
