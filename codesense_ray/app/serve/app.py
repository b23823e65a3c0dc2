"""Ray Serve application (adapter): ingress (FastAPI) → retriever deployment → generator deployment.

A small service mesh inside one app: each deployment scales on its own (the retriever holds the embedding
model and the Qdrant client, the generator the LLM or its client), and the ingress talks to them through
deployment handles. With embedded Qdrant (one process anyway) the retriever runs inside the ingress replica
instead: the same class behind a local handle, one hop less per request (`serve.colocate_retriever`).
Nothing binds at import time: `build_app(config)` does, so `serve run` and `codesense serve` build the same
graph from `codesense.yaml`. The pieces: `http.py` (wire format, routes), `deployments.py` (replicas and
handles), `metrics.py`, `chat.py` (OpenAI-compatible routes), `instrumentation.py` (monitoring hooks and
`/v1/feedback`).

    serve run serve_configs/local.yaml           # or: codesense serve --port 8000
"""

from __future__ import annotations

from ray import serve

from codesense_ray.app.serve.deployments import GeneratorDeployment, Ingress, RetrieverDeployment
from codesense_ray.app.serve.http_guard import require_auth_token
from codesense_ray.config import Config
from codesense_ray.deployment.serve_config import ingress_num_cpus, retriever_in_ingress
from codesense_ray.errors import CodesenseError

def _autoscaling(cfg: Config, replicas: int) -> dict:
    s = cfg.serve
    if s.autoscaling:
        return {"autoscaling_config": {"min_replicas": s.min_replicas, "max_replicas": s.max_replicas, "target_ongoing_requests": s.target_ongoing_requests}}
    return {"num_replicas": replicas}


def build_app(cfg: Config):
    """Bind the deployment graph for `cfg`. The only place Serve decorators are applied."""
    config = cfg.model_dump(mode="json") | {"__base_dir__": str(cfg.base_dir)}
    retriever_replicas = cfg.serve.retriever_replicas
    if not cfg.qdrant.url and (retriever_replicas > 1 or cfg.serve.autoscaling):
        raise CodesenseError("serve.retriever_replicas: embedded Qdrant allows one process; set qdrant.url to scale the retriever")
    s = cfg.serve
    colocated = retriever_in_ingress(cfg)
    if colocated and not cfg.qdrant.url and s.ingress_replicas > 1:
        raise CodesenseError("serve.ingress_replicas: the ingress holds embedded Qdrant (serve.colocate_retriever); set qdrant.url to run more than one")
    # Async replicas queue waiting requests themselves (cheaply, in order); Ray's default of 5 in flight left the
    # rest retrying in the proxy's router with exponential backoff — the collapse at 32 concurrent clients.
    ongoing = {"max_ongoing_requests": s.max_ongoing_requests}
    retriever = None  # colocated: the ingress builds the retriever in its own process
    if not colocated:
        retriever = serve.deployment(
            RetrieverDeployment, name="retriever", ray_actor_options={"num_cpus": s.retriever_num_cpus}, **ongoing, **_autoscaling(cfg, retriever_replicas)
        ).bind(config)
    generator = None
    if cfg.generator.backend != "extractive":
        is_local = cfg.generator.backend == "local"
        options = {"num_cpus": s.generator_num_cpus or (1.0 if is_local else 0.25), "num_gpus": s.generator_num_gpus if is_local else 0}
        generator = serve.deployment(GeneratorDeployment, name="generator", ray_actor_options=options, **_autoscaling(cfg, s.generator_replicas)).bind(config)
    token = require_auth_token(s.auth_token_env)  # set but empty/unset: refuse to start, never serve open
    ingress = serve.deployment(
        serve.ingress()(Ingress), name="ingress", num_replicas=s.ingress_replicas, ray_actor_options={"num_cpus": ingress_num_cpus(cfg)}, **ongoing
    )
    return ingress.bind(retriever, generator, config, token)


def app_builder(args: dict[str, str]):
    """`serve run codesense_ray.app.serve.app:app_builder config=codesense.yaml` (and serve_configs/local.yaml)."""
    from codesense_ray.config import load_config

    return build_app(load_config(args.get("config")))
