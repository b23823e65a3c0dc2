"""Answering "where is this in the code?": query parsing, the search signals, and their fusion.

Owns: `retriever.py` (dense, sparse, symbol and path signals, fused and aggregated to files),
`fusion.py` (reciprocal-rank fusion). Pure logic over the store interface and an embedder.
"""
