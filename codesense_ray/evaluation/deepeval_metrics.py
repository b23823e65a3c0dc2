"""LLM-as-judge metrics through DeepEval, with the judge behind DeepEval's custom-model interface.

The judge is a codesense generator (OpenAI-compatible endpoint or Gemini) wrapped as a `DeepEvalBaseLLM`, so the
same backends, timeouts and API-key handling serve answering and judging. Metrics (all 0..1, higher is better):

- `faithfulness`: share of the answer's claims that the retrieved code does not contradict — a test that the
  answer doesn't claim what the logs don't show.
- `answer_relevancy`: share of the answer's statements that address the question.
- `contextual_precision`: are the chunks that matter for the reference answer ranked above those that don't.
- `contextual_recall`: share of the reference answer's sentences that the retrieved chunks support.
- `citation_format` (GEval): statements about code carry `[n]` markers that match the listed sources.
- `no_hallucination` (GEval): nothing is claimed that the retrieved code does not show (1 = no hallucination).

`contextual_precision` and `contextual_recall` need the dataset's reference `answer`; the others need a generated
answer. A metric whose inputs are missing is reported as skipped for that question, never estimated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepeval.metrics import (  # noqa: E402
    AnswerRelevancyMetric,
    ContextualPrecisionMetric,
    ContextualRecallMetric,
    FaithfulnessMetric,
    GEval,
)
from deepeval.models import DeepEvalBaseLLM  # noqa: E402
from deepeval.test_case import LLMTestCase, SingleTurnParams  # noqa: E402

from codesense_ray.errors import InvalidConfig  # noqa: E402
from codesense_ray.config.evaluation import JUDGE_METRICS, JudgeConfig  # noqa: E402

# What each metric needs besides the question: a generated answer, the reference answer, the retrieved chunks.
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "faithfulness": ("answer", "contexts"),
    "answer_relevancy": ("answer",),
    "contextual_precision": ("expected", "contexts"),
    "contextual_recall": ("expected", "contexts"),
    "citation_format": ("answer",),
    "no_hallucination": ("answer", "contexts"),
}
_MISSING = {
    "answer": "needs a generated answer (run without --retrieval-only)",
    "expected": "needs a reference `answer` in the dataset line",
    "contexts": "needs retrieved context (nothing was retrieved)",
}

CITATION_FORMAT_STEPS = [
    "Find every statement in the actual output about specific code: a function, class, file, value or behaviour.",
    "Check that each such statement is followed by a citation marker like [1] or [2], or names a file with a line range.",
    "Check that every marker number appears in the numbered source list at the end of the actual output, and that each listed source names a file with a line range.",
    "Lower the score for each uncited statement about code and for each malformed citation (unbalanced brackets, numbers with no listed source, bare links without lines). Do not judge whether statements are true.",
]
NO_HALLUCINATION_STEPS = [
    "List the claims the actual output makes about the code: names, behaviour, files, configuration values.",
    "For each claim, check whether the retrieval context shows it. A claim the retrieval context does not show is a hallucination, even if it might be true elsewhere.",
    "Give the highest score when every claim is shown by the retrieval context; lower it for each unsupported or contradicted claim.",
]


class GeneratorJudge(DeepEvalBaseLLM):
    """DeepEval's custom-model interface over a codesense `Generator`: one user message in, the reply text out.

    DeepEval parses the JSON it asked for from the reply itself, so any chat model that follows instructions works.
    """

    def __init__(self, generator: Any, *, max_tokens: int = 4096) -> None:
        self.generator = generator
        self.max_tokens = max_tokens
        super().__init__(model=f"{generator.name}:{generator.model}")

    def load_model(self) -> Any:
        return self.generator

    def generate(self, prompt: str, schema: Any = None, **_: Any) -> str:
        messages = [{"role": "user", "content": prompt}]
        return self.generator.generate(messages, max_tokens=self.max_tokens, temperature=0.0).text

    async def a_generate(self, prompt: str, schema: Any = None, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.generate, prompt, schema)

    def get_model_name(self) -> str:
        return self.name


def build_judge_model(jcfg: JudgeConfig, home: Path) -> GeneratorJudge:
    """The configured judge as a DeepEval model. Raises `InvalidConfig` naming the `evaluation.judge` key at fault."""
    from codesense_ray.answering.generators.base import build_generator
    from codesense_ray.config.answering import GeneratorConfig

    if jcfg.backend == "none":
        raise InvalidConfig("evaluation.judge.backend is `none`: no judge to build")
    gcfg = GeneratorConfig(
        backend=jcfg.backend,
        model=jcfg.model,
        base_url=jcfg.base_url,
        api_key_env=jcfg.api_key_env,
        timeout_s=jcfg.timeout_s,
        max_retries=jcfg.max_retries,
        max_tokens=jcfg.max_tokens,
        temperature=0.0,
    )
    try:
        generator = build_generator(gcfg, home)
    except InvalidConfig as err:
        raise InvalidConfig(str(err).replace("generator.", "evaluation.judge.")) from None
    return GeneratorJudge(generator, max_tokens=jcfg.max_tokens)


class JudgeSuite:
    """Runs the selected DeepEval metrics for one question at a time with one judge model."""

    def __init__(self, model: DeepEvalBaseLLM, metrics: Sequence[str] = JUDGE_METRICS) -> None:
        unknown = [m for m in metrics if m not in REQUIREMENTS]
        if unknown:
            raise InvalidConfig(f"evaluation.judge.metrics: unknown metric {unknown[0]!r} (known: {', '.join(JUDGE_METRICS)})")
        self.model = model
        self.metrics = [m for m in JUDGE_METRICS if m in metrics]

    @property
    def model_name(self) -> str:
        return self.model.get_model_name()

    def metric(self, name: str):
        """A fresh DeepEval metric object (they hold per-measurement state). Synchronous, LLM-only evaluation."""
        common = {"model": self.model, "async_mode": False}
        if name == "faithfulness":
            return FaithfulnessMetric(eval_mode="llm", **common)
        if name == "answer_relevancy":
            return AnswerRelevancyMetric(eval_mode="llm", **common)
        if name == "contextual_precision":
            return ContextualPrecisionMetric(eval_mode="llm", **common)
        if name == "contextual_recall":
            return ContextualRecallMetric(eval_mode="llm", **common)
        if name == "citation_format":
            return GEval(name="citation_format", evaluation_params=[SingleTurnParams.INPUT, SingleTurnParams.ACTUAL_OUTPUT], evaluation_steps=CITATION_FORMAT_STEPS, **common)
        if name == "no_hallucination":
            return GEval(
                name="no_hallucination",
                evaluation_params=[SingleTurnParams.ACTUAL_OUTPUT, SingleTurnParams.RETRIEVAL_CONTEXT],
                evaluation_steps=NO_HALLUCINATION_STEPS,
                **common,
            )
        raise KeyError(name)

    def evaluate(self, *, question: str, answer: str | None, expected: str | None, contexts: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`{metric: {"score", "reason"}}`, or `{"skipped": why}` / `{"error": what}` for that metric."""
        have = {"answer": bool(answer), "expected": bool(expected), "contexts": bool(contexts)}
        case = LLMTestCase(input=question, actual_output=answer or None, expected_output=expected, retrieval_context=list(contexts) or None)
        out: dict[str, dict[str, Any]] = {}
        for name in self.metrics:
            missing = [need for need in REQUIREMENTS[name] if not have[need]]
            if missing:
                out[name] = {"score": None, "skipped": _MISSING[missing[0]]}
                continue
            metric = self.metric(name)
            try:
                score = metric.measure(case, _show_indicator=False)
            except Exception as exc:  # noqa: BLE001 - one judge failure is recorded on the question, not fatal
                out[name] = {"score": None, "error": f"{type(exc).__name__}: {exc}"}
                continue
            out[name] = {"score": float(score), "reason": metric.reason}
        return out


def build_judge_suite(jcfg: JudgeConfig, home: Path) -> JudgeSuite:
    return JudgeSuite(build_judge_model(jcfg, home), jcfg.metrics)
