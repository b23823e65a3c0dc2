"""Metric names used by the Grafana dashboard and the PrometheusRule, and the documented exporter table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
OBSERVABILITY = ROOT / "infra" / "base" / "observability"
DOC = ROOT / "docs" / "monitoring.md"

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "inf", "nan"}


def promql_exprs() -> dict[str, str]:
    """`{where: expr}` for every dashboard target and every alert rule."""
    exprs = {}
    dash = json.loads((OBSERVABILITY / "dashboards" / "codesense-rag.json").read_text())
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            exprs[f"dashboard:{panel['title']}:{t['refId']}"] = t["expr"]
    rule = yaml.safe_load((OBSERVABILITY / "prometheusrule.yaml").read_text())
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            exprs[f"alert:{r.get('alert') or r.get('record')}"] = r["expr"]
    return exprs


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, strings, grouping clauses, durations and functions removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        token = m.group(0)
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names


def all_metric_names() -> set[str]:
    return set().union(*(metric_names(e) for e in promql_exprs().values()))


def documented_exporter_metrics() -> dict[str, str]:
    """`{metric: exporter}` from the table under "## Exporter metrics" in docs/monitoring.md."""
    text = DOC.read_text()
    section = text.split("## Exporter metrics", 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] and not set(cells[0]) <= {"-", " "} and cells[0] != "metric":
            out[cells[0]] = cells[1]
    return out


def base_name(name: str) -> str:
    """A histogram series name without `_bucket`/`_sum`/`_count`."""
    return re.sub(r"_(bucket|sum|count)$", "", name)
