"""The quality gate: thresholds file parsing and the failures it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesense_ray.evaluation.gate import GateRule, InvalidGates, check_gates, load_gates, parse_gates

ROOT = Path(__file__).resolve().parents[3]


def test_repo_default_gates_file_parses():
    """The shipped `gates.yaml` is valid and gates file_hit@5 with a minimum."""
    rules = {r.metric: r for r in load_gates(ROOT / "gates.yaml")}
    assert rules["file_hit@5"].min is not None and 0 < rules["file_hit@5"].min <= 1


def test_numbers_are_minimums_mappings_take_min_and_max():
    """`metric: 0.8` is a minimum, `{max: ...}` a maximum, and MLflow spellings map to contract names."""
    rules = parse_gates({"file_hit@5": 0.8, "file_mrr": 1, "file_all_at_3": {"min": 0.5}, "answer_latency_p95_s": {"max": 2.5}})
    assert rules == [
        GateRule("file_hit@5", 0.8),
        GateRule("file_mrr", 1.0),
        GateRule("file_all@3", 0.5),
        GateRule("answer_latency_p95_s", None, 2.5),
    ]


def test_failures_name_metric_value_threshold():
    """Every metric below its minimum (or above its maximum) is reported with its value and threshold; passing ones are not."""
    rules = parse_gates({"file_hit@5": 0.8, "file_mrr": 0.5, "answer_latency_s": {"max": 1.0}})
    failures = check_gates({"file_hit@5": 0.6, "file_mrr": 0.5, "answer_latency_s": 1.5}, rules)
    assert [(f.metric, f.value, f.threshold, f.kind) for f in failures] == [("file_hit@5", 0.6, 0.8, "min"), ("answer_latency_s", 1.5, 1.0, "max")]
    assert failures[0].message() == "file_hit@5 = 0.6000 < minimum 0.8"
    assert failures[1].message() == "answer_latency_s = 1.5000 > maximum 1"
    assert check_gates({"file_hit@5": 0.8, "file_mrr": 0.9, "answer_latency_s": 0.2}, rules) == []


def test_metric_not_computed_fails():
    """A gated metric the run did not compute (None or absent) fails the gate instead of passing silently."""
    failures = check_gates({"faithfulness": None}, parse_gates({"faithfulness": 0.7, "file_hit@20": 0.9}))
    assert [(f.metric, f.kind) for f in failures] == [("faithfulness", "missing"), ("file_hit@20", "missing")]
    assert failures[0].message() == "faithfulness: not computed by this run"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping"),
        ("- file_hit@5\n", "expected a mapping"),
        ("file_hit@5: high\n", "`file_hit@5`: expected a number, got 'high'"),
        ("file_hit@5: {minimum: 0.8}\n", "takes `min` and/or `max`"),
        ("file_hit@5: {min: yes}\n", "`file_hit@5`.min: expected a number"),
        ("file_hit@5: [0.8\n", "invalid YAML"),
    ],
)
def test_bad_gates_file(tmp_path, text, message):
    """A malformed gates file raises InvalidGates (exit code 2) with the key and the problem."""
    p = tmp_path / "gates.yaml"
    p.write_text(text)
    with pytest.raises(InvalidGates) as err:
        load_gates(p)
    assert message in str(err.value) and err.value.exit_code == 2


def test_missing_gates_file(tmp_path):
    """A gates path that does not exist is an input error."""
    with pytest.raises(InvalidGates, match="gates file not found"):
        load_gates(tmp_path / "gates.yaml")
