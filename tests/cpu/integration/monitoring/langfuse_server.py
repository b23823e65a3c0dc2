"""Local Langfuse servers for the real SDK (Basic auth):

- `start_langfuse`: the minimum the feedback store uses — `GET /api/public/v2/observations?traceId=` (empty for
  an unknown trace) and `POST /api/public/scores` (batched scores, 202);
- `start_langfuse_api`: a Langfuse that serves back what was ingested — OTLP spans from the tracer become
  observations (`GET /api/public/v2/observations`: filters, field groups, cursor pages, newest first), scores are
  stored and listed (`GET /api/public/v3/scores`), datasets and dataset items are created (upserts).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from tests.cpu.integration.answering.fake_servers import LangfuseState, Request, Response, _attr_value, json_response, langfuse_route, start


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


# --- the read path: a Langfuse that serves back what the SDK ingested ---------------------------------------
def _iso(ns_or_dt: Any) -> str:
    value = ns_or_dt if isinstance(ns_or_dt, dt.datetime) else dt.datetime.fromtimestamp(ns_or_dt / 1e9, tz=dt.timezone.utc)
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _arg(req: Request, name: str) -> str | None:
    return (req.query.get(name) or [None])[0]


OBSERVATION_GROUPS = {
    "basic": ("name", "level", "statusMessage", "version", "environment", "isRootObservation"),
    "io": ("input", "output"),
    "metadata": ("metadata",),
    "model": ("model",),
    "usage": ("usageDetails",),
    "metrics": ("latency",),
}


def observation_from_span(span: Any, shift_s: float = 0.0) -> dict[str, Any]:
    """What Langfuse stores for one OTLP span of its SDK: typed observation, raw-string input/output, metadata keys."""
    attrs = {a.key: _attr_value(a.value) for a in span.attributes}
    prefix = "langfuse.observation.metadata."
    start, end = span.start_time_unix_nano + int(shift_s * 1e9), span.end_time_unix_nano + int(shift_s * 1e9)
    parent = span.parent_span_id.hex() or None
    usage = attrs.get("langfuse.observation.usage_details")
    return {
        "id": span.span_id.hex(), "traceId": span.trace_id.hex(), "projectId": "codesense", "parentObservationId": parent,
        "type": str(attrs.get("langfuse.observation.type", "span")).upper(), "startTime": _iso(start), "endTime": _iso(end),
        "name": span.name, "level": attrs.get("langfuse.observation.level", "DEFAULT"), "statusMessage": attrs.get("langfuse.observation.status_message"),
        "version": None, "environment": "default", "isRootObservation": parent is None or bool(attrs.get("langfuse.internal.is_app_root")),
        "input": attrs.get("langfuse.observation.input"), "output": attrs.get("langfuse.observation.output"),
        "metadata": {k.removeprefix(prefix): v for k, v in attrs.items() if k.startswith(prefix)},
        "model": attrs.get("langfuse.observation.model.name"), "usageDetails": json.loads(usage) if usage else None,
        "latency": (end - start) / 1e9,
    }


def _select(obs: dict[str, Any], fields: str | None, expand: set[str]) -> dict[str, Any]:
    """Only the requested field groups (default core + basic); metadata values over 200 characters truncated unless expanded."""
    out = {k: obs[k] for k in ("id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type")}
    for group in (fields or "core,basic").split(","):
        for key in OBSERVATION_GROUPS.get(group.strip(), ()):
            out[key] = obs[key]
    if "metadata" in out:
        out["metadata"] = {k: v if k in expand or len(str(v)) <= 200 else str(v)[:200] for k, v in out["metadata"].items()}
    return out


def _page(items: list[dict[str, Any]], req: Request, max_limit: int, default: int = 50) -> Response:
    """Cursor pagination as Langfuse does it: an opaque cursor while more remain, none on the last page; 400 above the limit."""
    limit = int(_arg(req, "limit") or default)
    if not 1 <= limit <= max_limit:
        return json_response({"message": f"limit must be between 1 and {max_limit}"}, 400)
    cursor = _arg(req, "cursor")
    offset = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
    rest = offset + limit < len(items)
    meta: dict[str, Any] = {"cursor": base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if rest else None, "limit": limit}
    return json_response({"data": items[offset:offset + limit], "meta": meta})


def _observations(state: dict[str, Any], req: Request) -> Response:
    lf: LangfuseState = state["langfuse"]
    shifts = state.setdefault("shift_s", {})
    rows = [observation_from_span(s, shifts.get(s.trace_id.hex(), 0.0)) for s in lf.spans]
    tests = {
        "traceId": lambda o, v: o["traceId"] == v, "name": lambda o, v: o["name"] == v, "type": lambda o, v: o["type"] == v.upper(),
        "isRootObservation": lambda o, v: o["isRootObservation"] == (v == "true"),
        "fromStartTime": lambda o, v: _when(o["startTime"]) >= _when(v), "toStartTime": lambda o, v: _when(o["startTime"]) < _when(v),
    }
    for key, test in tests.items():
        value = _arg(req, key)
        if value is not None:
            rows = [o for o in rows if test(o, value)]
    rows.sort(key=lambda o: o["startTime"], reverse=True)  # newest first
    expand = set((_arg(req, "expandMetadata") or "").split(","))
    state.setdefault("observation_queries", []).append({k: v[0] for k, v in req.query.items()})
    return _page([_select(o, _arg(req, "fields"), expand) for o in rows], req, max_limit=1000)


def _store_scores(state: dict[str, Any], req: Request) -> Response:
    body = req.json()
    now = _iso(dt.datetime.now(dt.timezone.utc))
    for score in body if isinstance(body, list) else body.get("scores", [body]):
        state["scores"].append({"createdAt": now, "updatedAt": now, **score, "timestamp": score.get("timestamp") or now})
    return json_response({"message": "Accepted"}, 202)


def _scores(state: dict[str, Any], req: Request) -> Response:
    rows = state["scores"]
    names = _arg(req, "name")
    if names:
        rows = [s for s in rows if s["name"] in names.split(",")]
    if _arg(req, "traceId"):
        rows = [s for s in rows if s.get("traceId") == _arg(req, "traceId")]
    if _arg(req, "fromTimestamp"):
        rows = [s for s in rows if _when(s["timestamp"]) >= _when(_arg(req, "fromTimestamp"))]
    groups = set((_arg(req, "fields") or "").split(","))
    out = []
    for s in sorted(rows, key=lambda s: s["timestamp"], reverse=True):
        row = {"id": s["id"], "projectId": "codesense", "name": s["name"], "value": s["value"], "dataType": s.get("dataType", "NUMERIC"),
               "source": "API", "timestamp": s["timestamp"], "environment": s.get("environment") or "default",
               "createdAt": s["createdAt"], "updatedAt": s["updatedAt"]}
        if "details" in groups:
            row |= {"comment": s.get("comment"), "configId": None, "metadata": s.get("metadata")}
        if "subject" in groups:
            row["subject"] = ({"kind": "observation", "id": s["observationId"], "traceId": s.get("traceId")} if s.get("observationId")
                              else {"kind": "trace", "id": s.get("traceId")})
        out.append(row)
    return _page(out, req, max_limit=100)


def _create_dataset(state: dict[str, Any], req: Request) -> Response:
    body = req.json()
    now = _iso(dt.datetime.now(dt.timezone.utc))
    existing = state["datasets"].get(body["name"])
    dataset = {"id": existing["id"] if existing else f"ds-{len(state['datasets']) + 1}", "name": body["name"], "description": body.get("description"),
               "metadata": body.get("metadata"), "inputSchema": None, "expectedOutputSchema": None, "projectId": "codesense",
               "createdAt": existing["createdAt"] if existing else now, "updatedAt": now}
    state["datasets"][body["name"]] = dataset  # upsert by name
    return json_response(dataset)


def _create_item(state: dict[str, Any], req: Request) -> Response:
    body = req.json()
    dataset = state["datasets"].get(body.get("datasetName"))
    if dataset is None:
        return json_response({"error": "LangfuseNotFoundError", "message": f"Dataset {body.get('datasetName')} not found"}, 404)
    now = _iso(dt.datetime.now(dt.timezone.utc))
    item_id = body.get("id") or f"item-{len(state['items']) + 1}"
    item = {"id": item_id, "status": body.get("status") or "ACTIVE", "input": body.get("input"), "expectedOutput": body.get("expectedOutput"),
            "metadata": body.get("metadata"), "sourceTraceId": body.get("sourceTraceId"), "sourceObservationId": body.get("sourceObservationId"),
            "datasetId": dataset["id"], "datasetName": dataset["name"], "createdAt": now, "updatedAt": now, "mediaReferences": []}
    state["items"][item_id] = item  # upsert by id
    return json_response(item)


READ_ROUTES = {
    ("GET", "/api/public/v2/observations"): _observations,
    ("POST", "/api/public/scores"): _store_scores,
    ("GET", "/api/public/v3/scores"): _scores,
    ("POST", "/api/public/v2/datasets"): _create_dataset,
    ("POST", "/api/public/dataset-items"): _create_item,
}


def langfuse_api_route(state: dict[str, Any]):
    """OTLP ingestion and prompts (`langfuse_route`) plus the read path: observations (v2) built from the ingested
    spans, scores (POST batch, GET v3 with subject/details), datasets and dataset items. `server.mode = "down"`: 503;
    `state["fail"] = {path: status}` fails one route."""
    ingest = langfuse_route(state)
    state.setdefault("scores", [])
    state.setdefault("datasets", {})
    state.setdefault("items", {})

    def route(req: Request) -> Response:
        handler = READ_ROUTES.get((req.method, req.path))
        if handler is None or state["server"].mode == "down":
            return ingest(req)  # also answers 503 when down and 401 on bad keys
        lf: LangfuseState = state["langfuse"]
        if req.headers.get("authorization") != "Basic " + base64.b64encode(f"{lf.public_key}:{lf.secret_key}".encode()).decode():
            return json_response({"message": "Invalid credentials"}, 401)
        failing = state.get("fail", {}).get(req.path)
        if failing:
            return json_response({"message": f"injected failure {failing}"}, failing)
        return handler(state, req)

    return route


def start_langfuse_api(public_key: str = "pk-lf-read", secret_key: str = "sk-lf-read"):
    """A fresh full fake Langfuse; returns (server, state) with `state["langfuse"]` the ingested spans."""
    return start(langfuse_api_route, langfuse=LangfuseState(public_key=public_key, secret_key=secret_key))
