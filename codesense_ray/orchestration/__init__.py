"""Orchestration: converge repositories into `data/raw` (versioned with DVC), submit Ray jobs (to a Ray
head or as KubeRay `RayJob`s), and drive the `codesense-rag` Kubeflow pipeline.

DevOps picture: `converge` is `terraform apply` for source checkouts, a Ray job is a CI job sent to a
runner, a `RayJob` is a Kubernetes Job that brings its own cluster, and the KFP pipeline is the CI
pipeline whose stages are those jobs.

Nothing heavy is imported here: `ray`, `kubernetes`, `kfp` and `dvc` load inside the code that uses them.
"""

from codesense_ray.config.orchestration import (
    ConvergeConfig,
    DvcConfig,
    JobsConfig,
    KubeRayConfig,
    PipelineConfig,
    S3RemoteConfig,
    WorkerGroupConfig,
)

__all__ = [
    "ConvergeConfig",
    "DvcConfig",
    "JobsConfig",
    "KubeRayConfig",
    "PipelineConfig",
    "S3RemoteConfig",
    "WorkerGroupConfig",
]
