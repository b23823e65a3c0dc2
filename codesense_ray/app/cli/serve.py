"""`codesense serve`: the Ray Serve HTTP app on a local Ray, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from codesense_ray.app.cli.common import load_config_from_args as _load
from codesense_ray.app.cli.index import _shutdown_ray
from codesense_ray.errors import CodesenseError


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    cfg = _load(args)
    if args.port:
        cfg.serve.port = args.port
    if args.host:
        cfg.serve.host = args.host
    direct = direct_ingress(cfg)
    proxy_port = cfg.serve.port
    if direct:
        # Read by Ray's processes at import: set before Ray starts, so the local raylet's workers inherit it.
        from codesense_ray.orchestration.local_ray import free_port

        proxy_port = free_port()  # Serve still starts its proxy; it idles on a private port
        os.environ.update(
            RAY_SERVE_ENABLE_DIRECT_INGRESS="1",
            RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=str(cfg.serve.port),
            RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT=str(cfg.serve.port + 1),
            # No load balancer has to take the replica out of rotation first: stopping drains in-flight requests
            # only, instead of Ray's 30 s minimum.
            RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S="0",
        )
    from ray import serve

    from codesense_ray.index.pipeline import init_ray
    from codesense_ray.app.serve.app import build_app

    app = build_app(cfg)  # validates settings (replicas, auth token env) before anything starts
    init_ray(cfg)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve.start(http_options={"host": cfg.serve.host, "port": proxy_port, "request_timeout_s": cfg.serve.request_timeout_s})
        serve.run(app, name="codesense", route_prefix="/", blocking=False)
        print(f"codesense: serving on http://{cfg.serve.host}:{cfg.serve.port} (POST /v1/ask, /v1/search; GET /healthz, /metrics)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        _shutdown_ray()
    return 0


def direct_ingress(cfg) -> bool:
    """Whether the ingress replica listens on `serve.port` itself (`serve.direct_ingress`): Ray Serve's direct
    ingress removes the proxy hop. It needs the env of the Ray processes, so only a Ray this command starts."""
    joins_cluster = bool(cfg.ray.address or os.environ.get("RAY_ADDRESS"))
    wanted = cfg.serve.direct_ingress
    if wanted is None:
        return not joins_cluster and cfg.serve.ingress_replicas == 1
    if wanted and joins_cluster:
        raise CodesenseError("serve.direct_ingress: needs the Ray that `codesense serve` starts; on a cluster set RAY_SERVE_ENABLE_DIRECT_INGRESS in the Ray pods' env")
    if wanted and cfg.serve.ingress_replicas > 1:
        raise CodesenseError("serve.direct_ingress: one ingress replica owns serve.port; more need the Serve proxy (set direct_ingress: false)")
    return wanted


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the Ray Serve HTTP app (POST /v1/ask, /v1/search; GET /healthz, /metrics)",
        description="Start a local Ray, deploy the ingress (holding the retriever with embedded Qdrant) and the generator, and serve until Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: serve.port, 8000)")
    p.add_argument("--host", default=None, help="listen address (default: serve.host, 127.0.0.1)")
    p.set_defaults(handler=cmd_serve)
