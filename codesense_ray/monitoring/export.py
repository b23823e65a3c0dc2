"""`codesense feedback export`: rated answers as JSONL for the golden-set builder.

Each line is a valid evaluation-dataset line (`id`, `question`, `repo`, `gold`, optional `answer`) plus the
feedback that produced it, so a reviewer can turn thumbs-down with `correct_paths` straight into regression
questions — the postmortem becomes a test in the runbook:

    {"id": "fb-tr-1a2b", "question": "...", "repo": "payments", "gold": [{"path": "app/auth/jwt.py", "start_line": 10, "end_line": 42}],
     "rating": -1, "comment": "...", "trace_id": "tr-1a2b", "model_answer": "...", "model": "openai:qwen", "rated_at": 1767225600.0}

A positive rating without `correct_paths` keeps the answer's own cited files as gold (`gold_from: "answer"`).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from codesense_ray.monitoring.feedback import parse_gold_path
from codesense_ray.monitoring.traces import QueryRecord

_CITED = re.compile(r"^\[\d+\] Source: \S+/blob/[^/\s]+/(?P<path>[^#\s]+)(?:#L(?P<start>\d+)(?:-L(?P<end>\d+))?)?", re.M)


def cited_gold(answer: str | None) -> list[dict[str, Any]]:
    """Files and lines the answer's verified `Source:` lines point to."""
    out = []
    for m in _CITED.finditer(answer or ""):
        gold: dict[str, Any] = {"path": m.group("path")}
        if m.group("start"):
            gold |= {"start_line": int(m.group("start")), "end_line": int(m.group("end") or m.group("start"))}
        if gold not in out:
            out.append(gold)
    return out


def feedback_rows(records: Iterable[QueryRecord], rating: str = "all") -> list[dict[str, Any]]:
    """One row per rating (`rating`: `all`, `up` or `down`), oldest first."""
    want = {"all": (1, -1), "up": (1,), "down": (-1,)}[rating]
    rows = []
    for r in records:
        for i, fb in enumerate(r.feedback):
            value = fb.get("rating")
            if value not in want:
                continue
            gold = [parse_gold_path(p) for p in fb.get("correct_paths") or []]
            gold_from = "feedback" if gold else None
            if not gold and value == 1:
                gold, gold_from = cited_gold(r.answer), "answer"
            row: dict[str, Any] = {
                "id": f"fb-{r.trace_id}" + (f"-{i}" if i else ""),
                "question": r.question,
                "gold": gold,
                "gold_from": gold_from,
                "rating": value,
                "comment": fb.get("comment"),
                "trace_id": r.trace_id,
                "model_answer": r.answer,
                "model": r.model,
                "asked_at": r.timestamp,
                "rated_at": fb.get("at"),
            }
            if len(r.repos) == 1:
                row["repo"] = r.repos[0]
            elif r.repos:
                row["repos"] = r.repos
            rows.append(row)
    return rows
