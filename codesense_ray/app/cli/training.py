"""`codesense dataset golden`, `codesense distill`, `codesense train`, `codesense models list|compare|promote|rollback`,
`codesense embeddings finetune`.

Wire into the main parser with `register(sub, common)`. Exit codes: 0 done, 1 a gate refused a promotion (or a
step failed), 2 bad input (config, dataset, version, gate file), 3 no index yet, 5 the teacher is unreachable.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from codesense_ray.app.cli.common import load_config_from_args as _load

from codesense_ray.app.cli.common import emit, positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dataset", parents=[common], help="build datasets from production traces (golden set)")
    dsub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)
    g = dsub.add_parser(
        "golden",
        parents=[common],
        help="curate a golden evaluation set from answered requests (traces with good feedback/scores and valid citations)",
        description="Read answered requests from the tracing backend, keep the good ones (training.golden rules), drop near-duplicate "
        "questions, write data/golden/<name>.jsonl in the evaluation contract (gold = the cited files and lines).",
    )
    g.add_argument("--name", default=None, help="output name (default: training.golden.name)")
    g.add_argument("--limit", type=positive_int, default=None, metavar="N", help="read at most N traces (default: training.golden.max_traces)")
    g.set_defaults(handler=cmd_golden)

    p = sub.add_parser(
        "distill",
        parents=[common],
        help="distil training data from the teacher model: questions → retrieved context → verified teacher answers",
        description="Generate questions per indexed definition (or file), retrieve context with our retriever, let the teacher answer "
        "with the production prompt, keep answers whose citations all verify and that pass the grounding check. Resumable: "
        "questions already answered are never sent to the teacher again.",
    )
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="at most N questions this run (default: training.distill.max_questions)")
    p.add_argument("--name", default=None, help="dataset name (default: training.distill.name)")
    p.add_argument("--no-dvc", action="store_true", help="do not `dvc add` the dataset")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the dataset to MLflow")
    p.set_defaults(handler=cmd_distill)

    p = sub.add_parser(
        "train",
        parents=[common],
        help="fine-tune the student (LoRA/QLoRA) on Ray Train and register the adapter as the `challenger`",
        description="Run a Ray Train TorchTrainer: LoRA via peft on training.train.base_model (QLoRA and unsloth on CUDA), log loss "
        "curves, tokens/s and peak memory to MLflow, register the adapter as a new version of the student with alias `challenger`.",
    )
    p.add_argument("--max-steps", type=positive_int, default=None, metavar="N", help="optimiser steps (default: training.train.max_steps)")
    p.add_argument("--dataset", default=None, metavar="DIR", help="directory with train.jsonl / validation.jsonl (default: the distilled set)")
    p.add_argument("--no-register", action="store_true", help="train and log, but do not register a model version")
    p.add_argument("--run-name", default=None, metavar="NAME", help="Ray Train run name (default: student-<timestamp>); the name of an "
                   "interrupted run resumes it from its last checkpoint: adapter, optimizer and schedule state, step")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("models", parents=[common], help="the student model registry: list, compare, promote, rollback")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    m = msub.add_parser("list", parents=[common], help="registered versions with their aliases (champion, challenger)")
    m.set_defaults(handler=cmd_models_list)
    m = msub.add_parser(
        "compare",
        parents=[common],
        help="evaluate champion vs challenger (and base, teacher) on the golden set and the validation split; log one MLflow run",
    )
    m.add_argument("--dataset", action="append", metavar="FILE.jsonl", help="evaluation set (repeatable; default: the golden set and the distilled validation split)")
    m.add_argument("--candidates", default="champion,challenger,base,teacher", help="comma-separated: champion, challenger, base, teacher, extractive")
    m.add_argument("--limit", type=positive_int, default=None, metavar="N", help="at most N questions per dataset")
    m.add_argument("--max-new-tokens", type=positive_int, default=None, metavar="N", help="cap generated tokens of local candidates")
    m.add_argument("--judge", action="store_true", help="also score faithfulness and answer relevancy with evaluation.judge (DeepEval)")
    m.set_defaults(handler=cmd_models_compare)
    m = msub.add_parser("promote", parents=[common], help="move `champion` to the challenger when its comparison passes the gate")
    m.add_argument("--version", type=positive_int, default=None, help="promote this version instead of the challenger")
    m.add_argument("--gate", default=None, metavar="gates.yaml", help="gate file (default: training.registry.gate)")
    m.set_defaults(handler=cmd_models_promote)
    m = msub.add_parser("rollback", parents=[common], help="move `champion` back to the previous champion")
    m.add_argument("--to", type=positive_int, default=None, metavar="VERSION", help="roll back to this version")
    m.set_defaults(handler=cmd_models_rollback)

    p = sub.add_parser("embeddings", parents=[common], help="the embedding model: fine-tune it on pairs mined from the indexed code")
    esub = p.add_subparsers(dest="embeddings_command", metavar="SUBCOMMAND", required=True)
    e = esub.add_parser(
        "finetune",
        parents=[common],
        help="mine (docstring|test|error ↔ code) pairs from the repositories, train with MultipleNegativesRankingLoss, register the model",
        description="Mine pairs from the configured repositories (never from the gold of training.embedding.exclude_datasets), fine-tune "
        "training.embedding.base_model (default: embedding.model) on CPU, save a sentence-transformers directory, log the run to MLflow and "
        "register it as `models:/<training.embedding.model_name>@challenger`. Set `embedding.model` to that URI (or the directory) and re-index.",
    )
    e.add_argument("--max-steps", type=positive_int, default=None, metavar="N", help="optimiser steps (default: training.embedding.max_steps)")
    e.add_argument("--output", default=None, metavar="DIR", help="model directory (default: training.embedding.output_dir)")
    e.add_argument("--no-register", action="store_true", help="train and log, but do not register a model version")
    e.set_defaults(handler=cmd_embeddings_finetune)



def _registry(cfg):
    from codesense_ray.training.registry import StudentRegistry

    return StudentRegistry.from_config(cfg)


# --- golden ------------------------------------------------------------------------------------------
def cmd_golden(args: argparse.Namespace) -> int:
    from codesense_ray.training.golden import build_golden_set

    cfg = _load(args)
    report = build_golden_set(cfg, name=args.name, limit=args.limit)
    payload = report.to_dict()

    def human() -> None:
        print(f"golden set {payload['path']}: {payload['kept']} kept of {payload['read']} traces")
        for reason, n in sorted(payload["dropped"].items()):
            print(f"  dropped {n:>4}  {reason}")
        for reason, n in sorted(payload["skipped"].items()):
            print(f"  skipped {n:>4}  {reason} (not a codesense answer)")
        if payload["langfuse_dataset"]:
            print(f"Langfuse dataset {payload['langfuse_dataset']!r}: {payload['kept']} item(s)")

    emit(args, payload, human)
    return 0


# --- distill -----------------------------------------------------------------------------------------
def cmd_distill(args: argparse.Namespace) -> int:
    from codesense_ray.training.distill import run_distillation

    cfg = _load(args)
    card = run_distillation(cfg, limit=args.limit, name=args.name, dvc=not args.no_dvc, mlflow_log=not args.no_mlflow,
                            on_progress=None if args.json else _progress)
    payload = card

    def human() -> None:
        c = payload["counts"]
        print(f"dataset {payload['path']}: {c['train']} train, {c['validation']} validation "
              f"({c['kept_this_run']} new, {c['reused']} reused from earlier runs, {c['teacher_calls']} teacher calls)")
        for reason, n in sorted(payload["rejected"].items()):
            print(f"  rejected {n:>4}  {reason}")

    emit(args, payload, human)
    return 0


def _progress(done: int, total: int) -> None:
    print(f"\rdistill: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


# --- train -------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from codesense_ray.training.ray_train import check_run_name, fit, plan_training

    cfg = _load(args)
    check_run_name(args.run_name)
    spec = plan_training(cfg, max_steps=args.max_steps, dataset=args.dataset)
    try:
        result = fit(cfg, spec, run_name=args.run_name)
    finally:
        _shutdown_ray()
    registry = _registry(cfg)
    run_id = registry.log_training_run(result)
    payload: dict[str, Any] = {**result.to_dict(), "run_id": run_id, "version": None}
    if not args.no_register:
        tags = {"base_model": spec.base_model, "flavour": result.metrics.get("flavour"), "dataset": spec.train_path,
                "probe_loss": result.metrics.get("probe_loss"), "probe_loss_before": result.metrics.get("probe_loss_before")}
        info = registry.register(run_id, tags={k: v for k, v in tags.items() if v is not None})
        payload["version"] = info.version
        payload["model"] = registry.model_name

    def human() -> None:
        m = result.metrics
        print(f"trained {spec.base_model} ({m.get('flavour')}) for {m.get('step')} steps in {result.seconds:.1f}s on {spec.device}")
        print(f"  probe loss {m.get('probe_loss_before', float('nan')):.4f} → {m.get('probe_loss', float('nan')):.4f}; "
              f"{m.get('tokens_per_s', 0):.1f} tokens/s; peak memory {m.get('peak_memory_mb', 0):.0f} MB")
        print(f"  adapter {result.adapter_dir}; MLflow run {run_id}")
        if payload["version"]:
            print(f"  registered {registry.model_name} v{payload['version']} as `challenger` (next: codesense models compare)")

    emit(args, payload, human)
    return 0


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


# --- embeddings --------------------------------------------------------------------------------------
def cmd_embeddings_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesense_ray.training.embedding_finetune import finetune_embeddings, log_and_register

    cfg = _load(args)
    result = finetune_embeddings(cfg, max_steps=args.max_steps, output=Path(args.output).resolve() if args.output else None,
                                 on_step=None if args.json else _step_progress)
    if not args.json:
        print(file=sys.stderr)  # end the progress line
    payload = {**result.to_dict(), **log_and_register(cfg, result, register=not args.no_register)}

    def human() -> None:
        pairs = ", ".join(f"{n} {kind}" for kind, n in sorted(payload["pairs"].items()))
        print(f"mined {pairs} pairs ({payload['dropped'].get('excluded_gold', 0)} excluded as evaluation gold); "
              f"trained {payload['steps']} steps on {payload['train_pairs']} in {payload['seconds']:.0f}s")
        print(f"  probe recall@1 {payload['probe_recall_before']} → {payload['probe_recall_after']} on {payload['probe_pairs']} held-out pairs")
        print(f"  model {payload['model_dir']}; MLflow run {payload['run_id']}")
        if payload["uri"]:
            print(f"  registered {payload['model']} v{payload['version']}: set `embedding.model: {payload['uri']}` and re-index")

    emit(args, payload, human)
    return 0


def _step_progress(step: int, loss: float) -> None:
    print(f"\rfinetune: step {step} loss {loss:.4f}", end="", file=sys.stderr, flush=True)


# --- models ------------------------------------------------------------------------------------------
def cmd_models_list(args: argparse.Namespace) -> int:
    cfg = _load(args)
    registry = _registry(cfg)
    versions = registry.versions()
    payload = {"model": registry.model_name, "versions": [v.to_dict() for v in versions]}

    def human() -> None:
        if not versions:
            print(f"{registry.model_name}: no versions yet (run `codesense train`)")
        for v in versions:
            aliases = ",".join(v.aliases) or "-"
            ev = " ".join(f"{k}={val:.3f}" for k, val in sorted(v.eval_metrics.items()))
            print(f"v{v.version:<4} {aliases:<22} base={v.tags.get('base_model', '?')}  {ev}")

    emit(args, payload, human)
    return 0


def cmd_models_compare(args: argparse.Namespace) -> int:
    from codesense_ray.training.compare import run_comparison

    cfg = _load(args)
    candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    report = run_comparison(cfg, candidates=candidates, datasets=args.dataset, limit=args.limit, max_new_tokens=args.max_new_tokens, judge=args.judge)
    payload = report

    def human() -> None:
        from codesense_ray.training.compare import format_table

        print(format_table(payload["rows"] + payload["by_dataset"]))
        for s in payload.get("skipped", []):
            print(f"  skipped {s['candidate']}: {s['reason']}")
        print(f"MLflow run {payload['run_id']}")

    emit(args, payload, human)
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from codesense_ray.evaluation.gate import load_gates
    from codesense_ray.config.training import training_config

    cfg = _load(args)
    rules = load_gates(args.gate or cfg.resolve_path(training_config(cfg).registry.gate))
    result = _registry(cfg).promote(rules, version=args.version)
    emit(args, result, lambda: print(f"{result['model']}: champion → v{result['champion']} (was {result['previous'] and 'v' + str(result['previous']) or 'none'})"))
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    cfg = _load(args)
    result = _registry(cfg).rollback(to=args.to)
    emit(args, result, lambda: print(f"{result['model']}: champion → v{result['champion']} (rolled back from v{result['previous']})"))
    return 0
