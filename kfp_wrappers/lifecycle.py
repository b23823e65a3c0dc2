"""The full lifecycle DAG `codesense-lifecycle`: converge → index (candidate) → gate → golden set → distill →
fine-tune → compare → deploy canary → promote.

Every step is a thin component: the data and model steps submit a Ray job (`run_stage_in_component`: a RayJob
on KubeRay, or a job on a Ray head), the delivery steps call the Kubernetes API through `codesense rollout`.
Like a GitLab pipeline where `train` and `deploy` stages are gated by `rules:`, the training steps pass through
(`{"skipped": ...}`) when `train_student` is false, and the canary steps when there is no adapter to roll out —
so the DAG keeps one shape and the KFP UI shows every stage of every run.

Parameters (defaults from the `pipeline:` section at compile time):
    config, backend, ray_address   as in `codesense-rag`
    eval_dataset, eval_gate        the index gate (empty dataset: not gated)
    full_reindex                   re-embed everything
    train_student                  run golden set → distill → fine-tune → compare (needs the training stages)
    distill_limit, max_steps       0: the training section's defaults
    adapter_uri, adapter_version   roll out this adapter; empty: the registry's `challenger` after training
    env                            deployment environment (`dev`, `prod`, ...) of the rollout; empty: base
"""

# No `from __future__ import annotations`: KFP reads the parameter annotations as real types.
from kfp import dsl

from codesense_ray.config.orchestration import DEFAULT_IMAGE, PipelineConfig
from kfp_wrappers.components import build_code_index, converge_repositories
from kfp_wrappers.pipeline import _attach

LIFECYCLE_NAME = "codesense-lifecycle"


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def gate_index(config: str, dataset: str, gate: str = "gates.yaml", backend: str = "", ray_address: str = "", index_collection: str = "") -> dict:
    """Evaluate the freshly indexed collection on `dataset` against `gate` (Ray job jobs/evaluate.py); a metric below
    its threshold fails the step and stops the DAG. Empty `dataset`: nothing to gate on, the step passes through."""
    if not dataset:
        return {"skipped": "no evaluation dataset given"}
    from codesense_ray.orchestration.submission import run_stage_in_component

    args = ["--dataset", dataset] + (["--gate", gate] if gate else [])
    return run_stage_in_component("evaluate", config, backend, ray_address, args=args, metadata={"index_collection": index_collection})


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def golden_set_step(config: str, enabled: bool, backend: str = "", ray_address: str = "", after: dict = {}) -> dict:  # noqa: B006 - KFP default
    """`codesense dataset golden` as a Ray job: curate the golden set from answered-request traces."""
    if not enabled:
        return {"skipped": "train_student is false"}
    from codesense_ray.orchestration.submission import run_stage_in_component

    return run_stage_in_component("golden", config, backend, ray_address)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def distill_step(config: str, enabled: bool, limit: int = 0, backend: str = "", ray_address: str = "", after: dict = {}) -> dict:  # noqa: B006
    """`codesense distill` as a Ray job: teacher answers over the fresh index become the training set."""
    if not enabled:
        return {"skipped": "train_student is false"}
    from codesense_ray.orchestration.submission import run_stage_in_component

    return run_stage_in_component("distill", config, backend, ray_address, args=["--limit", str(limit)] if limit > 0 else [])


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def finetune_step(config: str, enabled: bool, max_steps: int = 0, backend: str = "", ray_address: str = "", after: dict = {}) -> dict:  # noqa: B006
    """`codesense train` as a Ray job (LoRA/QLoRA on Ray Train, GPU workers): registers the adapter as `challenger`."""
    if not enabled:
        return {"skipped": "train_student is false"}
    from codesense_ray.orchestration.submission import run_stage_in_component

    return run_stage_in_component("train", config, backend, ray_address, args=["--max-steps", str(max_steps)] if max_steps > 0 else [])


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def compare_step(config: str, enabled: bool, backend: str = "", ray_address: str = "", after: dict = {}) -> dict:  # noqa: B006
    """`codesense models compare` as a Ray job: champion vs challenger (vs base, teacher) on the golden set."""
    if not enabled:
        return {"skipped": "train_student is false"}
    from codesense_ray.orchestration.submission import run_stage_in_component

    return run_stage_in_component("compare", config, backend, ray_address)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def deploy_canary(config: str, adapter_uri: str = "", adapter_version: str = "", env: str = "", trained: dict = {}) -> dict:  # noqa: B006
    """`codesense rollout start`: the first canary step of the new adapter on the InferenceService, gated.

    The adapter is `adapter_uri`, else (after training) the registry's `challenger`. A failing gate rolls the
    canary back inside the command and fails this step. No adapter at all: nothing to deploy, pass through."""
    from codesense_ray.deployment.steps import registry_adapter, run_codesense

    if not adapter_uri and trained and not trained.get("skipped"):
        adapter_uri, adapter_version = registry_adapter(config, "challenger")
    if not adapter_uri:
        return {"skipped": "no adapter to roll out (set adapter_uri or train_student)"}
    args = ["rollout", "start", "--adapter-uri", adapter_uri] + (["--version", adapter_version] if adapter_version else []) + (["--env", env] if env else [])
    return run_codesense(args, config)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def promote_canary(config: str, canary: dict, env: str = "") -> dict:
    """`codesense rollout promote --all`: walk the remaining steps (gate between each) to 100%; then, when the
    adapter came from the registry, `codesense models promote` makes it the champion."""
    from codesense_ray.deployment.steps import run_codesense

    if canary.get("skipped"):
        return {"skipped": canary["skipped"]}
    result = run_codesense(["rollout", "promote", "--all"] + (["--env", env] if env else []), config)
    version = canary.get("candidate_version") or ""
    if version and canary.get("candidate_uri", "").startswith(("models:/", "s3://", "gs://", "mlflow-artifacts:")) and version.isdigit():
        try:
            result["registry"] = run_codesense(["models", "promote", "--version", version], config)
        except SystemExit:
            # The canary is live at 100% already; a registry without this version only loses the champion alias.
            result["registry"] = {"error": f"models promote --version {version} failed (see the log)"}
    return result


