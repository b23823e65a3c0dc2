"""A local Langfuse speaking the public API the feedback store uses: `GET /api/public/v2/observations?traceId=`
(empty for an unknown trace) and `POST /api/public/scores` (batched scores, 202), Basic auth — for the real SDK."""

from __future__ import annotations

from typing import Any

from tests.cpu.integration.answering.fake_servers import Request, Response, json_response, start


def langfuse_scores_route(state: dict[str, Any]):
    state.setdefault("traces", set())
    state.setdefault("scores", [])

    def route(req: Request) -> Response:
        if not req.headers.get("authorization", "").startswith("Basic "):
            return json_response({"message": "unauthorized"}, 401)
        if req.method == "GET" and req.path == "/api/public/v2/observations":
            trace_id = (req.query.get("traceId") or [""])[0]
            state.setdefault("lookups", []).append(trace_id)
            data = [{"id": "obs-1", "traceId": trace_id, "projectId": "codesense", "type": "CHAIN", "name": "ask", "startTime": "2026-11-29T10:00:00.000Z"}]
            return json_response({"data": data if trace_id in state["traces"] else [], "meta": {"cursor": None}})
        if req.method == "POST" and req.path == "/api/public/scores":
            body = req.json()
            state["scores"].extend(body if isinstance(body, list) else body.get("scores", [body]))
            return json_response({"message": "Accepted"}, 202)
        return json_response({"message": f"no route {req.method} {req.path}"}, 404)

    return route


def start_langfuse(**state: Any):
    return start(langfuse_scores_route, **state)
