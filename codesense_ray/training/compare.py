"""`codesense models compare`: champion vs challenger (and the base model without adapter, and the teacher) on
the golden set and the distillation validation split, through the full answer path.

Like a canary analysis: the same traffic (questions) goes to every candidate and the same SLIs are compared —
citation validity, citation-gold match, latency, tokens/s, and the judge's faithfulness / answer relevancy when
a judge is configured and `--judge` is given. One MLflow run holds the table and a plot; the challenger's and
champion's numbers are also stored on their registry versions (`eval.*` tags), where `models promote` reads them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesense_ray.errors import CodesenseError, InvalidConfig

log = logging.getLogger(__name__)

CANDIDATES = ("champion", "challenger", "base", "teacher", "extractive")
METRICS = ("citation_valid", "citation_gold", "latency_p50_s", "latency_mean_s", "tokens_per_s", "faithfulness", "answer_relevancy", "answer_errors")


@dataclass
class Question:
    id: str
    question: str
    repo: str | None
    gold_files: set[str]
    dataset: str


@dataclass
class _Metered:
    """Wraps a generator and remembers the last `Generation` (tokens and latency for tokens/s)."""

    inner: Any
    last: Any = None
    name: str = field(init=False)
    model: str = field(init=False)

    def __post_init__(self) -> None:
        self.name, self.model = self.inner.name, self.inner.model

    def generate(self, messages: list[dict], **kwargs: Any) -> Any:
        self.last = self.inner.generate(messages, **kwargs)
        return self.last

    def stream(self, messages: list[dict], **kwargs: Any):
        return self.inner.stream(messages, **kwargs)


def load_questions(paths: list[Path], limit: int | None) -> list[Question]:
    """Evaluation-contract files (golden sets) and distillation splits (rows with `question` and `gold`)."""
    from codesense_ray.evaluation.dataset import load_dataset

    out: list[Question] = []
    for p in paths:
        if not p.is_file():
            raise InvalidConfig(f"comparison dataset not found: {p}")
        first = next((line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()), "")
        if not first:
            raise InvalidConfig(f"comparison dataset is empty: {p}")
        rows: list[Question] = []
        if '"messages"' in first:  # a distillation split
            for line in p.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    r = json.loads(line)
                    rows.append(Question(r["id"], r.get("question") or "", r.get("repo"), {g["path"] for g in r.get("gold") or []}, p.stem))
            rows = [q for q in rows if q.question]
        else:
            ds = load_dataset(p)
            rows = [Question(q.id, q.question, q.repo, set(q.gold_files), p.stem) for q in ds.questions]
        out += rows[:limit] if limit else rows
    if not out:
        raise InvalidConfig("no comparison questions: build a golden set (`codesense dataset golden`) or distil one, or pass --dataset")
    return out


def default_datasets(cfg) -> list[Path]:
    from codesense_ray.config.training import training_config

    t = training_config(cfg)
    found = [cfg.resolve_path(t.golden.output_dir) / f"{t.golden.name}.jsonl",
             cfg.resolve_path(t.distill.output_dir) / t.distill.name / "validation.jsonl"]
    return [p for p in found if p.is_file()]


def build_candidate(cfg, name: str, max_new_tokens: int | None) -> Any:
    """The generator for one candidate (None for extractive). Raises `CodesenseError` when it cannot be built."""
    from codesense_ray.answering.generators.base import build_generator
    from codesense_ray.config.answering import GeneratorConfig
    from codesense_ray.config.training import training_config

    t = training_config(cfg)
    if name == "extractive":
        return None
    if name == "teacher":
        from codesense_ray.training.distill import build_teacher

        return build_teacher(t.teacher)
    local = GeneratorConfig(backend="local", local_model=t.train.base_model, gguf_file=t.train.gguf_file, device=cfg.generator.device,
                            temperature=0.0, max_new_tokens=max_new_tokens or cfg.generator.max_new_tokens)
    if name == "base":
        return build_generator(local, cfg.home)
    if name in ("champion", "challenger"):
        return build_generator(local.model_copy(update={"adapter_path": f"models:/{t.registry.model_name}@{name}"}), cfg.home)
    raise InvalidConfig(f"--candidates: unknown candidate {name!r} (known: {', '.join(CANDIDATES)})")


def evaluate_candidate(answerer: Any, questions: list[Question], judge: Any = None) -> list[dict[str, Any]]:
    """Ask every question through the full answer path; one record per question (errors recorded, not raised)."""
    from codesense_ray.evaluation.metrics import citation_gold
    from codesense_ray.evaluation.runner import context_text

    meter = answerer.generator
    records = []
    for q in questions:
        started = time.perf_counter()
        rec: dict[str, Any] = {"id": q.id, "dataset": q.dataset}
        try:
            ans = answerer.ask(q.question, repo_ids=[q.repo] if q.repo else ())
        except CodesenseError as err:
            rec["error"] = str(err)
            records.append(rec)
            continue
        rec["latency_s"] = time.perf_counter() - started
        rec["citation_valid"] = ans.citations.get("citation_valid")
        cited = {s["path"] for s in ans.sources}
        rec["citation_gold"] = citation_gold(cited, q.gold_files) if q.gold_files else None
        gen = getattr(meter, "last", None)
        if gen is not None and gen.completion_tokens and gen.latency_s:
            rec["completion_tokens"], rec["generate_s"] = gen.completion_tokens, gen.latency_s
        if judge is not None:  # judged against the context the answer was generated from
            scores = judge.evaluate(question=q.question, answer=ans.answer, expected=None, contexts=[context_text(b) for b in ans.context])
            for name in ("faithfulness", "answer_relevancy"):
                rec[name] = (scores.get(name) or {}).get("score")
        records.append(rec)
    return records


def summarize(records: list[dict[str, Any]], judged: bool) -> dict[str, float | None]:
    """One table row from per-question records: means, latency p50, tokens/s over generation time only."""
    from codesense_ray.evaluation.metrics import mean, percentile

    ok = [r for r in records if "error" not in r]
    tokens = sum(r.get("completion_tokens", 0) for r in ok)
    gen_s = sum(r.get("generate_s", 0.0) for r in ok)
    return {
        "citation_valid": mean(r.get("citation_valid") for r in ok),
        "citation_gold": mean(r.get("citation_gold") for r in ok),
        "latency_p50_s": percentile([r["latency_s"] for r in ok], 50),
        "latency_mean_s": mean(r["latency_s"] for r in ok),
        "tokens_per_s": tokens / gen_s if gen_s else None,
        "faithfulness": mean(r.get("faithfulness") for r in ok) if judged else None,
        "answer_relevancy": mean(r.get("answer_relevancy") for r in ok) if judged else None,
        "answer_errors": float(len(records) - len(ok)),
    }


def dataset_rows(identity: dict[str, Any], records: list[dict[str, Any]], judged: bool) -> list[dict[str, Any]]:
    """The candidate's row per dataset (the golden set is real traffic, the validation split the teacher's own
    distribution: a student can look good on one and not the other)."""
    names = list(dict.fromkeys(r["dataset"] for r in records))
    return [{**identity, "dataset": name, "questions": len(part), **summarize(part, judged)}
            for name in names for part in [[r for r in records if r["dataset"] == name]]]


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = ["candidate", "dataset", "questions", *METRICS]
    lines = ["  ".join(f"{c:>16}" for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(f"{v:>16.4f}" if isinstance(v, float) else f"{str('-' if v is None else v):>16}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]]):
    """Quality bars (citation validity and gold match, judge scores when present) and generation speed per candidate."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    quality, speed = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = [r["candidate"] for r in rows]
    shown = [m for m in ("citation_valid", "citation_gold", "faithfulness", "answer_relevancy") if any(r.get(m) is not None for r in rows)]
    width = 0.8 / max(1, len(shown))
    for i, metric in enumerate(shown):
        quality.bar([x + i * width for x in range(len(rows))], [r.get(metric) or 0.0 for r in rows], width, label=metric)
    quality.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(rows))], names)
    quality.set_ylim(0, 1.05)
    quality.set_title("quality on the golden/validation questions")
    quality.legend(fontsize="small")
    speed.bar(names, [r.get("tokens_per_s") or 0.0 for r in rows])
    speed.set_title("generation tokens/s")
    return fig


