"""Run a dataset through retrieval (and optionally the full answer path and an LLM judge) and score it.

    runner = EvalRunner(retriever, answerer=None, ks=(1, 3, 5, 10), depth=10)   # answerer=None: retrieval only
    report = runner.run(load_dataset("data/eval/handwritten.jsonl"), on_progress=lambda done, total: ...)
    report.metrics["file_hit@5"], report.write(Path("out/"))                   # results.jsonl + summary.json

`run_evaluation(cfg, dataset, ...)` composes the same from `codesense.yaml` (retriever, answerer, judge), writes
the results and plots, and records the run in MLflow: the CLI and the benchmark script call it.

Bad data never stops a run: a gold path that is not in the index, or a question about a repository that is not
indexed, is warned about, counted (`counts`) and scored as a miss. A generator or judge failure on one question
is recorded on that question.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from codesense_ray.evaluation import metrics as M
from codesense_ray.retrieval.retriever import files_from_hits
from codesense_ray.evaluation.dataset import EvalDataset, EvalQuestion, normalize_path
from codesense_ray.config.evaluation import JUDGE_METRICS, evaluation_config, normalize_ks

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass
class JudgeStatus:
    """Whether judged metrics ran: `off` (not asked), `skipped` (asked, no judge configured) or `ok`."""

    status: str = "off"
    reason: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "model": self.model}


@dataclass
class EvalReport:
    """Everything one evaluation measured: per-question records, aggregate metrics, counts and warnings."""

    dataset: EvalDataset
    mode: str  # "retrieval" or "full"
    ks: list[int]
    depth: int
    results: list[dict[str, Any]]
    metrics: dict[str, float | None]
    counts: dict[str, int]
    warnings: list[str]
    judge: JudgeStatus
    seconds: float
    prompt: dict[str, Any] | None = None
    hit_curve: list[float] = field(default_factory=list)

    @property
    def first_ranks(self) -> list[int | None]:
        return [r["first_gold_rank"] for r in self.results]

    def summary(self) -> dict[str, Any]:
        """The JSON document `codesense eval --json` prints (without paths, MLflow and gate, added by the caller)."""
        return {
            "dataset": {"path": str(self.dataset.path), "name": self.dataset.name, "sha256": self.dataset.sha256, "questions": len(self.dataset)},
            "mode": self.mode,
            "ks": self.ks,
            "depth": self.depth,
            "metrics": self.metrics,
            "counts": self.counts,
            "judge": self.judge.to_dict(),
            "prompt": self.prompt,
            "hit_curve": self.hit_curve,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write `results.jsonl` (one record per question) and `summary.json` into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        results = out_dir / RESULTS_FILE
        with results.open("w", encoding="utf-8") as fh:
            for record in self.results:
                fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        summary = out_dir / SUMMARY_FILE
        summary.write_text(json.dumps(self.summary(), indent=2, default=str) + "\n", encoding="utf-8")
        return {"results": results, "summary": summary}


def metric_names(ks: Sequence[int], full: bool, judge_metrics: Sequence[str] = ()) -> list[str]:
    """Aggregate metric names of a run, in report order."""
    names = [M.metric_name("file_hit", k) for k in ks]
    names += [M.metric_name("file_all", k) for k in ks]
    names.append("file_mrr")
    names += [M.metric_name("chunk_hit", k) for k in ks]
    names.append("retrieval_latency_s")
    if full:
        names += ["citation_valid", "citation_gold", "answer_latency_s", "answer_latency_p95_s"]
    names += list(judge_metrics)
    return names


class EvalRunner:
    """Scores a dataset against a retriever and, when given, an answerer (full mode) and a judge.

    `retriever` needs `search`, `file_line_count` and `repositories` (the `Retriever` API); it is asked once
    per question for `candidates` chunks (at least 5 per ranked file), from which both the file ranking and the
    top chunks come. `answerer` needs `ask` (the `RagAnswerer` API): the judge sees the context the answer was
    generated from. `judge` needs `evaluate(...)` and `metrics` (`deepeval_metrics.JudgeSuite`).
    """

    def __init__(self, retriever, *, answerer=None, judge=None, ks: Sequence[int] = (1, 3, 5, 10), depth: int = 10, candidates: int = 50) -> None:
        self.retriever = retriever
        self.candidates = candidates
        self.answerer = answerer
        self.judge = judge
        self.ks = normalize_ks(ks)
        self.depth = max(depth, self.ks[-1])

    @property
    def full(self) -> bool:
        return self.answerer is not None

    def run(self, dataset: EvalDataset, on_progress: ProgressCallback | None = None, judge_status: JudgeStatus | None = None) -> EvalReport:
        started = time.perf_counter()
        known = set(self.retriever.repositories())
        warnings: list[str] = []
        results: list[dict[str, Any]] = []
        total = len(dataset)
        if on_progress:
            on_progress(0, total)
        for i, q in enumerate(dataset.questions, start=1):
            record = self._question(q, known)
            for w in record["warnings"]:
                warnings.append(f"{q.id} (line {q.line}): {w}")
                log.warning("%s: %s", q.id, w)
            results.append(record)
            if on_progress:
                on_progress(i, total)
        judge_metrics = [m for m in JUDGE_METRICS if self.judge is not None and m in self.judge.metrics]
        names = metric_names(self.ks, self.full, judge_metrics)
        metrics = M.aggregate([r["metrics"] for r in results], names)
        counts = self._counts(results)
        if self.full:
            answered = [r["answer"] for r in results if r.get("answer") and "error" not in r["answer"]]
            valid = sum(a["citations"]["valid"] for a in answered)
            cited = valid + sum(len(a["citations"]["invalid"]) for a in answered)
            # Micro-average: every citation of the run weighs the same (an answer citing nothing adds nothing).
            metrics["citation_valid"] = valid / cited if cited else None
            metrics["answer_latency_p95_s"] = M.percentile([a["latency_s"] for a in answered], 95)
            counts["citations"] = cited
        prompt = next((r["answer"]["prompt"] for r in results if r.get("answer") and r["answer"].get("prompt")), None)
        status = judge_status or (JudgeStatus("ok", model=getattr(self.judge, "model_name", None)) if self.judge is not None else JudgeStatus())
        return EvalReport(
            dataset=dataset,
            mode="full" if self.full else "retrieval",
            ks=self.ks,
            depth=self.depth,
            results=results,
            metrics=metrics,
            counts=counts,
            warnings=warnings,
            judge=status,
            seconds=time.perf_counter() - started,
            prompt=prompt,
            hit_curve=M.hit_curve([r["first_gold_rank"] for r in results], self.depth),
        )

    # --- one question ------------------------------------------------------------------------------
    def _question(self, q: EvalQuestion, known: set[str]) -> dict[str, Any]:
        warnings: list[str] = []
        repo_ids = (q.repo,) if q.repo else ()
        record: dict[str, Any] = {
            "id": q.id,
            "line": q.line,
            "question": q.question,
            "repo": q.repo,
            "gold": [g.to_dict() for g in q.gold],
            **({"meta": q.extra} if q.extra else {}),
        }
        if q.repo and q.repo not in known:
            warnings.append(f"repository {q.repo!r} is not indexed (indexed: {', '.join(sorted(known)) or 'none'}); scored as a miss")
            record.update(self._unanswerable(q, "repository not indexed"))
            record["warnings"] = warnings
            return record

        missing = self._missing_gold(q, known, warnings)
        record["missing_gold"] = missing

        def key(repo: str, path: str):
            return (repo, normalize_path(path)) if q.repo else normalize_path(path)

        gold_keys = [key(q.repo, p) for p in q.gold_files]
        t0 = time.perf_counter()
        # One retrieval per question: fused rankings are prefix-stable, so the top chunks and the file
        # ranking both come from the same candidate list.
        hits = self.retriever.search(q.question, k=max(self.candidates, self.depth * 5, self.ks[-1]), repo_ids=repo_ids)
        files = files_from_hits(hits, self.depth, q.question)
        chunks = hits[: self.ks[-1]] if (q.line_spans or (self.judge and not self.full)) else []
        record["retrieval_latency_s"] = round(time.perf_counter() - t0, 4)

        ranks = M.gold_ranks([key(f.repo, f.path) for f in files], gold_keys, [f.score for f in files])
        first = M.first_rank(ranks)
        gold_set = set(gold_keys)
        record["files"] = [
            {"rank": i, "repo": f.repo, "path": f.path, "score": round(f.score, 6), "gold": key(f.repo, f.path) in gold_set}
            for i, f in enumerate(files, start=1)
        ]
        record["gold_ranks"] = {(k[1] if isinstance(k, tuple) else k): r for k, r in ranks.items()}
        record["first_gold_rank"] = first

        gold_spans = [M.Span(q.repo, g.path, g.start_line, g.end_line) for g in q.line_spans]
        spans = [M.Span(h.repo, normalize_path(h.path), h.start_line, h.end_line) for h in chunks]
        chunk_rank = M.first_chunk_rank(spans, gold_spans, [h.score for h in chunks]) if gold_spans else None
        if gold_spans:
            record["chunks"] = [
                {"rank": i, "repo": h.repo, "path": h.path, "start_line": h.start_line, "end_line": h.end_line, "score": round(h.score, 6),
                 "gold": any(M.spans_overlap(s, g) for g in gold_spans)}
                for i, (h, s) in enumerate(zip(chunks, spans), start=1)
            ]
            record["first_chunk_rank"] = chunk_rank
        metrics = M.retrieval_metrics(ranks, chunk_rank, bool(gold_spans), self.ks, self.depth)
        metrics["retrieval_latency_s"] = record["retrieval_latency_s"]

        answer_text = None
        contexts = [context_text(h) for h in chunks]
        if self.full:
            answer_text, answer_record, answer_metrics, blocks = self._answer(q, repo_ids, gold_keys, key)
            record["answer"] = answer_record
            metrics.update(answer_metrics)
            contexts = [context_text(b) for b in blocks]  # the context the answer was generated from
        if self.judge is not None:
            verdicts = self.judge.evaluate(question=q.question, answer=answer_text, expected=q.answer, contexts=contexts)
            record["judge"] = verdicts
            for name, v in verdicts.items():
                metrics[name] = v.get("score")
                if "error" in v:
                    warnings.append(f"judge metric {name} failed: {v['error']}")
        record["metrics"] = metrics
        record["warnings"] = warnings
        return record

    def _missing_gold(self, q: EvalQuestion, known: set[str], warnings: list[str]) -> list[str]:
        missing = []
        for g in q.gold:
            repos = [q.repo] if q.repo else sorted(known)
            counts = [n for n in (self.retriever.file_line_count(r, g.path) for r in repos) if n is not None]
            if not counts:
                if g.path not in missing:
                    missing.append(g.path)
                continue
            if g.end_line is not None and g.end_line > max(counts):
                warnings.append(f"gold lines {g.start_line}-{g.end_line} of {g.path} run past its end (line {max(counts)})")
        if missing:
            where = f"repository {q.repo!r}" if q.repo else "any indexed repository"
            warnings.append(f"gold file(s) not in the index of {where}: {', '.join(missing)}; they count as misses")
        return missing

    def _answer(self, q: EvalQuestion, repo_ids, gold_keys, key) -> tuple[str | None, dict[str, Any], dict[str, float | None], list]:
        from codesense_ray.errors import CodesenseError

        try:
            answer = self.answerer.ask(q.question, repo_ids=repo_ids)
        except CodesenseError as err:
            # One failed answer (generator down, question rejected) is that question's result, not the run's end.
            return None, {"error": str(err)}, {"citation_valid": None, "citation_gold": 0.0, "answer_latency_s": None}, []
        cited = [key(s["repo"], s["path"]) for s in answer.sources]
        record = {
            "text": answer.answer,
            "model": answer.model,
            "prompt": answer.prompt,
            "sources": answer.sources,
            "citations": {"valid": answer.citations["valid"], "invalid": answer.citations["invalid"]},
            "latency_s": round(answer.latency_s, 4),
        }
        metrics = {
            "citation_valid": M.citation_valid(answer.citations["valid"], len(answer.citations["invalid"])),
            "citation_gold": M.citation_gold(cited, gold_keys),
            "answer_latency_s": round(answer.latency_s, 4),
        }
        return answer.answer, record, metrics, answer.context

    def _unanswerable(self, q: EvalQuestion, reason: str) -> dict[str, Any]:
        ranks = {p: None for p in q.gold_files}
        metrics = M.retrieval_metrics(ranks, None, bool(q.line_spans), self.ks, self.depth)
        if self.full:
            metrics.update({"citation_valid": None, "citation_gold": 0.0, "answer_latency_s": None})
        return {"missing_gold": q.gold_files, "files": [], "gold_ranks": ranks, "first_gold_rank": None, "error": reason, "metrics": metrics}

    def _counts(self, results: list[dict[str, Any]]) -> dict[str, int]:
        return {
            "questions": len(results),
            "questions_with_line_gold": sum(1 for r in results if any("start_line" in g for g in r["gold"])),
            "gold_files": sum(len({g["path"] for g in r["gold"]}) for r in results),
            "gold_files_missing": sum(len(r.get("missing_gold", [])) for r in results),
            "questions_all_gold_missing": sum(1 for r in results if r.get("missing_gold") and len(r["missing_gold"]) == len({g["path"] for g in r["gold"]})),
            "questions_repo_not_indexed": sum(1 for r in results if r.get("error") == "repository not indexed"),
            "answer_errors": sum(1 for r in results if isinstance(r.get("answer"), dict) and "error" in r["answer"]),
            "judge_errors": sum(1 for r in results for v in (r.get("judge") or {}).values() if "error" in v),
        }


def context_text(item) -> str:
    """A retrieved chunk as the judge sees it: where it is from, then the code."""
    return f"{item.path}:{item.start_line}-{item.end_line}\n{item.text}"


# --- composition from configuration --------------------------------------------------------------------
@dataclass
class EvalOutcome:
    """A finished evaluation: the report, where its files are, and the MLflow run (None when not logged)."""

    report: EvalReport
    output_dir: Path
    files: dict[str, Path]
    mlflow: dict[str, Any] | None
    params: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        d = self.report.summary()
        d["output_dir"] = str(self.output_dir)
        d["results_path"] = str(self.files["results"])
        d["mlflow"] = self.mlflow
        return d


def build_judge(cfg, enabled: bool):
    """(judge suite or None, status). Without a configured judge the metrics are skipped, never estimated."""
    jcfg = evaluation_config(cfg).judge
    if not enabled:
        return None, JudgeStatus()
    if jcfg.backend == "none":
        return None, JudgeStatus(
            "skipped",
            reason="judged metrics skipped: no judge configured (set evaluation.judge.backend to `openai` or `gemini` in codesense.yaml)",
        )
    from codesense_ray.offline import apply_offline_defaults

    apply_offline_defaults()  # deepeval reads its telemetry switch at import
    from codesense_ray.evaluation.deepeval_metrics import build_judge_suite

    suite = build_judge_suite(jcfg, cfg.home)
    return suite, JudgeStatus("ok", model=suite.model_name)


def default_output_dir(cfg, dataset: EvalDataset, mode: str) -> Path:
    parent = evaluation_config(cfg).resolve_output_dir(cfg.base_dir, cfg.home)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return parent / f"{stamp}-{dataset.name}-{mode}"


def run_evaluation(
    cfg,
    dataset: EvalDataset,
    *,
    ks: Sequence[int] | None = None,
    retrieval_only: bool = False,
    judge: bool = False,
    output_dir: str | Path | None = None,
    log_mlflow: bool | None = None,
    on_progress: ProgressCallback | None = None,
    retriever,
    answerer=None,
    judge_suite=None,
) -> EvalOutcome:
    """Evaluate `dataset` with the given services, write results and plots, log an MLflow run.

    The caller composes the services from `cfg` (`app.compose.build_retriever` / `build_answerer`; the CLI does):
    the evaluation package never reaches up into the app layer. Full mode (not `retrieval_only`) needs `answerer`.
    """
    from codesense_ray.evaluation.mlflow_log import log_evaluation, run_params
    from codesense_ray.evaluation.plots import write_plots

    ecfg = evaluation_config(cfg)
    ks = normalize_ks(ks or ecfg.ks)
    if judge_suite is not None:
        status = JudgeStatus("ok", model=judge_suite.model_name)
    else:
        judge_suite, status = build_judge(cfg, judge)
    if not retrieval_only and answerer is None:
        raise ValueError("run_evaluation: full mode needs an answerer (or retrieval_only=True)")
    runner = EvalRunner(retriever, answerer=None if retrieval_only else answerer, judge=judge_suite, ks=ks, depth=ecfg.depth, candidates=cfg.search.candidates)
    report = runner.run(dataset, on_progress=on_progress, judge_status=status)
    out = Path(output_dir) if output_dir else default_output_dir(cfg, dataset, report.mode)
    files = report.write(out)
    files.update(write_plots(report, out))
    params = run_params(cfg, report, retriever)
    mlflow_info = None
    if ecfg.log_to_mlflow if log_mlflow is None else log_mlflow:
        try:
            mlflow_info = log_evaluation(report, out, params=params, tracking_uri=_tracking_uri(cfg), experiment=ecfg.experiment)
        except Exception as exc:  # noqa: BLE001 - the results on disk are still good; say why the run record is missing
            report.warnings.append(f"MLflow logging failed ({type(exc).__name__}: {exc}); results are in {out}")
            files.update(report.write(out))
    return EvalOutcome(report=report, output_dir=out, files=files, mlflow=mlflow_info, params=params)


def _tracking_uri(cfg) -> str:
    from codesense_ray.config.answering import resolve_mlflow_uri

    return resolve_mlflow_uri(evaluation_config(cfg).mlflow_tracking_uri, cfg.home)
