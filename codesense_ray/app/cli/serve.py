"""`codesense serve`: the Ray Serve HTTP app on a local Ray, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from codesense_ray.app.cli.common import load_config_from_args as _load
from codesense_ray.app.cli.index import _shutdown_ray


def cmd_serve(args: argparse.Namespace) -> int:
    import signal

    cfg = _load(args)
    if args.port:
        cfg.serve.port = args.port
    if args.host:
        cfg.serve.host = args.host
    from ray import serve

    from codesense_ray.index.pipeline import init_ray
    from codesense_ray.app.serve.app import build_app

    app = build_app(cfg)  # validates settings (replicas, auth token env) before anything starts
    init_ray(cfg)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve.start(http_options={"host": cfg.serve.host, "port": cfg.serve.port, "request_timeout_s": cfg.serve.request_timeout_s})
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


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run the Ray Serve HTTP app (POST /v1/ask, /v1/search; GET /healthz, /metrics)",
        description="Start a local Ray, deploy ingress → retriever → generator, and serve until Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: serve.port, 8000)")
    p.add_argument("--host", default=None, help="listen address (default: serve.host, 127.0.0.1)")
    p.set_defaults(handler=cmd_serve)
