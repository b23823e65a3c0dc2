"""Where vectors and payloads live: the `VectorStore` interface and its implementations.

Owns: `qdrant.py` (Qdrant server and embedded local mode: versions, alias, manifest, upserts, queries),
`memory.py` (the in-memory read replica of the live version for long-lived embedded processes). Retrieval
and indexing talk to the store only through its interface.
"""
