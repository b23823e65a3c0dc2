"""The outer layer: the only package that imports argparse, FastAPI or Ray Serve.

Owns: `compose.py` (the one place configuration becomes objects: store, retriever, answerer, indexer),
`cli/` (the `codesense` command, one module per command group), `serve/` (the HTTP API on Ray Serve).
"""
