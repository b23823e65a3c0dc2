"""Local teacher servers for distillation: the OpenAI and Gemini wire protocols (see tests/answering/fake_servers.py),
plus rate limiting (HTTP 429 with the body each API sends) and an answer that cites the first context block.

`state["rate_limit"]` is how many of the next requests get a 429; `state["answer"]` is a function of the user
message returning the answer text (default: a grounded answer citing [1]); `state["calls"]` counts answered
requests (the teacher's bill).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Callable

from tests.cpu.integration.answering.fake_servers import Request, Response, gemini_route, json_response, openai_route, start

_HEADER = re.compile(r"^\[1\] (?P<repo>[^:\s]+):(?P<path>\S+):L(?P<s>\d+)-L(?P<e>\d+)(?:\s+\((?P<sym>[^)]+)\))?", re.M)


def grounded_answer(user_text: str) -> str:
    """Cite block [1] and name its symbol (so the grounding check finds it in the context)."""
    m = _HEADER.search(user_text)
    if not m:
        return "I cannot tell from the context."
    sym = m.group("sym")
    what = f"`{sym.split('.')[-1]}`" if sym else f"the code in {m.group('path')}"
    return f"It is implemented by {what} in {m.group('path')} [1]."


def _user_text(body: dict[str, Any], gemini: bool) -> str:
    if gemini:
        return "\n".join(p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", []))
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")


def _teacher(base: Callable[[dict[str, Any]], Callable[[Request], Response]], gemini: bool):
    def factory(state: dict[str, Any]) -> Callable[[Request], Response]:
        inner = base(state)
        state.setdefault("rate_limit", 0)
        state.setdefault("calls", 0)
        state.setdefault("answer", grounded_answer)

        def route(req: Request) -> Response:
            if state["rate_limit"] > 0:
                state["rate_limit"] -= 1
                state["limited"] = state.get("limited", 0) + 1
                if gemini:
                    return json_response({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}, 429)
                return json_response({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}, 429)
            body = req.json() or {}
            state["words"] = [state["answer"](_user_text(body, gemini))]
            state["calls"] += 1
            return inner(req)

        return route

    return factory


openai_teacher = _teacher(openai_route, gemini=False)
gemini_teacher = _teacher(gemini_route, gemini=True)

__all__ = ["gemini_teacher", "grounded_answer", "openai_teacher", "start"]
