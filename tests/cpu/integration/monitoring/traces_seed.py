"""Write answerer-shaped traces into a real MLflow store at chosen past times (the tracer always stamps "now")."""

from __future__ import annotations

import random
import time


def seed_traces(tracking_uri: str, rows: list[dict], experiment: str = "codesense") -> list[str]:
    """`rows`: {question, at (unix s), repo, top_score, sourced, latency_s?}; returns the trace ids, in order."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    eid = exp.experiment_id if exp else client.create_experiment(experiment)
    ids = []
    for row in rows:
        t0 = int(row["at"] * 1e9)
        dur = int(row.get("latency_s", 0.4) * 1e9)
        root = mlflow.start_span_no_context("ask", span_type="CHAIN", inputs={"question": row["question"], "repo": [row["repo"]], "k": None},
                                            experiment_id=eid, start_time_ns=t0)
        span = mlflow.start_span_no_context("retrieve", span_type="RETRIEVER", parent_span=root, inputs={"query": row["question"]}, start_time_ns=t0)
        span.set_outputs([{"path": "app/auth/jwt.py", "lines": [1, 20], "score": row["top_score"]}, {"path": "app/x.py", "lines": [1, 5], "score": row["top_score"] / 2}])
        span.end(end_time_ns=t0 + dur // 4)
        answer = "The token is verified in `verify_bearer_token` [1]."
        if row["sourced"]:
            answer += f"\n\n[1] Source: https://github.com/acme/{row['repo']}/blob/4f1c2ab/app/auth/jwt.py#L1-L20"
        root.set_outputs({"answer": answer})
        root.set_attributes({"model": "openai:qwen2.5-coder", "citation_valid": 1.0 if row["sourced"] else 0.0})
        root.end(end_time_ns=t0 + dur)
        ids.append(root.trace_id)
    mlflow.flush_trace_async_logging()
    return ids


def rows_for(questions: list[str], start: float, end: float, seed: int, repo: str = "payments", score: float = 0.7, sourced: float = 0.9) -> list[dict]:
    rng = random.Random(seed)
    return [{"question": q, "at": rng.uniform(start, end), "repo": repo, "top_score": score + rng.gauss(0, 0.05),
             "sourced": rng.random() < sourced, "latency_s": rng.uniform(0.2, 2.0)} for q in questions]


DAY = 86400.0


def now() -> float:
    return time.time()
