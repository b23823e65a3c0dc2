"""The bug-report dev set: mutation operators, the mutate → test → question loop, and the committed set's shape."""

from __future__ import annotations

import ast
import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
EVAL = ROOT / "data" / "eval"
sys.path.insert(0, str(ROOT / "benchmarks" / "devsets"))

import build_bug_set  # noqa: E402
from build_bug_set import Project, build_project, function_mutations, parse_first_failure  # noqa: E402

LIB = '''"""Tiny library."""


def clamp(value, low, high):
    """Keep value inside [low, high]."""
    if value < low:
        return low
    if value > high and high is not None:
        return high
    return value


def window(items, size):
    return [items[i : i + size] for i in range(0, len(items), 2)]
'''

TESTS = '''from tinylib import clamp, window


def test_clamp_low():
    """Values below the range are raised to its floor."""
    assert clamp(-5, 0, 10) == 0


def test_clamp_inside():
    assert clamp(5, 0, 10) == 5


def test_window():
    assert window([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]
'''


def test_mutations_change_one_token_and_keep_lines():
    """Each operator yields single-line mutants that still parse, keep the line count and stay inside their function."""
    mutations = function_mutations("src/tinylib/__init__.py", LIB)
    operators = {m.operator for m in mutations}
    assert {"flip_comparison", "swap_boolean", "off_by_one", "swap_arguments"} <= operators
    for m in mutations:
        mutated = m.apply(LIB)
        ast.parse(mutated)
        assert len(mutated.split("\n")) == len(LIB.split("\n"))
        diff = [i for i, (a, b) in enumerate(zip(LIB.split("\n"), mutated.split("\n")), start=1) if a != b]
        assert diff == [m.line] and m.func_start <= m.line <= m.func_end
    assert any(m.original == "value < low" and m.mutated == "value <= low" for m in mutations)
    assert not any(m.line == 5 for m in mutations)  # the docstring is never mutated


def test_parse_first_failure_keeps_only_the_traceback():
    """pytest's summary lines and its own runner frames are not part of the question's traceback."""
    output = (
        "F\n=================================== FAILURES ===================================\n"
        "________________________________ test_clamp_low ________________________________\n"
        "Traceback (most recent call last):\n"
        '  File "/v/lib/python3.11/site-packages/_pytest/runner.py", line 341, in from_call\n    result = func()\n'
        '  File "/home/dev/src/tiny/tests/test_tinylib.py", line 6, in test_clamp_low\n    assert clamp(-5, 0, 10) == 0\n'
        "AssertionError: assert -5 == 0\n"
        "FAILED tests/test_tinylib.py::test_clamp_low - AssertionError: assert -5 == 0\n"
        "!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!\n1 failed in 0.03s\n"
    )
    failure = parse_first_failure(output)
    assert failure.nodeid == "tests/test_tinylib.py::test_clamp_low"
    assert failure.error == "AssertionError: assert -5 == 0"
    assert "_pytest" not in failure.traceback and "FAILED" not in failure.traceback and "1 failed" not in failure.traceback
    assert failure.traceback.startswith("Traceback") and "test_tinylib.py" in failure.traceback


def test_build_project_turns_failing_tests_into_questions(tmp_path: Path):
    """A mutant caught by the project's own test becomes a question with the mutated function as gold; survivors are dropped."""
    repo = tmp_path / "tiny"
    (repo / "src" / "tinylib").mkdir(parents=True)
    (repo / "src" / "tinylib" / "__init__.py").write_text(LIB)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_tinylib.py").write_text(TESTS)
    project = Project("tiny", "tiny==0", "src", ("src/tinylib",), "tests")
    bugs = build_project(project, repo, tmp_path / "scratch", per_project=2, max_tries=4, rng=random.Random(3), log=lambda s: None)
    assert bugs, "no mutant was caught"
    assert (repo / "src" / "tinylib" / "__init__.py").read_text() == LIB  # the indexed copy stays pristine
    lines = LIB.split("\n")
    for bug in bugs:
        gold = bug["gold"][0]
        mutation = bug["_mutation"]
        assert gold["path"] == "src/tinylib/__init__.py"
        assert gold["start_line"] <= mutation["line"] <= gold["end_line"]
        assert lines[gold["start_line"] - 1].startswith("def ")
        assert mutation["failing_test"].startswith("tests/test_tinylib.py::")
        assert lines[mutation["line"] - 1].strip() not in bug["question"]
        assert ("Traceback (most recent call last):" in bug["question"]) == (bug["shape"] == "traceback")
        assert str(tmp_path) not in bug["question"]


@pytest.mark.skipif(not (EVAL / "bugs.jsonl").is_file(), reason="data/eval/bugs.jsonl not built")
def test_committed_bug_set_mixes_shapes_and_projects():
    """The committed set covers several projects, and at least a third of its questions carry no traceback."""
    rows = [json.loads(line) for line in (EVAL / "bugs.jsonl").read_text().splitlines() if line.strip()]
    meta = json.loads((EVAL / "bugs.meta.json").read_text())
    assert len({r["repo"] for r in rows}) >= 4 and len(rows) >= 30
    no_tb = [r for r in rows if "Traceback (most recent call last):" not in r["question"]]
    assert len(no_tb) >= len(rows) / 3
    for r in rows:
        mutation = meta["projects"][r["repo"]]["mutations"][r["id"]]
        g = r["gold"][0]
        assert g["start_line"] <= mutation["line"] <= g["end_line"], r["id"]
        assert (r["shape"] == "traceback") == ("Traceback (most recent call last):" in r["question"]), r["id"]