def build_lifecycle_pipeline(pcfg: "PipelineConfig | None" = None):
    """The `codesense-lifecycle` pipeline function with defaults, image and secrets from `pcfg`."""
    pcfg = pcfg or PipelineConfig()

    @dsl.pipeline(
        name=LIFECYCLE_NAME,
        description="codesense CI/CT/CD: converge → index → gate → golden/distill → fine-tune → compare → canary → promote.",
    )
    def codesense_lifecycle(
        config: str = pcfg.config_path,
        backend: str = pcfg.backend,
        ray_address: str = pcfg.ray_address,
        eval_dataset: str = pcfg.eval_dataset,
        eval_gate: str = "gates.yaml",
        full_reindex: bool = False,
        train_student: bool = True,
        distill_limit: int = 0,
        max_steps: int = 0,
        adapter_uri: str = "",
        adapter_version: str = "",
        env: str = "",
    ) -> dict:
        common = {"config": config, "backend": backend, "ray_address": ray_address}
        converge = _attach(converge_repositories(**common), pcfg, "converge repositories")
        index = _attach(build_code_index(**common, data_version=converge.outputs["data_version"], full=full_reindex), pcfg, "index (candidate)")
        gate = _attach(gate_index(**common, dataset=eval_dataset, gate=eval_gate).after(index), pcfg, "gate the index")
        golden = _attach(golden_set_step(**common, enabled=train_student, after=gate.output), pcfg, "golden set")
        distill = _attach(distill_step(**common, enabled=train_student, limit=distill_limit, after=golden.output), pcfg, "distill")
        tuned = _attach(finetune_step(**common, enabled=train_student, max_steps=max_steps, after=distill.output), pcfg, "fine-tune")
        compared = _attach(compare_step(**common, enabled=train_student, after=tuned.output), pcfg, "compare models")
        canary = _attach(
            deploy_canary(config=config, adapter_uri=adapter_uri, adapter_version=adapter_version, env=env, trained=tuned.output).after(compared),
            pcfg,
            "deploy canary",
        )
        promoted = _attach(promote_canary(config=config, canary=canary.output, env=env), pcfg, "promote")
        return promoted.output

    return codesense_lifecycle


def compile_lifecycle(output: str, pcfg: "PipelineConfig | None" = None) -> str:
    """Write the lifecycle pipeline's IR YAML (upload it to KFP, or schedule it like `codesense-rag`)."""
    from pathlib import Path

    from kfp import compiler

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_lifecycle_pipeline(pcfg), package_path=str(out))
    return str(out)


def schedule_lifecycle(cfg, cron: str | None = None, *, host: str | None = None, experiment: str | None = None, **kwargs) -> dict:
    """Create (or replace) the recurring run of `codesense-lifecycle` on KFP, like `codesense pipeline schedule` does
    for `codesense-rag` (same experiment, secrets and image from the `pipeline:` section)."""
    from codesense_ray.config import config_from_dict
    from codesense_ray.orchestration.kfp_runs import schedule_pipeline
    from codesense_ray.config.orchestration import section

    pcfg = section(cfg, "pipeline", PipelineConfig)
    data = cfg.model_dump(mode="json")
    data["pipeline"] = {**pcfg.model_dump(mode="json"), "name": LIFECYCLE_NAME, "recurring_run_name": f"{LIFECYCLE_NAME}-schedule"}
    lifecycle_cfg = config_from_dict(data, cfg.base_dir)
    return schedule_pipeline(lifecycle_cfg, cron, host=host, experiment=experiment, compile_pipeline=lambda path, p: compile_lifecycle(str(path), p), **kwargs)


def main(argv: "list[str] | None" = None) -> int:
    """`python -m kfp_wrappers.lifecycle compile --output FILE` / `schedule --cron "0 3 * * 0" [--host URL]`."""
    import argparse
    import json

    from codesense_ray.config import load_config
    from codesense_ray.errors import CodesenseError
    from codesense_ray.config.orchestration import section

    parser = argparse.ArgumentParser(prog="python -m kfp_wrappers.lifecycle", description="compile or schedule the codesense-lifecycle pipeline")
    parser.add_argument("action", choices=["compile", "schedule"])
    parser.add_argument("--config", default=None, help="codesense.yaml (its `pipeline:` section sets image, secrets, host)")
    parser.add_argument("--output", default=f"{LIFECYCLE_NAME}.yaml", help="compile: IR YAML file to write")
    parser.add_argument("--cron", default=None, help="schedule: cron (5 fields, or KFP's 6); default pipeline.schedule")
    parser.add_argument("--host", default=None, help="schedule: KFP API endpoint (default pipeline.host)")
    parser.add_argument("--experiment", default=None, help="schedule: KFP experiment (default pipeline.experiment)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.action == "compile":
            print(compile_lifecycle(args.output, section(cfg, "pipeline", PipelineConfig)))
        else:
            print(json.dumps(schedule_lifecycle(cfg, args.cron, host=args.host, experiment=args.experiment), indent=2))
    except CodesenseError as err:
        print(f"codesense: error: {err}", file=__import__("sys").stderr)
        return err.exit_code
    return 0


codesense_lifecycle = build_lifecycle_pipeline()
"""The lifecycle pipeline with default settings."""

if __name__ == "__main__":
    raise SystemExit(main())
