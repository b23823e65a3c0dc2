"""`codesense explain` and `codesense mcp` (adapters). Wired into the main parser with `register(sub, common)`."""

from __future__ import annotations

import argparse
from typing import Any

from codesense_ray.app.cli.common import positive_int


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="the ML concepts codesense uses, each through a DevOps analogy (same text as docs/)",
        description="Without CONCEPT: list every concept with its one-line analogy. With CONCEPT (a key such as `rrf`, "
        "`embeddings`, `alias-swap`, or a unique word of one): print its section of the docs.",
    )
    p.add_argument("concept", nargs="?", metavar="CONCEPT", help="the concept to explain; omit to list them all")
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser(
        "mcp",
        parents=[common],
        help="MCP server for IDE agents: tools search_code, ask_codebase, read_lines; repositories as resources",
        description="Serve the live index over the Model Context Protocol. stdio (default): an IDE starts this command "
        "and talks over stdin/stdout. http: streamable HTTP at http://HOST:PORT/mcp, bearer token from serve.auth_token_env. "
        "Loads the embedding model in this process (with embedded Qdrant, stop other codesense processes first).",
    )
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="stdio (default) or streamable HTTP")
    p.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default 127.0.0.1; others need the token)")
    p.add_argument("--port", type=positive_int, default=8765, help="HTTP port (default 8765)")
    p.set_defaults(handler=cmd_mcp)


def cmd_explain(args: argparse.Namespace) -> int:
    from codesense_ray.app.cli.common import emit
    from codesense_ray.interfaces.explain import find_concept, load_concepts, render_concept, render_list

    concepts = load_concepts()
    if args.concept is None:
        emit(args, {"concepts": [c.to_dict() for c in concepts]}, lambda: print(render_list(concepts)))
        return 0
    concept = find_concept(concepts, args.concept)
    emit(args, concept.to_dict(), lambda: print(render_concept(concept)))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    import sys

    from codesense_ray.config import load_config, resolve_secret
    from codesense_ray.interfaces.mcp_server import build_mcp_server, build_tools, check_http_exposure, serve_http

    cfg = load_config(args.config)
    token = resolve_secret(cfg.serve.auth_token_env) if args.transport == "http" else None
    if args.transport == "http":
        check_http_exposure(args.host, token, cfg.serve.auth_token_env)
    tools = build_tools(cfg)  # index missing, store locked, bad config: one-line errors before serving
    server = build_mcp_server(tools)
    repos = ", ".join(r["id"] for r in tools.repositories())
    try:
        if args.transport == "stdio":
            print(f"codesense mcp: stdio, repositories: {repos}", file=sys.stderr, flush=True)
            server.run("stdio")
        else:
            auth = "bearer token" if token else "no auth (loopback only)"
            print(f"codesense mcp: http://{args.host}:{args.port}/mcp ({auth}), repositories: {repos}", file=sys.stderr, flush=True)
            serve_http(server, args.host, args.port, token)
    finally:
        tools.answerer.tracer.flush()  # traces of ask_codebase calls still buffered
    return 0
