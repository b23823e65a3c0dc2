"""`codesense converge` and `codesense pipeline compile|run|schedule` (adapter; wired in by `codesense_ray.app.cli.main`).

    codesense converge [--json]
    codesense pipeline compile [--output FILE]
    codesense pipeline run --local [--ray-address http://127.0.0.1:8265] [--eval-dataset FILE] [--full]
    codesense pipeline schedule --cron "0 3 * * *" [--host URL] [--experiment NAME]

Only argument parsing and printing live here; errors are `CodesenseError`s that the main CLI turns into
one-line messages and exit codes.
"""

from __future__ import annotations

import argparse
from functools import partial

from codesense_ray.app.cli.common import emit as _emit, load_config_from_args as _load




# --- converge -------------------------------------------------------------------------------------
def cmd_converge(args: argparse.Namespace) -> int:
    from codesense_ray.orchestration.converge import converge

    summary = converge(_load(args))
    payload = summary.to_dict()
    _emit(args, payload, partial(_print_converge, payload))
    return 0 if summary.ok else 1


def _print_converge(s: dict) -> None:
    print(f"converge: {len(s['repos'])} repositories in {s['seconds']:.1f}s")
    for r in s["repos"]:
        if r["error"]:
            print(f"  - {r['id']}: failed: {r['error']}")
        else:
            was = f" (was {r['previous'][:12]})" if r["previous"] and r["previous"] != r["commit"] else ""
            print(f"  - {r['id']}: {r['status']} at {r['commit'][:12]}{was} → {r['path']}")
    for name in s["removed"]:
        print(f"  - {name}: removed (no longer in config)")
    d = s["dvc"]
    if d:
        line = f"dvc: {d['status']}"
        if d["data_version"]:
            line += f" data/raw {d['data_version']} ({d['files']} files)"
        if d["remote_url"]:
            line += f" → remote {d['remote']} ({d['remote_url']})"
        if d["message"]:
            line += f": {d['message']}"
        print(line)


# --- pipeline -------------------------------------------------------------------------------------
def cmd_pipeline_compile(args: argparse.Namespace) -> int:
    from codesense_ray.config.orchestration import PipelineConfig, section
    from kfp_wrappers.compile import compile_pipeline

    pcfg = section(_load(args), "pipeline", PipelineConfig)
    out = compile_pipeline(args.output or f"{pcfg.name}.yaml", pcfg)
    payload = {"pipeline": pcfg.name, "output": str(out.resolve())}
    _emit(args, payload, lambda: print(f"compiled {pcfg.name} → {out}"))
    return 0


def cmd_pipeline_run(args: argparse.Namespace) -> int:
    from codesense_ray.config import config_path
    from codesense_ray.errors import CodesenseError
    from codesense_ray.orchestration.kfp_runs import run_pipeline_locally
    from kfp_wrappers.pipeline import build_pipeline

    if not args.local:
        raise CodesenseError("only --local runs are started from here; on Kubeflow use `codesense pipeline schedule` or the KFP UI")
    cfg = _load(args)
    result = run_pipeline_locally(cfg, config_path(args.config), ray_address=args.ray_address, eval_dataset=args.eval_dataset or "", full=args.full, build_pipeline=build_pipeline)

    def human() -> None:
        idx = (result.get("index") or {}).get("summary") or {}
        totals = idx.get("totals") or {}
        print(f"pipeline {result['pipeline']} succeeded (Ray: {result['ray_address']})")
        if totals:
            print(f"  index {idx.get('alias')} → {idx.get('collection')}: {totals.get('chunks_total')} chunks, {totals.get('files_seen')} files")

    _emit(args, result, human)
    return 0


def cmd_pipeline_schedule(args: argparse.Namespace) -> int:
    from codesense_ray.orchestration.cron import to_kfp_cron
    from codesense_ray.orchestration.kfp_runs import schedule_pipeline
    from kfp_wrappers.compile import compile_pipeline

    if args.cron is not None:
        to_kfp_cron(args.cron)  # reject before even reading the config
    cfg = _load(args)
    result = schedule_pipeline(cfg, args.cron, host=args.host, experiment=args.experiment, compile_pipeline=compile_pipeline)
    _emit(
        args,
        result,
        lambda: print(f"recurring run {result['recurring_run_id']} on cron '{result['cron']}' (pipeline version {result['pipeline_version_id']})"),
    )
    return 0


def register(sub, common: argparse.ArgumentParser) -> None:
    """Add `converge` and `pipeline` to the `codesense` sub-command parser."""
    p = sub.add_parser(
        "converge",
        parents=[common],
        help="clone the url: repositories into data/raw/ and version them with DVC (dvc add + push)",
        description="terraform apply for source snapshots: each `url:` repository is cloned shallowly at its pinned ref (or HEAD) "
        "into data/raw/<id>/, its commit recorded in .codesense-ref, .git stripped; unchanged repositories are skipped, a failing "
        "one is reported while the others converge. Then DVC tracks data/raw and pushes it to the configured remote.",
    )
    p.set_defaults(handler=cmd_converge)

    pipe = sub.add_parser(
        "pipeline",
        help="the codesense-rag Kubeflow pipeline: compile, run locally, schedule",
        description="A KFP pipeline is a CI pipeline whose stages are containers; each codesense stage container submits a Ray job.",
    )
    psub = pipe.add_subparsers(dest="pipeline_command", metavar="ACTION")
    pipe.set_defaults(handler=lambda a: (pipe.print_help(), 2)[1])

    c = psub.add_parser("compile", parents=[common], help="write the pipeline's KFP IR YAML")
    c.add_argument("--output", metavar="FILE", default=None, help="file to write (default ./codesense-rag.yaml)")
    c.set_defaults(handler=cmd_pipeline_compile)

    r = psub.add_parser(
        "run",
        parents=[common],
        help="run the whole pipeline with the KFP local runner against a Ray head",
        description="KFP local runner (subprocesses) → Ray Job Submission → Ray Data → embedded Qdrant. Without --ray-address a "
        "private Ray head is started for the run and stopped afterwards.",
    )
    r.add_argument("--local", action="store_true", help="run here with kfp.local (required: cluster runs are scheduled on Kubeflow)")
    r.add_argument("--ray-address", metavar="ADDR", default=None, help="dashboard URL of a running head, e.g. http://127.0.0.1:8265")
    r.add_argument("--eval-dataset", metavar="FILE", default=None, help="also run the evaluation stage on this JSONL dataset")
    r.add_argument("--full", action="store_true", help="re-embed everything instead of reusing unchanged chunks")
    r.set_defaults(handler=cmd_pipeline_run)

    s = psub.add_parser(
        "schedule",
        parents=[common],
        help="create (or replace) a KFP recurring run of the pipeline",
        description="Compile, upload (a new pipeline version only when the spec changed) and schedule on Kubeflow Pipelines.",
    )
    s.add_argument("--cron", default=None, help='cron, 5 fields ("0 3 * * *") or KFP\'s 6 with seconds; default pipeline.schedule')
    s.add_argument("--host", default=None, help="KFP API endpoint (default pipeline.host)")
    s.add_argument("--experiment", default=None, help="KFP experiment (default pipeline.experiment)")
    s.set_defaults(handler=cmd_pipeline_schedule)

