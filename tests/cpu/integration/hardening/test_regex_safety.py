"""No catastrophic backtracking on user text: every function whose regexes see queries, questions, model
output or indexed text runs the adversarial inputs of benchmarks/regex_safety.py in a subprocess.

Timeouts are generous (the inputs are 200,000 characters; the quadratic path-mention pattern needed
about two minutes at that size, the quadratic `path_tokens` 27 s on one input), so they catch a
super-linear pattern without asserting fine timings.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.regex_safety import INPUTS, TARGETS
from tests.conftest import ROOT

SIZE = 200_000
PER_INPUT_BOUND_S = 10  # one input that took longer is a regression (linear code needs milliseconds to ~2 s)
PER_TARGET_TIMEOUT_S = 180  # all inputs of one target; a catastrophic pattern never finishes

# Owned by the links/citations hardening (issue 8, items 1-2): `citations._PATH_RE` is super-linear on
# runs of path characters ("a+" * 5000 already takes seconds). Kept here so the fix shows up as XPASS.


def _run(target: str, timeout: float) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "regex_safety.py"), "--only", target, "--size", str(SIZE), "--bound", str(PER_INPUT_BOUND_S)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_target_is_linear_on_adversarial_inputs(target):
    """Each target finishes every adversarial 200k-character input, none taking catastrophically long."""
    try:
        proc = _run(target, PER_TARGET_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        pytest.fail(f"{target}: still running after {PER_TARGET_TIMEOUT_S}s; last finished inputs:\n{out[-800:]}")
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-800:]
    assert sum(line.startswith(f"{target} ") for line in proc.stdout.splitlines()) == len(INPUTS)


def test_benchmark_covers_the_query_parsers():
    """The benchmark's target list includes every query-side parser of lexical.py and the input checks."""
    assert {"query_paths", "query_identifiers", "traceback_functions", "code_tokens", "split_passages", "check_query", "check_question"} <= set(TARGETS)


@pytest.mark.parametrize("text", ["see app/auth/jwt.py", "a+" * 10 + ".py", "./app/x.py:12", "(jwt.py)", "jwt.py.bak", "a.py/b.py", "user@host/app.py"])
def test_path_mentions_still_found(text):
    """The linear path-mention scan finds the same mentions the old pattern found on ordinary inputs."""
    import re

    from codesense_ray.index.lexical import query_paths

    old = re.compile(
        r"(?<![\w/.-])((?:[\w.@+-]+/)*[\w@+-][\w.@+-]*\.(?:py|pyi|go|ts|tsx|js|jsx|mjs|java|kt|rs|c|h|cc|cpp|hpp|cs|rb|php|sh|tf|yaml|yml|md|toml|json|sql))\b"
    )
    assert query_paths(text) == [m.group(1) for m in old.finditer(text)]
