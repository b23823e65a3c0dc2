"""The quality gate: minimum (or maximum) values for evaluation metrics, checked after a run.

A failing gate blocks a deploy the way a failing CI job does: `codesense eval --gate gates.yaml` exits 1 and
names every metric below its threshold. `gates.yaml`::

    file_hit@5: 0.8               # a number is a minimum
    file_mrr: 0.6
    answer_latency_p95_s: {max: 5.0}   # a mapping can give `min` and/or `max`

Metric names are the contract names (`file_hit@5`); MLflow spellings (`file_hit_at_5`) are accepted too. A metric
the run did not compute (a cut-off not in `-k`, judged metrics without a judge, a typo) fails the gate: a check
that did not run is not a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from codesense_ray.errors import InvalidGates




@dataclass(frozen=True)
class GateRule:
    metric: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class GateFailure:
    metric: str
    value: float | None
    threshold: float | None
    kind: str  # "min", "max" or "missing"

    def message(self) -> str:
        if self.kind == "missing":
            return f"{self.metric}: not computed by this run"
        op = "<" if self.kind == "min" else ">"
        word = "minimum" if self.kind == "min" else "maximum"
        return f"{self.metric} = {self.value:.4f} {op} {word} {self.threshold:g}"

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "threshold": self.threshold, "kind": self.kind, "message": self.message()}


@dataclass
class GateVerdict:
    """The outcome of gating a candidate: the metrics it scored on `dataset` and the rules it broke (none: passed)."""

    dataset: str
    metrics: dict[str, float | None]
    failures: list[GateFailure]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"passed": self.passed, "dataset": self.dataset, "metrics": self.metrics, "failures": [f.to_dict() for f in self.failures]}


def canonical_metric(name: str) -> str:
    """`file_hit_at_5` → `file_hit@5`; contract names pass through."""
    return name.strip().replace("_at_", "@")


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidGates(f"{where}: expected a number, got {value!r}")
    return float(value)


def parse_gates(data, source: str = "gates") -> list[GateRule]:
    """Validate a parsed gates mapping."""
    if not isinstance(data, dict) or not data:
        raise InvalidGates(f"{source}: expected a mapping of metric name to threshold, e.g. `file_hit@5: 0.8`")
    rules = []
    for name, value in data.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidGates(f"{source}: metric names must be strings, got {name!r}")
        where = f"{source}: `{name}`"
        if isinstance(value, dict):
            unknown = set(value) - {"min", "max"}
            if unknown or not value:
                raise InvalidGates(f"{where}: a mapping takes `min` and/or `max`, got {sorted(map(str, value)) or 'nothing'}")
            lo = _number(value["min"], f"{where}.min") if "min" in value else None
            hi = _number(value["max"], f"{where}.max") if "max" in value else None
            rules.append(GateRule(canonical_metric(name), lo, hi))
        else:
            rules.append(GateRule(canonical_metric(name), _number(value, where)))
    return rules


def load_gates(path: str | Path) -> list[GateRule]:
    """Read `gates.yaml`. Raises `InvalidGates` (exit 2) for a missing file, bad YAML or a non-numeric threshold."""
    p = Path(path)
    if not p.is_file():
        raise InvalidGates(f"gates file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InvalidGates(f"{p}: invalid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    return parse_gates(data, str(p))


def check_gates(metrics: Mapping[str, float | None], rules: list[GateRule]) -> list[GateFailure]:
    """Every rule the metrics break, in file order (empty: the gate passes)."""
    failures = []
    for rule in rules:
        value = metrics.get(rule.metric)
        if value is None:
            failures.append(GateFailure(rule.metric, None, rule.min if rule.min is not None else rule.max, "missing"))
            continue
        if rule.min is not None and value < rule.min:
            failures.append(GateFailure(rule.metric, value, rule.min, "min"))
        if rule.max is not None and value > rule.max:
            failures.append(GateFailure(rule.metric, value, rule.max, "max"))
    return failures
