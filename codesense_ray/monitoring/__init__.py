"""Production monitoring and the feedback loop.

- `metrics`: every Prometheus metric codesense exports (names, labels, meaning) — the contract with dashboards.
- `instrumentation`: the hooks the Serve ingress installs (stage timings, tokens, errors, `POST /v1/feedback`).
- `feedback`: ratings stored on traces (MLflow assessments, Langfuse scores) and `codesense feedback export`.
- `judge`: the online judge (a sampled share of answers, judged off the request path) and its batch twin.
- `drift`: query drift — MMD permutation test and a domain classifier on query embeddings, plus retrieval shifts.
- `report`: one self-contained HTML page of the last N days.

Nothing here imports ray, torch or fastapi at module level.
"""
