"""File-level ranking levers: path roles, traceback frame order, path-match order, aggregation with priors."""

from __future__ import annotations

from codesense_ray.retrieval.file_ranking import aggregate_files, frame_functions, order_path_matches, path_mentions, path_role, wanted_roles
from codesense_ray.index.lexical import path_suffixes

TRACEBACK = '''CI is red: `tests/test_markupsafe.py::test_format`

```
Traceback (most recent call last):
  File "/home/dev/src/markupsafe/tests/test_markupsafe.py", line 108, in test_format
    result = Markup("<em>{awesome}</em>").format(awesome="<awesome>")
  File "/home/dev/src/markupsafe/src/markupsafe/__init__.py", line 325, in format
    return self.__class__(formatter.vformat(args, self, kwargs))
  File "/usr/lib/python3.11/string.py", line 194, in vformat
    result, _ = self._vformat(format_string, args, kwargs, used_args, 2)
TypeError: expected str, got tuple
```
'''


def test_path_roles():
    """Tests, docs and source are told apart by directory and file name."""
    assert path_role("tests/test_core.py") == "test" and path_role("src/pkg/conftest.py") == "test"
    assert path_role("web/app.spec.ts") == "test"
    assert path_role("docs/api.rst") == "docs" and path_role("README.md") == "docs" and path_role("CHANGES.rst") == "docs"
    assert path_role("src/click/core.py") == "source" and path_role("testing_utils/contest.py") == "source"


def test_reported_failures_do_not_count_as_asking_for_tests():
    """A failing-test report does not ask for tests; "which test covers X" and "where is it documented" do."""
    assert wanted_roles(TRACEBACK) == set()
    assert wanted_roles("Test failure on main after the refactor") == set()
    assert wanted_roles("Which unit test covers refunds?") == {"test"}
    assert wanted_roles("Where is the retry policy documented in the docs?") == {"docs"}


def test_frames_put_innermost_source_first_and_tests_last():
    """Frames are read innermost first, the failing test's own frame last."""
    mentions = path_mentions(TRACEBACK)
    assert [m.path.rsplit("/", 1)[-1] for m in mentions[:3]] == ["string.py", "__init__.py", "test_markupsafe.py"]
    assert mentions[1].line == 325
    assert frame_functions(TRACEBACK) == ["vformat", "format", "test_format"]


def _chunk(path: str, start: int, end: int) -> dict:
    return {"path_tails": path_suffixes(path), "start_line": start, "end_line": end}


def test_path_matches_follow_frames_and_lines():
    """The chunk holding the source frame's line ranks first, other chunks of that file next, the test file last."""
    matches = [
        ("t1", _chunk("tests/test_markupsafe.py", 100, 120)),
        ("s1", _chunk("src/markupsafe/__init__.py", 1, 50)),
        ("s2", _chunk("src/markupsafe/__init__.py", 300, 340)),
        ("o1", _chunk("src/other/__init__.py", 1, 40)),  # shares only the file name: a shorter suffix, never matched
    ]
    assert order_path_matches(path_mentions(TRACEBACK), matches) == ["s2", "s1", "t1"]


def test_aggregation_and_prior():
    """Two good chunks beat one slightly better one, and a test file's chunk counts half unless tests are asked for."""
    fused = [("a1", 1.0), ("b1", 0.9), ("b2", 0.8), ("t1", 1.5)]
    files = {"a1": ("r", "src/a.py"), "b1": ("r", "src/b.py"), "b2": ("r", "src/b.py"), "t1": ("r", "tests/test_a.py")}
    plain = aggregate_files(fused, files, decay=0.0, prior=None)
    assert [k[1] for k, _ in plain] == ["tests/test_a.py", "src/a.py", "src/b.py"]
    ranked = aggregate_files(fused, files, query="why does a crash", decay=0.3)
    assert [k[1] for k, _ in ranked] == ["src/b.py", "src/a.py", "tests/test_a.py"]
    asked = aggregate_files(fused, files, query="which tests cover a?", decay=0.3)
    assert [k[1] for k, _ in aggregate_files(fused, files, query="why does a crash")] == ["src/a.py", "src/b.py", "tests/test_a.py"]
    assert asked[0][0][1] == "tests/test_a.py"
