"""`codesense feedback export` and `codesense monitor judge|drift|report` (adapter).

Wire it into the main parser with `register(sub, common)`. Exit codes: 0 done, 1 drift detected (above the
thresholds in `monitoring.drift`), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from codesense_ray.app.cli.common import positive_int  # the CLI's shared argument type


def _duration(text: str) -> float:
    from codesense_ray.config.monitoring import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    fb = sub.add_parser("feedback", parents=[common], help="user feedback on answers (stored on their traces)")
    fsub = fb.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    p = fsub.add_parser(
        "export",
        parents=[common],
        help="rated answers as JSONL for the golden-set builder (evaluation-dataset lines plus the feedback)",
        description="Read the traces of the last --since, keep those with a user rating, and write one evaluation-dataset line per "
        "rating: the question, gold files from the user's correct_paths (or, for a thumbs-up, the answer's own cited files), the rating and comment.",
    )
    p.add_argument("--since", type=_duration, default=_duration("30d"), metavar="30d", help="how far back to read traces (default 30d)")
    p.add_argument("--rating", choices=("all", "up", "down"), default="all", help="which ratings to export (default all)")
    p.add_argument("--output", metavar="FILE.jsonl", help="write here instead of stdout")
    p.set_defaults(handler=cmd_feedback_export)

    mon = sub.add_parser("monitor", parents=[common], help="production monitoring: online judge batch, query drift, HTML report")
    msub = mon.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    p = msub.add_parser(
        "judge",
        parents=[common],
        help="judge recent answered traces with evaluation.judge; scores go back onto the traces",
        description="The batch twin of the online judge: every (or a --sample of) answered trace of the last --since that has no judge "
        "score yet is graded (faithfulness, answer relevancy, citation format) and the scores are written onto the trace.",
    )
    p.add_argument("--since", type=_duration, default=_duration("1d"), metavar="1d", help="traces of this recent window (default 1d)")
    p.add_argument("--sample", type=_probability, default=1.0, metavar="RATE", help="share of unjudged traces to grade (default 1.0)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="at most N traces")
    p.add_argument("--rejudge", action="store_true", help="also grade traces that already carry judge scores")
    p.set_defaults(handler=cmd_monitor_judge)

    p = msub.add_parser(
        "drift",
        parents=[common],
        help="compare recent questions with a reference window (MMD test on embeddings + retrieval shifts); exit 1 on drift",
        description="Embed the questions of the recent --window and of the --reference window before it, run an MMD permutation test and "
        "a domain classifier on the embeddings, compare top retrieval scores, repositories asked and the no-answer rate; write an HTML "
        "report, record an MLflow run, push gauges, and exit 1 when a signal crosses its threshold (monitoring.drift).",
    )
    p.add_argument("--window", type=_duration, default=None, metavar="7d", help="recent window (default monitoring.drift.window)")
    p.add_argument("--reference", type=_duration, default=None, metavar="28d", help="reference window before it (default monitoring.drift.reference)")
    p.add_argument("--output", metavar="DIR", help="write drift.json and drift.html here (default: $CODESENSE_HOME/monitoring/drift-<time>/)")
    p.add_argument("--no-mlflow", action="store_true", help="do not record an MLflow run")
    p.set_defaults(handler=cmd_monitor_drift)

    p = msub.add_parser(
        "report",
        parents=[common],
        help="one self-contained HTML page of the last N days: latency, feedback, judge, drift, freshness",
        description="Read the traces of the last --days and the last drift run, and write one HTML file (plots inline, no external assets).",
    )
    p.add_argument("--days", type=positive_int, default=None, metavar="N", help="days covered (default monitoring.report_days)")
    p.add_argument("--output", metavar="FILE.html", help="where to write (default: $CODESENSE_HOME/monitoring/report-<time>.html)")
    p.set_defaults(handler=cmd_monitor_report)


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from codesense_ray.app.cli.common import emit
    from codesense_ray.config import load_config
    from codesense_ray.monitoring.export import feedback_rows
    from codesense_ray.monitoring.traces import read_records

    cfg = load_config(args.config)
    rows = feedback_rows(read_records(cfg, since=time.time() - args.since), args.rating)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(lines, encoding="utf-8")
        emit(args, {"output": args.output, "rows": len(rows)}, lambda: print(f"{len(rows)} rated answer(s) → {args.output}"))
    elif args.json:
        emit(args, {"rows": rows}, lambda: None)
    else:
        sys.stdout.write(lines)
    return 0


def cmd_monitor_judge(args: argparse.Namespace) -> int:
    from codesense_ray.app.cli.common import emit
    from codesense_ray.config import load_config
    from codesense_ray.monitoring.judge import judge_recent

    cfg = load_config(args.config)
    summary = judge_recent(cfg, since=time.time() - args.since, sample=args.sample, limit=args.limit, rejudge=args.rejudge)

    def human() -> None:
        print(f"judged {summary['judged']} of {summary['candidates']} trace(s) ({summary['failed']} failed) with {summary['judge']}")
        for metric, value in sorted(summary["mean"].items()):
            print(f"  {metric:<20} {value:.3f}")

    emit(args, summary, human)
    return 0


def cmd_monitor_drift(args: argparse.Namespace) -> int:
    from codesense_ray.app.cli.common import emit
    from codesense_ray.config import load_config
    from codesense_ray.monitoring.drift import run_drift_job

    cfg = load_config(args.config)
    outcome = run_drift_job(cfg, window_s=args.window, reference_s=args.reference, output=args.output, log_mlflow=not args.no_mlflow)
    result = outcome["result"]

    def human() -> None:
        print(f"drift: {result['status']} — recent {result['counts']['recent']} vs reference {result['counts']['reference']} question(s)")
        for name, check in result["checks"].items():
            flag = "DRIFT" if check["flagged"] else "ok"
            print(f"  {name:<18} {check['value'] if check['value'] is not None else '-':>10}  threshold {check['threshold']}  {flag}")
        print(f"report: {outcome['files']['html']}")

    emit(args, outcome, human)
    if result["drift"]:
        print("codesense: drift detected: " + ", ".join(n for n, c in result["checks"].items() if c["flagged"]), file=sys.stderr)
        return 1
    return 0


def cmd_monitor_report(args: argparse.Namespace) -> int:
    from codesense_ray.app.cli.common import emit
    from codesense_ray.config import load_config
    from codesense_ray.monitoring.report import write_monitoring_report

    cfg = load_config(args.config)
    out = write_monitoring_report(cfg, days=args.days, output=args.output)
    emit(args, out, lambda: print(f"report: {out['html']} ({out['questions']} question(s) over {out['days']} day(s))"))
    return 0
