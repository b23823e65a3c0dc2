"""`codesense rollout`: a gated canary of a new student adapter on its KServe InferenceService.

A blue/green with a traffic dial. KServe keeps the last rolled-out revision (the stable adapter) and a new
revision (the candidate); `canaryTrafficPercent` says how much traffic the new one gets. Each step:

    set canaryTrafficPercent → wait until the new revision is Ready → soak → gate
    gate = Prometheus (error rate, p95 latency of the canary revision; judge score when present)
         + the evaluation set answered by the canary alone (its tag route), checked against eval_gate

A failing gate, or a revision that never becomes Ready, rolls back: traffic goes to the previous revision at
once (`canaryTrafficPercent: 0`), then the spec returns to the stable adapter. The state (phase, step, stable and
candidate adapters) lives in annotations on the InferenceService, so `rollout status` works from anywhere.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from codesense_ray.deployment.apply import DeployError, KubeObjects, readiness
from codesense_ray.deployment.manifests import inference_service, resolve_environment
from codesense_ray.deployment.prometheus import PrometheusClient, PrometheusError
from codesense_ray.config.deployment import CanaryConfig, DeploymentConfig

ANN = "codesense.io/"
PHASE, STEP = ANN + "rollout-phase", ANN + "rollout-step"
STABLE_URI, STABLE_VERSION = ANN + "stable-adapter-uri", ANN + "stable-adapter-version"
CANDIDATE_URI, CANDIDATE_VERSION = ANN + "candidate-adapter-uri", ANN + "candidate-adapter-version"
MESSAGE = ANN + "rollout-message"
PROGRESSING, PROMOTED, ROLLED_BACK, STABLE = "Progressing", "Promoted", "RolledBack", "Stable"

Evaluator = Callable[[str], tuple[bool, str]]


@dataclass
class GateCheck:
    name: str
    ok: bool
    value: float | None
    threshold: float | None
    message: str


@dataclass
class GateResult:
    percent: int
    revision: str
    ok: bool
    checks: list[GateCheck] = field(default_factory=list)


@dataclass
class RolloutResult:
    name: str
    phase: str
    canary_percent: int | None
    stable_uri: str
    stable_version: str
    candidate_uri: str
    candidate_version: str
    revision: str = ""
    gates: list[GateResult] = field(default_factory=list)
    message: str = ""
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CanaryGate:
    """The checks between two steps. Prometheus unreachable or a query error fails the gate (fail safe)."""

    def __init__(self, canary: CanaryConfig, prometheus: PrometheusClient, evaluate: Evaluator | None = None) -> None:
        self.canary = canary
        self.prometheus = prometheus
        self.evaluate = evaluate

    def _metric(self, name: str, template: str, context: dict[str, str], limit: float, upper: bool, required: bool) -> GateCheck:
        try:
            value = self.prometheus.query(template.format(**context))
        except PrometheusError as err:
            return GateCheck(name, False, None, limit, str(err))
        if value is None:
            if required:
                return GateCheck(name, False, None, limit, f"{name}: no samples for revision {context['revision']} (no traffic reached the canary?)")
            return GateCheck(name, True, None, limit, f"{name}: no samples, not gated")
        ok = value <= limit if upper else value >= limit
        op = ("<=" if ok else ">") if upper else (">=" if ok else "<")
        return GateCheck(name, ok, value, limit, f"{name} {value:.4g} {op} {limit:g}")

    def check(self, dep: DeploymentConfig, revision: str, percent: int) -> GateResult:
        c = self.canary
        context = {"namespace": dep.namespace, "name": dep.inference.name, "revision": revision, "window": c.window, "adapter": dep.inference.adapter_name}
        checks = [
            self._metric("error_rate", c.error_rate_query, context, c.max_error_rate, True, c.require_metrics),
            self._metric("p95_latency_s", c.latency_query, context, c.max_p95_latency_s, True, c.require_metrics),
        ]
        if c.min_judge_score is not None:
            checks.append(self._metric("judge_score", c.judge_query, context, c.min_judge_score, False, False))
        if self.evaluate is not None:
            url = c.canary_url.format(**context)
            try:
                ok, message = self.evaluate(url)
            except Exception as err:  # noqa: BLE001 - any failure to evaluate the canary is a failed gate, with its reason
                ok, message = False, f"evaluation against {url} failed: {type(err).__name__}: {err}"
            checks.append(GateCheck("evaluation", ok, None, None, message))
        return GateResult(percent, revision, all(ch.ok for ch in checks), checks)


def canary_evaluator(cfg: Any, dep: DeploymentConfig) -> Evaluator | None:
    """`codesense eval --gate` with the generator pointed at the canary's own route; None without `canary.eval_dataset`."""
    c = dep.canary
    if not c.eval_dataset:
        return None

    def evaluate(url: str) -> tuple[bool, str]:
        from codesense_ray.config import config_from_dict
        from codesense_ray.evaluation.dataset import load_dataset
        from codesense_ray.evaluation.gate import check_gates, load_gates
        from codesense_ray.evaluation.runner import run_evaluation

        data = cfg.model_dump(mode="json")
        data["generator"] = {**data["generator"], "backend": "openai", "base_url": url, "model": dep.inference.adapter_name, "api_key_env": None}
        canary_cfg = config_from_dict(data, cfg.base_dir, source="canary evaluation config")
        dataset = load_dataset(cfg.resolve_path(c.eval_dataset))
        rules = load_gates(cfg.resolve_path(c.eval_gate))
        from codesense_ray.answering.tracing import NoopTracer
        from codesense_ray.app.compose import build_answerer, build_retriever

        retriever = build_retriever(canary_cfg, long_lived=True)
        try:
            answerer = build_answerer(canary_cfg, retriever, tracer=NoopTracer())
            outcome = run_evaluation(canary_cfg, dataset, log_mlflow=False, retriever=retriever, answerer=answerer)
        finally:
            retriever.store.client.close()  # embedded Qdrant: release the lock for the next step
        failures = check_gates(outcome.report.metrics, rules)
        if failures:
            return False, "evaluation: " + "; ".join(f.message() for f in failures)
        shown = ", ".join(f"{r.metric}={outcome.report.metrics.get(r.metric, float('nan')):.3f}" for r in rules)
        return True, f"evaluation on {len(dataset)} questions passed ({shown})"

    return evaluate