def run_comparison(cfg, *, candidates: list[str], datasets: list[str] | None = None, limit: int | None = None,
                   max_new_tokens: int | None = None, judge: bool = False) -> dict[str, Any]:
    """Evaluate each candidate; log one MLflow run (params, `<candidate>.<metric>` metrics, table, plot); store the
    registry candidates' numbers on their versions. Candidates that cannot be built are reported as skipped."""
    from codesense_ray.evaluation.runner import build_judge
    from codesense_ray.answering.answerer import RagAnswerer
    from codesense_ray.answering.prompts.registry import build_prompt_registry
    from codesense_ray.app.compose import build_retriever
    from codesense_ray.answering.tracing import NoopTracer
    from codesense_ray.training.registry import StudentRegistry, ensure_experiment

    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise InvalidConfig(f"--candidates: unknown candidate {unknown[0] if unknown else '(none)'!r} (known: {', '.join(CANDIDATES)})")
    paths = [cfg.resolve_path(d) for d in datasets] if datasets else default_datasets(cfg)
    questions = load_questions(paths, limit)
    suite, _status = build_judge(cfg, judge)
    retriever = build_retriever(cfg)
    prompts = build_prompt_registry(cfg.prompts, cfg.home)
    registry = StudentRegistry.from_config(cfg)
    rows: list[dict[str, Any]] = []
    by_dataset: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    per_question: dict[str, list[dict[str, Any]]] = {}
    for name in candidates:
        if name in ("champion", "challenger") and registry.by_alias(name) is None:
            skipped.append({"candidate": name, "reason": f"{registry.model_name} has no `{name}` alias"})
            continue
        try:
            gen = build_candidate(cfg, name, max_new_tokens)
        except CodesenseError as err:
            skipped.append({"candidate": name, "reason": str(err)})
            continue
        answerer = RagAnswerer(retriever, _Metered(gen) if gen is not None else None, prompts, NoopTracer(), cfg.answer)
        records = evaluate_candidate(answerer, questions, suite)
        version = registry.by_alias(name) if name in ("champion", "challenger") else None
        identity = {"candidate": name, "model": answerer.model_name, "version": version.version if version else None}
        row = summarize(records, suite is not None)
        rows.append({**identity, "dataset": "all", "questions": len(questions), **row})
        by_dataset += dataset_rows(identity, records, suite is not None)
        per_question[name] = records
        if version is not None:
            registry.record_evaluation(version.version, {k: v for k, v in row.items() if k in ("citation_valid", "citation_gold", "faithfulness", "answer_relevancy", "tokens_per_s", "latency_p50_s")})
    if not rows:
        raise CodesenseError("no candidate could be evaluated: " + "; ".join(f"{s['candidate']}: {s['reason']}" for s in skipped))

    import mlflow
    import pandas as pd

    exp_id = ensure_experiment(registry.client, registry.tracking_uri, registry.experiment)
    mlflow.set_tracking_uri(registry.tracking_uri)
    with mlflow.start_run(experiment_id=exp_id, run_name="compare", tags={"codesense.stage": "compare"}) as run:
        mlflow.log_params({"candidates": ",".join(r["candidate"] for r in rows), "datasets": ",".join(str(p) for p in paths),
                           "questions": len(questions), "judge": suite.model_name if suite else "none"})
        mlflow.log_metrics({f"{r['candidate']}.{m}": float(r[m]) for r in rows for m in METRICS if isinstance(r.get(m), (int, float))})
        mlflow.log_metrics({f"{r['candidate']}.{r['dataset']}.{m}": float(r[m]) for r in by_dataset for m in METRICS if isinstance(r.get(m), (int, float))})
        mlflow.log_table(pd.DataFrame(rows + by_dataset), "comparison.json")
        mlflow.log_text(format_table(rows + by_dataset), "comparison.txt")
        mlflow.log_figure(_plot(rows), "comparison.png")
        mlflow.log_dict(per_question, "per_question.json")
        run_id = run.info.run_id
    return {"run_id": run_id, "rows": rows, "by_dataset": by_dataset, "skipped": skipped, "datasets": [str(p) for p in paths], "questions": len(questions)}
