"""A local LLM judge speaking the OpenAI chat-completions wire format, answering DeepEval's metric prompts with
scripted JSON verdicts, so tests know exactly which score DeepEval must compute from them.

It recognises each prompt by phrases from DeepEval's own templates (deepeval/metrics/*/templates/*.txt) and
records which template it answered (`state.answered`), so a test can also check every step was asked.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """The verdicts the judge gives. Defaults and the scores DeepEval derives from them:

    faithfulness 4 claims yes/yes/no/borderline → 3/4 = 0.75 (borderline passes by default);
    answer_relevancy 5 statements yes/yes/no/yes/no → 3/5 = 0.6;
    contextual_precision nodes no/yes/yes → (1/2 + 2/3) / 2 = 7/12;
    contextual_recall sentences yes/no/no/no → 1/4 = 0.25;
    GEval scores 8/10 (citation format) → 0.8 and 3/10 (hallucination) → 0.3.
    """

    faithfulness: list[str] = field(default_factory=lambda: ["yes", "yes", "no", "borderline"])
    relevancy: list[str] = field(default_factory=lambda: ["yes", "yes", "no", "yes", "no"])
    precision: list[str] = field(default_factory=lambda: ["no", "yes", "yes"])
    recall: list[str] = field(default_factory=lambda: ["yes", "no", "no", "no"])
    citation_format_score: int = 8
    hallucination_score: int = 3


@dataclass
class JudgeState:
    script: Script = field(default_factory=Script)
    answered: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    fail: bool = False


def _verdicts(values: list[str]) -> dict[str, Any]:
    return {"verdicts": [{"verdict": v, "reason": f"scripted {v}"} for v in values]}


def judge_reply(prompt: str, script: Script) -> tuple[str, dict[str, Any]]:
    """(template name, JSON reply) for one DeepEval prompt."""
    # Extraction and verdict steps first: their prompts also show `"reason"` examples.
    if "please generate a comprehensive list of" in prompt and '"truths"' in prompt:
        return "faithfulness.truths", {"truths": ["verify_bearer_token checks the signature.", "An expired token raises TokenError."]}
    if "extract a comprehensive list of FACTUAL" in prompt and '"claims"' in prompt:
        return "faithfulness.claims", {"claims": [f"claim {i}" for i in range(len(script.faithfulness))]}
    if "whether EACH claim contradicts any facts in the retrieval context" in prompt:
        return "faithfulness.verdicts", _verdicts(script.faithfulness)
    if "breakdown and generate a list of statements" in prompt:
        return "answer_relevancy.statements", {"statements": [f"statement {i}" for i in range(len(script.relevancy))]}
    if "determine whether each statement is relevant to address the input" in prompt:
        return "answer_relevancy.verdicts", _verdicts(script.relevancy)
    if "whether each node in the retrieval context was remotely useful in arriving at the expected output" in prompt:
        return "contextual_precision.verdicts", _verdicts(script.precision)
    if "can be attributed to the nodes of retrieval contexts" in prompt:
        return "contextual_recall.verdicts", _verdicts(script.recall)
    if prompt.startswith("You are an evaluator"):
        if "citation marker" in prompt:
            return "geval.citation_format", {"reason": "scripted", "score": script.citation_format_score}
        if "hallucination" in prompt:
            return "geval.no_hallucination", {"reason": "scripted", "score": script.hallucination_score}
        return "geval.unknown", {"reason": "unknown criteria", "score": 0}
    if '"reason"' in prompt:
        return "reason", {"reason": "The score is what the scripted verdicts say."}
    return "unknown", {"error": "prompt not recognised"}


class JudgeServer:
    """`POST /v1/chat/completions` on 127.0.0.1 with a random port."""

    def __init__(self) -> None:
        self.state = JudgeState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                if state.fail:
                    return self._send(500, {"error": {"message": "judge overloaded", "type": "server_error"}})
                prompt = body["messages"][-1]["content"]
                name, reply = judge_reply(prompt, state.script)
                state.answered.append(name)
                state.models.append(body["model"])
                content = json.dumps(reply)
                self._send(200, {
                    "id": "chatcmpl-judge", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", "logprobs": None}],
                    "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4, "total_tokens": (len(prompt) + len(content)) // 4},
                })

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
