"""The `codesense-rag` pipeline: converge → index → (evaluate), each stage a Ray job.

A KFP pipeline is a CI pipeline whose stages are containers; here each stage container only submits a
Ray job and waits (see components.py). Later issues append dataset generation, fine-tuning and
deployment to the same DAG.

Parameters (defaults come from the `pipeline:` section of codesense.yaml at compile time):
    config        codesense.yaml as the component pods see it.
    backend       `kuberay` (a RayJob per stage, the cluster default) or `ray-jobs` (a running head).
    ray_address   dashboard URL for `ray-jobs`; empty: `jobs.ray_address` from the config.
    eval_dataset  JSONL evaluation set; empty: the index is promoted ungated and the pipeline ends there.
    eval_gate     gates.yaml of minimum metric values, applied to the candidate index BEFORE its alias swap:
                  a metric below it fails the index step and the previous index keeps serving.
    full_reindex  re-embed everything instead of reusing unchanged chunks.
    train_student after indexing: golden set + distillation → fine-tune (Ray Train) → compare (registry `challenger`).

Secrets and endpoints are attached here, never read by component logic: every step gets the secrets
of `pipeline.secrets` as env vars (`kfp.kubernetes.use_secret_as_env`; by default the Ray dashboard token).
"""

# No `from __future__ import annotations`: KFP reads the parameter annotations as real types.
from kfp import dsl, kubernetes

from codesense_ray.config.orchestration import PipelineConfig
from kfp_wrappers.components import build_code_index, build_golden_set, compare_models, converge_repositories, distill_dataset, evaluate_rag, finetune


def _attach(task: dsl.PipelineTask, pcfg: PipelineConfig, display_name: str) -> dsl.PipelineTask:
    task.set_display_name(display_name)
    # Inputs of these steps live outside KFP (git remotes, the index): a cache hit would skip real work.
    task.set_caching_options(False)
    task.set_container_image(pcfg.image)
    for secret in pcfg.secrets:
        kubernetes.use_secret_as_env(task, secret_name=secret.secret, secret_key_to_env=dict(secret.keys), optional=secret.optional)
    return task


def build_pipeline(pcfg: "PipelineConfig | None" = None):
    """The `codesense-rag` pipeline function with defaults, image and secrets from `pcfg`."""
    pcfg = pcfg or PipelineConfig()

    @dsl.pipeline(name=pcfg.name, description="codesense: converge repositories (git + DVC) → build the code index → evaluate, as Ray jobs.")
    def codesense_rag(
        config: str = pcfg.config_path,
        backend: str = pcfg.backend,
        ray_address: str = pcfg.ray_address,
        eval_dataset: str = pcfg.eval_dataset,
        eval_gate: str = "gates.yaml",
        full_reindex: bool = False,
        train_student: bool = False,
    ) -> dict:
        converge = _attach(converge_repositories(config=config, backend=backend, ray_address=ray_address), pcfg, "converge repositories")
        index = _attach(
            build_code_index(
                config=config, backend=backend, ray_address=ray_address, data_version=converge.outputs["data_version"], full=full_reindex,
                gate=eval_gate, dataset=eval_dataset,
            ),  # fmt: skip
            pcfg,
            "build code index",
        )
        with dsl.If(eval_dataset != "", name="evaluation-dataset-given"):
            # The gate already held the candidate back before promotion; this step records the promoted index's metrics.
            _attach(evaluate_rag(config=config, dataset=eval_dataset, gate="", backend=backend, ray_address=ray_address).after(index), pcfg, "evaluate RAG")
        with dsl.If(train_student == True, name="train-student"):  # noqa: E712 - a KFP condition, not a Python comparison
            golden = _attach(build_golden_set(config=config, backend=backend, ray_address=ray_address).after(index), pcfg, "build golden set")
            distilled = _attach(distill_dataset(config=config, backend=backend, ray_address=ray_address).after(index), pcfg, "distill dataset")
            tuned = _attach(finetune(config=config, backend=backend, ray_address=ray_address).after(distilled), pcfg, "fine-tune student")
            _attach(compare_models(config=config, backend=backend, ray_address=ray_address).after(tuned, golden), pcfg, "compare models")
        return index.output

    return codesense_rag


codesense_rag = build_pipeline()
"""The pipeline with default settings (what `python -m kfp_wrappers.compile` compiles without a config)."""
