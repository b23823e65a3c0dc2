"""Dataset reading: the contract fields, normalised paths, and errors that name the line and the problem."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from codesense_ray.evaluation.dataset import InvalidDataset, load_dataset, normalize_path
from tests.conftest import CODESENSE_BIN, write_config

HERE = Path(__file__).parent
GOOD = {"id": "q1", "question": "How are tokens verified?", "repo": "payments", "gold": [{"path": "app/auth/jwt.py", "start_line": 10, "end_line": 42}]}


def write_lines(tmp_path: Path, lines: list) -> Path:
    p = tmp_path / "ds.jsonl"
    p.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return p


def test_fixture_dataset_loads():
    """The fixture set loads with its ids, normalised gold paths, optional lines, reference answers and extra keys."""
    ds = load_dataset(HERE / "fixture_questions.jsonl")
    assert len(ds) == 5 and len(ds.sha256) == 64 and ds.name == "fixture_questions"
    q = {x.id: x for x in ds.questions}
    assert q["jwt-verify"].line_spans[0].start_line == 78 and q["jwt-verify"].answer
    assert q["auth-files"].gold_files == ["app/auth/jwt.py", "gateway/middleware/auth.go"]
    assert q["auth-files"].line_spans == [] and q["auth-files"].extra == {"tags": ["multi-file"]}
    assert q["scopes"].line == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("./app/x.py", "app/x.py"), ("/app//x.py", "app/x.py"), ("app\\auth\\x.py", "app/auth/x.py"), ("app/./y/../x.py", "app/x.py"), (" a.py ", "a.py")],
)
def test_normalize_path(raw, expected):
    """Gold paths are compared in one spelling: no `./`, no leading `/`, forward slashes, `..` resolved."""
    assert normalize_path(raw) == expected


def test_start_line_only_means_one_line_and_blank_lines_skip(tmp_path):
    """A span with only `start_line` covers that line; blank lines are skipped but line numbers still count them."""
    p = write_lines(tmp_path, ["", {**GOOD, "gold": [{"path": "a.py", "start_line": 7}]}])
    q = load_dataset(p).questions[0]
    assert (q.gold[0].start_line, q.gold[0].end_line, q.line) == (7, 7, 2)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"id": "q2", "question": "x", ', "invalid JSON at column"),
        ("[1, 2]", "expected a JSON object, got list"),
        ({"id": "q2", "repo": "payments", "gold": [{"path": "a.py"}]}, "missing `question`"),
        ({"id": "q2", "question": "  ", "gold": [{"path": "a.py"}]}, "`question`: empty question"),
        ({"id": "q2", "question": "x", "gold": []}, "`gold`: List should have at least 1 item"),
        ({"id": "q2", "question": "x"}, "missing `gold`"),
        ({"id": "q2", "question": "x", "gold": [{"start_line": 3}]}, "missing `gold[0].path`"),
        ({"id": "q2", "question": "x", "gold": [{"path": "a.py", "start_line": 9, "end_line": 3}]}, "`end_line` 3 is before `start_line` 9"),
        ({"id": "q2", "question": "x", "gold": [{"path": "a.py", "end_line": 3}]}, "`end_line` without `start_line`"),
        ({"id": "q2", "question": "x", "gold": [{"path": "a.py", "start_line": "3"}]}, "gold[0].start_line"),
        ({"id": "q2", "question": "x", "gold": [{"path": "a.py", "start_line": 0}]}, "greater than or equal to 1"),
        ({"id": "q2", "question": "x", "gold": [{"path": "a.py", "lines": [1, 2]}]}, "unknown key `gold[0].lines`"),
        ({"id": "q2", "question": "x", "gold": [{"path": "."}]}, "is not a file path"),
        ({"id": "q1", "question": "again", "gold": [{"path": "a.py"}]}, "duplicate id 'q1' (first on line 1)"),
    ],
)
def test_malformed_line_names_line_and_problem(tmp_path, bad, message):
    """Each malformed line raises InvalidDataset (exit code 2) naming the file, line 2 and the problem."""
    p = write_lines(tmp_path, [GOOD, bad])
    with pytest.raises(InvalidDataset) as err:
        load_dataset(p)
    assert err.value.exit_code == 2
    assert str(err.value).startswith(f"{p}:2: ") and message in str(err.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_dataset_is_a_clear_error(tmp_path, content):
    """An empty (or blank-only) file says it has no questions."""
    p = tmp_path / "empty.jsonl"
    p.write_text(content)
    with pytest.raises(InvalidDataset, match="no questions"):
        load_dataset(p)


def test_missing_file(tmp_path):
    """A dataset path that does not exist is reported as such."""
    with pytest.raises(InvalidDataset, match="dataset not found"):
        load_dataset(tmp_path / "nope.jsonl")


def test_cli_malformed_dataset_exits_2_with_line(tmp_path):
    """`codesense eval` on a malformed line prints one error line naming the line, exits 2, and prints nothing on stdout."""
    write_config(tmp_path, [{"id": "payments", "path": "payments"}])
    p = write_lines(tmp_path, [GOOD, GOOD, '{"id": "q3", "question": 5, "gold": [{"path": "a.py"}]}'])
    env = {**os.environ, "CODESENSE_HOME": str(tmp_path / ".codesense")}
    res = subprocess.run(
        [CODESENSE_BIN, "eval", "--config", str(tmp_path / "codesense.yaml"), "--dataset", str(p), "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    # The duplicate id on line 2 is found first.
    assert res.stderr.strip() == f"codesense: error: {p}:2: duplicate id 'q1' (first on line 1)"
    p.write_text(json.dumps(GOOD) + "\n" + '{"id": "q3", "question": 5, "gold": [{"path": "a.py"}]}\n')
    res = subprocess.run(
        [CODESENSE_BIN, "eval", "--config", str(tmp_path / "codesense.yaml"), "--dataset", str(p)], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 2 and f"{p}:2: `question`: Input should be a valid string" in res.stderr
