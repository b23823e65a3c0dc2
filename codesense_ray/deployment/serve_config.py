"""The Ray Serve config (`serveConfigV2` of the RayService) generated from `codesense.yaml` — never kept by hand.

It places the same app `codesense serve` runs locally (`codesense_ray.app.serve.app:app_builder`) on the cluster's
Serve proxies and mirrors the replica / autoscaling settings of the `serve:` section per deployment, so the
RayService and `codesense serve` cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import yaml

APP_NAME = "codesense"
IMPORT_PATH = "codesense_ray.app.serve.app:app_builder"


def _scaling(cfg: Any, replicas: int) -> dict[str, Any]:
    s = cfg.serve
    if s.autoscaling:
        return {"autoscaling_config": {"min_replicas": s.min_replicas, "max_replicas": s.max_replicas, "target_ongoing_requests": s.target_ongoing_requests}}
    return {"num_replicas": replicas}


def retriever_in_ingress(cfg: Any) -> bool:
    """Whether the retriever runs inside the ingress replica (`serve.colocate_retriever`; by default with embedded
    Qdrant, which admits one process anyway, so a separate deployment only adds a hop per request)."""
    colocate = cfg.serve.colocate_retriever
    return not cfg.qdrant.url if colocate is None else colocate


def ingress_num_cpus(cfg: Any) -> float:
    """The ingress only routes and verifies (a small share), unless it also runs the query embedding."""
    return cfg.serve.retriever_num_cpus if retriever_in_ingress(cfg) else 0.25


def build_serve_config(cfg: Any, config_path: str) -> dict[str, Any]:
    """Serve's declarative config (what `serve deploy` takes) for the RAG app reading `config_path` in the pod."""
    s = cfg.serve
    deployments: list[dict[str, Any]] = [{"name": "ingress", "num_replicas": s.ingress_replicas, "ray_actor_options": {"num_cpus": ingress_num_cpus(cfg)}}]
    if not retriever_in_ingress(cfg):
        deployments.append({"name": "retriever", **_scaling(cfg, s.retriever_replicas), "ray_actor_options": {"num_cpus": s.retriever_num_cpus}})
    if cfg.generator.backend != "extractive":
        is_local = cfg.generator.backend == "local"
        options = {"num_cpus": s.generator_num_cpus or (1.0 if is_local else 0.25), "num_gpus": s.generator_num_gpus if is_local else 0}
        deployments.append({"name": "generator", **_scaling(cfg, s.generator_replicas), "ray_actor_options": options})
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": 8000, "request_timeout_s": s.request_timeout_s},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": {"config": config_path},
                "runtime_env": {"env_vars": {"CODESENSE_CONFIG": config_path}},
                "deployments": deployments,
            }
        ],
    }


def serve_config_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
