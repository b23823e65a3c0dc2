"""Turning retrieved code into an answer with verified links.

Owns: `answerer.py` (context assembly, the extractive answer, the RAG answerer and its stream),
`citations.py` (numbered context, building and verifying citation links), `generators/` (extractive, local
HF, OpenAI-compatible, Gemini backends), `prompts/` (the prompt registry: file, MLflow, Langfuse),
`tracing.py` (MLflow / Langfuse traces). Heavy client libraries are imported inside the backend that needs them.
"""