class Rollout:
    """Drive one InferenceService through the canary steps of `deployment.canary`."""

    def __init__(
        self,
        dep: DeploymentConfig,
        kube: KubeObjects,
        gate: CanaryGate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dep = dep
        self.kube = kube
        self.gate = gate
        self.clock = clock
        self.sleep = sleep

    @classmethod
    def from_config(cls, cfg: Any, api_client: Any, env: str | None = None, **kwargs) -> "Rollout":
        dep = resolve_environment(cfg, env)
        gate = CanaryGate(dep.canary, PrometheusClient(dep.canary.prometheus_url), canary_evaluator(cfg, dep))
        return cls(dep, KubeObjects(api_client), gate, **kwargs)

    # --- reading ----------------------------------------------------------------------------------
    def _current(self) -> dict:
        inf = self.dep.inference
        obj = self.kube.get("serving.kserve.io/v1beta1", "InferenceService", inf.name, self.dep.namespace)
        if obj is None:
            raise DeployError(f"InferenceService {self.dep.namespace}/{inf.name} not found: run `codesense deploy apply` first")
        return obj

    @staticmethod
    def _annotations(obj: dict) -> dict[str, str]:
        return dict((obj.get("metadata") or {}).get("annotations") or {})

    def _stable(self, ann: dict[str, str]) -> tuple[str, str]:
        if STABLE_URI in ann:
            return ann[STABLE_URI], ann.get(STABLE_VERSION, "")
        # First rollout: what `deploy apply` put there is the last good version.
        return ann.get(ANN + "adapter-uri", self.dep.inference.adapter_uri or ""), ann.get(ANN + "adapter-version", self.dep.inference.adapter_version or "")

    def _result(self, obj: dict, message: str = "", gates: list[GateResult] | None = None, ok: bool = True) -> RolloutResult:
        ann = self._annotations(obj)
        stable_uri, stable_version = self._stable(ann)
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        status = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
        return RolloutResult(
            name=self.dep.inference.name,
            phase=ann.get(PHASE, STABLE),
            canary_percent=predictor.get("canaryTrafficPercent"),
            stable_uri=stable_uri,
            stable_version=stable_version,
            candidate_uri=ann.get(CANDIDATE_URI, ""),
            candidate_version=ann.get(CANDIDATE_VERSION, ""),
            revision=status.get("latestCreatedRevision", ""),
            gates=gates or [],
            message=message or ann.get(MESSAGE, ""),
            ok=ok,
        )

    def status(self) -> RolloutResult:
        return self._result(self._current())

    # --- writing ----------------------------------------------------------------------------------
    def _apply(self, uri: str, version: str, percent: int | None, annotations: dict[str, str]) -> dict:
        obj = inference_service(self.dep, adapter_uri=uri, adapter_version=version, canary_percent=percent)
        obj["metadata"]["annotations"].update({k: v for k, v in annotations.items() if v is not None})
        return self.kube.apply(obj)

    def _wait_ready(self, generation: int | None) -> tuple[dict | None, str]:
        """The InferenceService once its newest revision is Ready; (None, why) after canary.readiness_timeout_s."""
        c = self.dep.canary
        started = self.clock()
        why = "not read yet"
        while True:
            obj = self._current()
            status = obj.get("status") or {}
            predictor = (status.get("components") or {}).get("predictor") or {}
            ok, why = readiness(obj)
            seen = status.get("observedGeneration", 0) >= (generation or 0)
            settled = predictor.get("latestReadyRevision") and predictor.get("latestReadyRevision") == predictor.get("latestCreatedRevision")
            if ok and seen and settled:
                return obj, ""
            if not why and not settled:
                why = f"revision {predictor.get('latestCreatedRevision', '?')} not ready yet"
            if self.clock() - started >= c.readiness_timeout_s:
                return None, f"not ready after {c.readiness_timeout_s:g}s: {why}"
            self.sleep(c.poll_interval_s)

    def _step(self, uri: str, version: str, percent: int, annotations: dict[str, str], gates: list[GateResult]) -> tuple[bool, str]:
        applied = self._apply(uri, version, percent, {**annotations, PHASE: PROGRESSING, STEP: str(percent)})
        obj, why = self._wait_ready((applied.get("metadata") or {}).get("generation"))
        if obj is None:
            return False, f"canary at {percent}%: {why}"
        if self.dep.canary.soak_s:
            self.sleep(self.dep.canary.soak_s)
        revision = (((obj.get("status") or {}).get("components") or {}).get("predictor") or {}).get("latestCreatedRevision", "")
        result = self.gate.check(self.dep, revision, percent)
        gates.append(result)
        if not result.ok:
            return False, f"gate at {percent}% failed: " + "; ".join(ch.message for ch in result.checks if not ch.ok)
        return True, ""

    def start(self, adapter_uri: str, version: str | None = None, to_end: bool = False) -> RolloutResult:
        """Route the first step to `adapter_uri` and gate it; `to_end` continues through every step."""
        if not adapter_uri:
            raise DeployError("rollout start needs --adapter-uri (the registered adapter's artifact URI)")
        current = self._current()
        ann = self._annotations(current)
        if ann.get(PHASE) == PROGRESSING:
            raise DeployError(f"a rollout of {ann.get(CANDIDATE_URI)} is in progress on {self.dep.inference.name}: promote or rollback it first")
        stable_uri, stable_version = self._stable(ann)
        annotations = {STABLE_URI: stable_uri, STABLE_VERSION: stable_version, CANDIDATE_URI: adapter_uri, CANDIDATE_VERSION: version or "", MESSAGE: ""}
        gates: list[GateResult] = []
        ok, why = self._step(adapter_uri, version or "", self.dep.canary.steps[0], annotations, gates)
        if not ok:
            return self._roll_back(why, gates)
        if to_end:
            return self.promote(to_end=True, gates=gates)
        return self._result(self._current(), f"canary at {self.dep.canary.steps[0]}% passed its gate", gates)

    def promote(self, to_end: bool = False, gates: list[GateResult] | None = None) -> RolloutResult:
        """Move the canary to the next step and gate it (all remaining steps with `to_end`); at 100% it becomes stable."""
        gates = gates if gates is not None else []
        current = self._current()
        ann = self._annotations(current)
        if ann.get(PHASE) != PROGRESSING:
            raise DeployError(f"no rollout in progress on {self.dep.inference.name} (phase {ann.get(PHASE, STABLE)}): start one first")
        uri, version = ann[CANDIDATE_URI], ann.get(CANDIDATE_VERSION, "")
        keep = {k: ann[k] for k in (STABLE_URI, STABLE_VERSION, CANDIDATE_URI, CANDIDATE_VERSION) if k in ann}
        percent = int(ann.get(STEP, "0"))
        for step in [s for s in self.dep.canary.steps if s > percent]:
            ok, why = self._step(uri, version, step, keep, gates)
            if not ok:
                return self._roll_back(why, gates)
            if not to_end and step < 100:
                return self._result(self._current(), f"canary at {step}% passed its gate", gates)
        # Promotion: no canary split any more; the candidate is the new stable (and the next rollback target).
        final = {STABLE_URI: uri, STABLE_VERSION: version, CANDIDATE_URI: "", CANDIDATE_VERSION: "", PHASE: PROMOTED, STEP: "100", MESSAGE: f"promoted {uri}"}
        applied = self._apply(uri, version, None, final)
        obj, why = self._wait_ready((applied.get("metadata") or {}).get("generation"))
        if obj is None:
            return self._result(self._current(), f"promoted, but {why}", gates, ok=False)
        return self._result(obj, f"promoted {uri} to 100%", gates)

    def rollback(self, reason: str = "manual rollback") -> RolloutResult:
        return self._roll_back(reason, [], failed=False)

    def _roll_back(self, reason: str, gates: list[GateResult], failed: bool = True) -> RolloutResult:
        current = self._current()
        ann = self._annotations(current)
        stable_uri, stable_version = self._stable(ann)
        candidate = ann.get(CANDIDATE_URI) or ann.get(ANN + "adapter-uri", "")
        record = {STABLE_URI: stable_uri, STABLE_VERSION: stable_version, CANDIDATE_URI: candidate, CANDIDATE_VERSION: ann.get(CANDIDATE_VERSION, "")}
        message = f"rolled back to {stable_uri or 'the base model'}: {reason}"
        # 1) All traffic to the previous revision at once: no new revision needed, no cold start.
        if candidate:
            self._apply(candidate, ann.get(CANDIDATE_VERSION, ""), 0, {**record, PHASE: ROLLED_BACK, STEP: "0", MESSAGE: message})
        # 2) The spec back to the stable adapter, so the next revision (and the next rollout) starts from the last good one.
        applied = self._apply(stable_uri, stable_version, None, {**record, PHASE: ROLLED_BACK, STEP: "0", MESSAGE: message})
        obj, why = self._wait_ready((applied.get("metadata") or {}).get("generation"))
        if obj is None:
            return self._result(self._current(), f"{message}; and the stable revision is {why}", gates, ok=False)
        return self._result(obj, message, gates, ok=not failed)
