"""`codesense eval` (adapter): run a dataset, print a summary table (or `--json`), record MLflow, apply the gate.

Wire it into the main parser with `register(sub, common)` (`sub` from `add_subparsers`, `common` the parent
parser carrying `--config` and `--json`).

Exit codes: 0 done (and the gate passed), 1 the gate failed, 2 bad input (dataset line, gates file, `-k`),
3 no index yet.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

MAX_WARNINGS_SHOWN = 20


from codesense_ray.app.cli.common import positive_int  # noqa: E402  (the CLI's shared argument type)


def _ks_arg(text: str) -> list[int]:
    from codesense_ray.config.evaluation import parse_ks

    try:
        return parse_ks(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "eval",
        parents=[common],
        help="measure retrieval and answer quality on a dataset (hit@k, MRR, citations), log to MLflow, apply a quality gate",
        description="Run every question of a JSONL dataset through retrieval (and, unless --retrieval-only, the full answer path), "
        "score it against the gold files and lines, write per-question results and plots, and record an MLflow run. "
        "With --gate, exit 1 when a metric is below its threshold.",
    )
    p.add_argument("--dataset", required=True, metavar="FILE.jsonl", help="questions with gold files/lines, one JSON object a line")
    p.add_argument("-k", dest="ks", type=_ks_arg, default=None, metavar="1,3,5,10", help="cut-offs for the @k metrics (default: evaluation.ks)")
    p.add_argument("--retrieval-only", action="store_true", help="score retrieval only; skip answering (no citation metrics)")
    p.add_argument("--gate", metavar="gates.yaml", help="thresholds per metric; exit 1 and name each metric below its threshold")
    p.add_argument("--output", metavar="DIR", help="write results.jsonl, summary.json and plots here (default: a new folder under $CODESENSE_HOME/eval/)")
    p.add_argument("--no-mlflow", action="store_true", help="do not record an MLflow run")
    p.add_argument("--judge", action="store_true", help="also run the LLM-judged metrics (DeepEval) with evaluation.judge")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N questions (a quick smoke run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    from codesense_ray.app.cli.common import emit
    from codesense_ray.config import load_config
    from codesense_ray.evaluation.dataset import load_dataset
    from codesense_ray.evaluation.gate import check_gates, load_gates
    from codesense_ray.evaluation.runner import run_evaluation
    from codesense_ray.config.evaluation import evaluation_config

    cfg = load_config(args.config)
    # Bad input fails before any model loads.
    dataset = load_dataset(args.dataset)
    if args.limit is not None:
        dataset = replace(dataset, questions=dataset.questions[: args.limit])
    rules = load_gates(args.gate) if args.gate else None
    ecfg = evaluation_config(cfg)

    bar = tqdm(total=len(dataset), unit="q", desc="eval", file=sys.stderr, disable=True if args.no_progress else None, leave=False)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    retriever = None
    try:
        from codesense_ray.answering.tracing import NoopTracer
        from codesense_ray.app.compose import build_answerer, build_retriever

        retriever = build_retriever(cfg, long_lived=True)
        # Answers are not traced: the per-question results already hold them.
        answerer = None if args.retrieval_only else build_answerer(cfg, retriever, tracer=NoopTracer())
        outcome = run_evaluation(
            cfg,
            dataset,
            ks=args.ks,
            retrieval_only=args.retrieval_only,
            judge=args.judge,
            output_dir=args.output,
            log_mlflow=False if args.no_mlflow else ecfg.log_to_mlflow,
            on_progress=on_progress,
            retriever=retriever,
            answerer=answerer,
        )
    finally:
        bar.close()
        if retriever is not None:
            # Embedded Qdrant holds a lock on its directory until the client closes.
            retriever.store.client.close()

    report = outcome.report
    failures = check_gates(report.metrics, rules) if rules is not None else []
    payload = outcome.to_dict()
    payload["gate"] = None if rules is None else {"file": args.gate, "passed": not failures, "failures": [f.to_dict() for f in failures]}

    _print_warnings(report)
    emit(args, payload, lambda: _print_summary(outcome, failures, rules is not None))
    for f in failures:
        print(f"codesense: gate failed: {f.message()}", file=sys.stderr)
    return 1 if failures else 0


def _print_warnings(report) -> None:
    if report.judge.status == "skipped":
        print(f"codesense: warning: {report.judge.reason}", file=sys.stderr)
    for w in report.warnings[:MAX_WARNINGS_SHOWN]:
        print(f"codesense: warning: {w}", file=sys.stderr)
    if len(report.warnings) > MAX_WARNINGS_SHOWN:
        print(f"codesense: warning: ... {len(report.warnings) - MAX_WARNINGS_SHOWN} more (see results.jsonl)", file=sys.stderr)


def _fmt(v: float | None) -> str:
    return "    -" if v is None else f"{v:5.3f}"


def _print_summary(outcome, failures, gated: bool) -> None:
    r = outcome.report
    m = r.metrics
    c = r.counts
    mode = "retrieval only" if r.mode == "retrieval" else "full answers"
    print(f"eval {r.dataset.name}: {c['questions']} questions, {mode}, {r.seconds:.1f}s")
    print("  " + "metric".ljust(20) + "".join(f"{'@' + str(k):>8}" for k in r.ks))
    for base in ("file_hit", "file_all", "chunk_hit"):
        print("  " + base.ljust(20) + "".join(f"{_fmt(m.get(f'{base}@{k}')):>8}" for k in r.ks))
    rows = [("file_mrr", m.get("file_mrr"), f"first gold file within the top {r.depth}")]
    if r.mode == "full":
        rows += [
            ("citation_valid", m.get("citation_valid"), f"{c.get('citations', 0)} citations"),
            ("citation_gold", m.get("citation_gold"), "answers citing a gold file"),
            ("answer_latency_s", m.get("answer_latency_s"), f"p95 {_fmt(m.get('answer_latency_p95_s')).strip()}s"),
        ]
    rows.append(("retrieval_s", m.get("retrieval_latency_s"), "mean per question"))
    for name in ("faithfulness", "answer_relevancy", "contextual_precision", "contextual_recall", "citation_format", "no_hallucination"):
        if name in m:
            rows.append((name, m[name], f"judge {r.judge.model}"))
    for name, value, note in rows:
        print(f"  {name.ljust(20)}{_fmt(value):>8}   {note}")
    print(f"  chunk_hit over {c['questions_with_line_gold']} question(s) with gold lines; gold files missing from the index: {c['gold_files_missing']}")
    print(f"results: {outcome.files['results']}")
    if outcome.mlflow:
        print(f"mlflow: run {outcome.mlflow['run_id']} in experiment {outcome.mlflow['experiment']!r} (mlflow ui --backend-store-uri {outcome.mlflow['tracking_uri']})")
    if gated:
        print("gate: passed" if not failures else f"gate: FAILED ({len(failures)} metric(s) outside threshold)")
