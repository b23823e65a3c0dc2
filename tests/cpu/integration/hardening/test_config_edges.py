"""Config edges: a safe, non-empty `index.collection`; `qdrant.path` on a file is one line; a relative
`qdrant.path` resolves against the config file's directory."""

from __future__ import annotations

import os
import subprocess

import pytest

from codesense_ray.config import config_from_dict, load_config
from codesense_ray.errors import InvalidConfig
from tests.conftest import CODESENSE_BIN

BAD_COLLECTIONS = ["", " ", "a b", "../x", "x/y", "a__b", "_leading", "-dash", "ünï", "a" * 65, "x\n", "x\x00", "*", "codesense__20240101", "a.b"]
GOOD_COLLECTIONS = ["codesense", "payments-prod", "team_a", "A1", "x" * 64, "v2-index_main"]


@pytest.mark.parametrize("name", BAD_COLLECTIONS)
def test_unsafe_collection_rejected(tmp_path, name):
    """Empty, path-like, separator-carrying, non-ASCII, overlong names: InvalidConfig naming `index.collection`."""
    with pytest.raises(InvalidConfig, match=r"`index.collection`: .*not a safe collection name") as err:
        config_from_dict({"index": {"collection": name}}, tmp_path)
    assert "\n" not in str(err.value).replace(repr(name), "")


@pytest.mark.parametrize("name", GOOD_COLLECTIONS)
def test_safe_collection_accepted(tmp_path, name):
    """Letters, digits, single `_` and `-` up to 64 characters are accepted."""
    assert config_from_dict({"index": {"collection": name}}, tmp_path).index.collection == name


@pytest.mark.parametrize("value", ["store", "./store", "sub/dir/store", "../outside-store"])
def test_relative_qdrant_path_resolves_against_config_dir(tmp_path, monkeypatch, value):
    """A relative `qdrant.path` is relative to the config file, not to the working directory."""
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "codesense.yaml").write_text(f"qdrant:\n  path: {value}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(tmp_path / "proj" / "codesense.yaml")
    assert cfg.qdrant_path == (tmp_path / "proj" / value).resolve()


def test_absolute_and_home_qdrant_paths(tmp_path):
    """Absolute paths stay as they are; `~` expands."""
    assert config_from_dict({"qdrant": {"path": str(tmp_path / "abs")}}, tmp_path).qdrant_path == tmp_path / "abs"
    from pathlib import Path

    assert config_from_dict({"qdrant": {"path": "~/q"}}, tmp_path).qdrant_path == Path(os.path.expanduser("~/q"))


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_qdrant_path_on_a_file(tmp_path, where):
    """`qdrant.path` naming a file (or a path under a file): InvalidConfig, one line naming the key."""
    from codesense_ray.store.qdrant import open_client

    (tmp_path / "afile").write_text("x")
    value = "afile" if where == "file" else "afile/qdrant"
    with pytest.raises(InvalidConfig, match="qdrant.path") as err:
        open_client(config_from_dict({"qdrant": {"path": value}}, tmp_path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("yaml_text, fragment", [("qdrant:\n  path: afile\n", "qdrant.path"), ("index:\n  collection: ''\n", "index.collection"), ("index:\n  collection: a__b\n", "index.collection")])
def test_cli_one_line(tmp_path, yaml_text, fragment):
    """Through the CLI: one stderr line naming the key, exit 2."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "codesense.yaml").write_text(yaml_text)
    env = dict(os.environ, CODESENSE_HOME=str(tmp_path / ".codesense"))
    proc = subprocess.run([CODESENSE_BIN, "status", "--config", str(tmp_path / "codesense.yaml")], capture_output=True, text=True, env=env, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr
