"""The dev sets under data/eval/: contract shape, gold that points at real lines, reproducible builders."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
EVAL = ROOT / "data" / "eval"
DEVSETS = ROOT / "benchmarks" / "devsets"
sys.path.insert(0, str(DEVSETS))

import _common  # noqa: E402
import build_docstring_set  # noqa: E402
import build_handwritten_set  # noqa: E402
import build_issue_set  # noqa: E402

REPO_ROOTS = {"payments": ROOT / "tests" / "fixtures" / "payments-service", "codesense": ROOT}
DATASETS = sorted(EVAL.glob("*.jsonl"))
LIBRARY_SETS = {"docstring.jsonl": "docstring.meta.json", "issues.jsonl": "issues.meta.json", "bugs.jsonl": "bugs.meta.json"}


def _rows(path: Path) -> list[tuple[int, dict]]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            out.append((number, json.loads(line)))
    return out


def _line_count(file: Path) -> int:
    text = file.read_text(encoding="utf-8")
    return len(text.split("\n")) - (1 if text.endswith("\n") else 0)


def _installed_versions_match(meta_name: str) -> bool:
    meta = json.loads((EVAL / meta_name).read_text(encoding="utf-8"))
    return all(_common.library_version(lib) == entry["version"] for lib, entry in meta["libraries"].items())


def test_expected_sets_exist():
    """The four dev sets are present with the agreed minimum sizes."""
    sizes = {p.name: len(_rows(p)) for p in DATASETS}
    assert sizes["handwritten.jsonl"] >= 40
    assert sizes["docstring.jsonl"] >= 3 * 60
    assert 40 <= sizes["issues.jsonl"] <= 80
    assert sizes["issues_payments.jsonl"] >= 10


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda p: p.name)
def test_lines_follow_the_contract(dataset: Path):
    """Every line is one JSON object with id, question, repo, gold spans (path, 1-based inclusive lines) and optional answer."""
    rows = _rows(dataset)
    assert rows, f"{dataset.name} is empty"
    for number, row in rows:
        where = f"{dataset.name}:{number}"
        assert isinstance(row, dict), where
        assert isinstance(row.get("id"), str) and row["id"].strip(), where
        assert isinstance(row.get("question"), str) and row["question"].strip(), where
        assert isinstance(row.get("repo"), str) and row["repo"], where
        assert isinstance(row.get("gold"), list) and row["gold"], where
        for g in row["gold"]:
            assert set(g) == {"path", "start_line", "end_line"}, where
            assert isinstance(g["path"], str) and g["path"] and not g["path"].startswith(("/", "./")), where
            assert isinstance(g["start_line"], int) and isinstance(g["end_line"], int), where
            assert 1 <= g["start_line"] <= g["end_line"], where
        if "answer" in row:
            assert isinstance(row["answer"], str) and row["answer"].strip(), where


def test_ids_are_unique_across_all_sets():
    """No id repeats, within a set or across sets (results of several runs can be joined on it)."""
    seen: dict[str, str] = {}
    for dataset in DATASETS:
        for number, row in _rows(dataset):
            assert row["id"] not in seen, f"{dataset.name}:{number} repeats {row['id']} from {seen.get(row['id'])}"
            seen[row["id"]] = f"{dataset.name}:{number}"


@pytest.mark.parametrize("dataset", DATASETS, ids=lambda p: p.name)
def test_the_evaluation_loader_accepts_the_set(dataset: Path):
    """The eval harness's own loader reads every set without complaint (skipped while it does not exist)."""
    loader = pytest.importorskip("codesense_ray.evaluation.dataset")
    assert len(loader.load_dataset(dataset)) == len(_rows(dataset))


@pytest.mark.parametrize("dataset", [p for p in DATASETS if p.name not in LIBRARY_SETS], ids=lambda p: p.name)
def test_local_gold_points_inside_existing_files(dataset: Path):
    """payments and codesense gold paths exist in their repository and each line range lies inside the file."""
    for number, row in _rows(dataset):
        root = REPO_ROOTS[row["repo"]]
        for g in row["gold"]:
            file = root / g["path"]
            assert file.is_file(), f"{dataset.name}:{number}: {row['repo']}:{g['path']} does not exist"
            assert g["end_line"] <= _line_count(file), f"{dataset.name}:{number}: {g['path']} has fewer than {g['end_line']} lines"


def test_handwritten_sets_resolve_against_todays_code():
    """Every spec anchor still resolves and names the same gold files as the committed JSONL.

    Line numbers of codesense's own code drift with every edit; file-level gold must not. Refresh the exact
    ranges with `python benchmarks/devsets/build_handwritten_set.py` (its `--check` reports drift).
    """
    for spec, out in build_handwritten_set.SPECS.items():
        resolved = build_handwritten_set.resolve_spec(spec)  # raises SpecError when an anchor disappeared
        committed = [r for _, r in _rows(out)]
        assert [r["id"] for r in committed] == [r["id"] for r in resolved], f"{out.name}: questions differ from {spec.name}"
        for old, new in zip(committed, resolved):
            assert [g["path"] for g in old["gold"]] == [g["path"] for g in new["gold"]], f"{out.name}: {old['id']} gold files changed"


def test_handwritten_mix():
    """The hand-written set covers both repositories, identifier and conceptual questions, and multi-file gold."""
    rows = [r for _, r in _rows(EVAL / "handwritten.jsonl")]
    repos = [r["repo"] for r in rows]
    assert repos.count("payments") >= 20 and repos.count("codesense") >= 15
    tags = [t for r in rows for t in r["tags"]]
    assert tags.count("identifiers") >= 10 and tags.count("conceptual") >= 10 and tags.count("multi_file") >= 5
    assert sum(1 for r in rows if r.get("answer")) >= 0.8 * len(rows)


def test_handwritten_anchor_resolution(tmp_path: Path, monkeypatch):
    """Spec gold resolves Python symbols (decorators included), brace blocks, Markdown sections; bad anchors fail."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "m.py").write_text("X = 1\n\n\nclass A:\n    @property\n    def b(self):\n        return 2\n")
    (repo / "main.go").write_text("package main\n\nfunc f() {\n\tif x {\n\t}\n}\n")
    (repo / "doc.md").write_text("# T\n\n## One\ntext\n\n## Two\nmore\n")
    monkeypatch.setitem(build_handwritten_set.REPO_ROOTS, "t", repo)
    resolve = build_handwritten_set.resolve_gold
    assert resolve("t", {"path": "pkg/m.py", "symbol": "A.b"}, "x") == {"path": "pkg/m.py", "start_line": 5, "end_line": 7}
    assert resolve("t", {"path": "pkg/m.py", "symbol": "X"}, "x")["end_line"] == 1
    assert resolve("t", {"path": "main.go", "anchor": "func f(", "end": "block"}, "x") == {"path": "main.go", "start_line": 3, "end_line": 6}
    assert resolve("t", {"path": "doc.md", "anchor": "## One", "end": "section"}, "x") == {"path": "doc.md", "start_line": 3, "end_line": 4}
    with pytest.raises(build_handwritten_set.SpecError):
        resolve("t", {"path": "pkg/m.py", "symbol": "A.missing"}, "x")
    with pytest.raises(build_handwritten_set.SpecError):
        resolve("t", {"path": "doc.md", "anchor": "##"}, "x")  # not unique


def test_docstring_builder_strips_docstrings_and_golds_start_at_def(tmp_path: Path):
    """On one small library the builder writes valid Python with the sampled docstrings removed; each gold span starts at a `def`."""
    out = tmp_path / "out"
    summary = build_docstring_set.build(["pathspec"], out, per_library=12, seed=7, dataset=tmp_path / "d.jsonl", meta=tmp_path / "m.json")
    rows = [r for _, r in _rows(tmp_path / "d.jsonl")]
    assert len(rows) == summary["queries"] >= 10
    repo = out / "corpus" / "pathspec"
    for file in repo.rglob("*.py"):
        ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    corpus = " ".join(" ".join(f.read_text(encoding="utf-8").split()) for f in sorted(repo.rglob("*.py")))
    for row in rows:
        assert row["repo"] == "pathspec"
        g = row["gold"][0]
        text = (repo / g["path"]).read_text(encoding="utf-8")
        lines = text.split("\n")
        assert lines[g["start_line"] - 1].lstrip().startswith(("def ", "async def ")), row["id"]
        func = next(
            n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.lineno == g["start_line"]
        )
        assert func.end_lineno == g["end_line"], row["id"]
        assert ast.get_docstring(func) is None, f"{row['id']}: docstring still there"
        assert len(row["question"].split()) >= 6
        assert " ".join(row["question"].split()) not in corpus or "`" in row["question"], f"{row['id']}: query text still in the corpus"
    config = yaml.safe_load((out / "codesense.yaml").read_text())
    assert config["repositories"] == [{"id": "pathspec", "path": "corpus/pathspec"}]
    assert json.loads((tmp_path / "m.json").read_text())["libraries"]["pathspec"]["version"] == _common.library_version("pathspec")


def test_docstring_builder_is_deterministic(tmp_path: Path):
    """Same installed version and seed → byte-identical dataset and corpus."""
    outputs = []
    for name in ("a", "b"):
        build_docstring_set.build(["pathspec"], tmp_path / name, per_library=8, seed=3, dataset=tmp_path / f"{name}.jsonl", meta=tmp_path / f"{name}.json")
        files = {p.relative_to(tmp_path / name).as_posix(): p.read_bytes() for p in sorted((tmp_path / name).rglob("*")) if p.is_file()}
        outputs.append(((tmp_path / f"{name}.jsonl").read_bytes(), files))
    assert outputs[0] == outputs[1]


def test_library_sets_match_a_fresh_build(tmp_path: Path):
    """Rebuilding docstring.jsonl and issues.jsonl from the installed libraries reproduces the committed files exactly."""
    if not (_installed_versions_match("docstring.meta.json") and _installed_versions_match("issues.meta.json")):
        pytest.skip("installed library versions differ from data/eval/*.meta.json (gold is version-specific)")
    meta = json.loads((EVAL / "docstring.meta.json").read_text())
    out = tmp_path / "devsets"
    build_docstring_set.build(
        list(meta["libraries"]), out, per_library=meta["per_library"], seed=meta["seed"], dataset=tmp_path / "docstring.jsonl", meta=tmp_path / "docstring.meta.json"
    )
    imeta = json.loads((EVAL / "issues.meta.json").read_text())
    build_issue_set.build(out, per_library=imeta["per_library"], seed=imeta["seed"], dataset=tmp_path / "issues.jsonl", meta=tmp_path / "issues.meta.json")
    for name in ("docstring.jsonl", "issues.jsonl"):
        assert (tmp_path / name).read_bytes() == (EVAL / name).read_bytes(), f"{name} differs from a fresh build"
    for name in ("docstring.meta.json", "issues.meta.json"):
        fresh, committed = json.loads((tmp_path / name).read_text()), json.loads((EVAL / name).read_text())
        fresh.pop("dataset"), committed.pop("dataset")
        fresh.pop("python", None), committed.pop("python", None)
        assert fresh == committed, f"{name} differs from a fresh build"
    # And every library gold span is a whole function of the rewritten copy.
    for name in ("docstring.jsonl", "issues.jsonl"):
        for _, row in _rows(EVAL / name):
            g = row["gold"][0]
            file = out / "corpus" / row["repo"] / g["path"]
            assert file.is_file(), row["id"]
            assert file.read_text(encoding="utf-8").split("\n")[g["start_line"] - 1].lstrip().startswith(("def ", "async def ")), row["id"]


def test_issue_reports_vary_in_shape():
    """Issue reports come in all three shapes; only `full` names the gold file in its traceback."""
    meta = json.loads((EVAL / "issues.meta.json").read_text())
    rows = {r["id"]: r for _, r in _rows(EVAL / "issues.jsonl")}
    assert set(meta["shapes"].values()) == {"full", "callers_only", "no_traceback"}
    for rid, shape in meta["shapes"].items():
        text, path = rows[rid]["question"], rows[rid]["gold"][0]["path"]
        has_tb = "Traceback (most recent call last):" in text
        assert has_tb == (shape != "no_traceback"), rid
        if has_tb:
            tb = text[text.index("Traceback") :].split("```", 1)[0]
            assert (f"site-packages/{path}" in tb) == (shape == "full"), rid
        assert len(text) > 600, rid
