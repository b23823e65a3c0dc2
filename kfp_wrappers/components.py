"""Thin KFP components: each submits one codesense stage as a Ray job and returns the stage's JSON summary.

A component is a CI job step whose container is the codesense image: it does not clone, index or
evaluate itself — it hands the work to Ray (`backend="ray-jobs"`: the Job Submission API of a head;
`backend="kuberay"`: a RayJob with its own cluster) and waits, streaming the job's log into the step's
log. A failed job fails the step with the job's last log lines; an unreachable Ray head fails it within
`jobs.connect_timeout_s`.

Parameters shared by all three:
    config: codesense.yaml as the component's pod sees it (in the image: /app/codesense.yaml).
    backend: `ray-jobs` or `kuberay`; empty means `jobs.backend` from the config.
    ray_address: dashboard URL for `ray-jobs`; empty means `jobs.ray_address` from the config.

Imports sit inside the functions: KFP ships only the function's source to the pod, and the image has
codesense installed. `install_kfp_package=False` because the image already carries kfp (no pip at run time).
"""

# No `from __future__ import annotations`: KFP reads the real annotation objects (NamedTuple outputs).
from typing import NamedTuple

from kfp import dsl

from codesense_ray.config.orchestration import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def converge_repositories(
    config: str, backend: str = "", ray_address: str = ""
) -> NamedTuple("ConvergeOutputs", [("data_version", str), ("summary", dict)]):
    """Clone the `url:` repositories into data/raw/ and push the new DVC version (Ray job jobs/converge.py).

    Outputs `data_version` (the DVC hash of data/raw; empty when DVC is off) for the index step's lineage,
    and `summary` (the job result and `codesense converge --json`).
    """
    from collections import namedtuple

    from codesense_ray.orchestration.submission import run_stage_in_component

    result = run_stage_in_component("converge", config, backend, ray_address)
    summary = result.get("summary") or {}
    outputs = namedtuple("ConvergeOutputs", ["data_version", "summary"])
    return outputs(summary.get("data_version") or "", result)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def build_code_index(
    config: str, backend: str = "", ray_address: str = "", data_version: str = "", full: bool = False, gate: str = "", dataset: str = ""
) -> dict:
    """Chunk, embed and store the repositories into Qdrant with an alias swap (Ray job jobs/index.py).

    `data_version` is the DVC hash the converge step produced; it is recorded in the job's metadata so a
    Ray job (and the KFP run) says which snapshot of the code it indexed. `full` re-embeds everything.
    With `gate` (gates.yaml) and `dataset` (JSONL), the candidate version is evaluated before the alias moves:
    a failing gate fails the step and the previous index keeps serving (`codesense index --gate`).
    """
    from codesense_ray.orchestration.submission import run_stage_in_component

    args = ["--full"] if full else []
    if gate and dataset:
        args += ["--gate", gate, "--dataset", dataset]
    return run_stage_in_component("index", config, backend, ray_address, args=args, metadata={"data_version": data_version})


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def evaluate_rag(config: str, dataset: str, gate: str = "gates.yaml", backend: str = "", ray_address: str = "", index_collection: str = "") -> dict:
    """Run `codesense eval --dataset DATASET --gate GATE` (Ray job jobs/evaluate.py): the quality gate of the pipeline.

    A metric below its threshold fails the job (exit 1), so the step fails and nothing after it runs — a
    failing quality check blocks the deploy like a failing CI job. An empty `gate` only measures.
    """
    from codesense_ray.orchestration.submission import run_stage_in_component

    args = ["--dataset", dataset] + (["--gate", gate] if gate else [])
    return run_stage_in_component("evaluate", config, backend, ray_address, args=args, metadata={"index_collection": index_collection})


# --- the student model (training issue): golden set → distillation → fine-tuning → comparison ---------------
@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def build_golden_set(config: str, backend: str = "", ray_address: str = "", index_collection: str = "") -> dict:
    """Curate data/golden/<name>.jsonl from answered-request traces (Ray job jobs/golden.py); counts by reason."""
    from codesense_ray.orchestration.submission import run_stage_in_component

    return run_stage_in_component("golden", config, backend, ray_address, metadata={"index_collection": index_collection})


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def distill_dataset(config: str, limit: int = 0, backend: str = "", ray_address: str = "", index_collection: str = "") -> dict:
    """Distil data/training/<name>/ from the teacher over the fresh index (Ray job jobs/distill.py). Resumable:
    a retried step continues from the dataset's ledger. `limit` 0 means `training.distill.max_questions`."""
    from codesense_ray.orchestration.submission import run_stage_in_component

    args = ["--limit", str(limit)] if limit > 0 else []
    return run_stage_in_component("distill", config, backend, ray_address, args=args, metadata={"index_collection": index_collection})


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def finetune(config: str, max_steps: int = 0, backend: str = "", ray_address: str = "") -> dict:
    """LoRA/QLoRA on Ray Train; registers the adapter as the `challenger` (Ray job jobs/train.py).
    `max_steps` 0 means `training.train.max_steps`."""
    from codesense_ray.orchestration.submission import run_stage_in_component

    args = ["--max-steps", str(max_steps)] if max_steps > 0 else []
    return run_stage_in_component("train", config, backend, ray_address, args=args)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def compare_models(config: str, candidates: str = "champion,challenger,base,teacher", limit: int = 0, backend: str = "", ray_address: str = "") -> dict:
    """Champion vs challenger (and base, teacher) on the golden set and the validation split (Ray job
    jobs/compare_models.py); the challenger's numbers land on its registry version for `models promote`."""
    from codesense_ray.orchestration.submission import run_stage_in_component

    args = ["--candidates", candidates] + (["--limit", str(limit)] if limit > 0 else [])
    return run_stage_in_component("compare", config, backend, ray_address, args=args)
