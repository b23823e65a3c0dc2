"""A file swapped for a symlink between selection and reading is never followed out of the repository."""

from __future__ import annotations

import os
import shutil

import pytest

from codesense_ray.sources.files import read_text, select_files
from codesense_ray.sources.safe_open import OutsideRepository, read_inside

SECRET = "TOP-SECRET-OUTSIDE-THE-REPO"


@pytest.fixture
def layout(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "main.py").write_text("def main():\n    return 1\n")
    (repo / "app" / "other.py").write_text("x = 1\n")
    outside = tmp_path / "outside"
    (outside / "app").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET)
    (outside / "app" / "main.py").write_text(SECRET)
    return repo, outside


def _swap_file(repo, outside, kind):
    target = repo / "app" / "main.py"
    target.unlink()
    if kind == "absolute":
        target.symlink_to(outside / "secret.txt")
    elif kind == "relative":
        target.symlink_to(os.path.relpath(outside / "secret.txt", target.parent))
    elif kind == "system file":
        target.symlink_to("/etc/passwd")
    elif kind == "inside repo":
        target.symlink_to(repo / "app" / "other.py")
    elif kind == "dangling":
        target.symlink_to(repo / "nope.py")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        shutil.rmtree(repo / "app")
        (repo / "app").symlink_to(outside / "app")


KINDS = ["absolute", "relative", "system file", "inside repo", "dangling", "fifo", "directory"]


@pytest.mark.parametrize("kind", KINDS)
def test_read_after_swap_never_leaves_repository(layout, kind):
    """After selection, swapping the file (or its directory) for a symlink/FIFO makes the read fail, never follow."""
    repo, outside = layout
    sel = select_files(repo, max_file_bytes=10_000, max_line_length=1000)
    sf = next(f for f in sel.files if f.path == "app/main.py")
    _swap_file(repo, outside, kind)
    with pytest.raises(OSError):
        read_text(sf, repo)


@pytest.mark.parametrize("kind", KINDS)
def test_chunk_stage_skips_swapped_file(layout, kind):
    """The chunking stage (what Ray workers run) drops a swapped file instead of indexing what it points to."""
    from codesense_ray.index.stages import ChunkFiles

    repo, outside = layout
    _swap_file(repo, outside, kind)
    stage = ChunkFiles.__new__(ChunkFiles)  # the tokenizer is not needed: the read fails before chunking
    stage.redact_secrets, stage.max_tokens, stage.min_tokens, stage.count_tokens = True, 256, 0, len
    row = {"repo_id": ["r"], "path": ["app/main.py"], "abs_path": [str(repo / "app" / "main.py")], "root": [str(repo)],
           "language": ["python"], "file_hash": ["h"], "web_url": [""], "ref": [""]}  # fmt: skip
    out = stage(row)
    assert out["id"] == [] and SECRET not in "".join(out["payload_json"])


def test_directory_swapped_during_walk_is_caught(layout):
    """Selection reads contents through the same guard: a directory swapped for a symlink before the read is refused."""
    repo, outside = layout
    real_app = repo / "app"
    shutil.move(str(real_app), str(repo / "app_moved"))
    (repo / "app").symlink_to(outside / "app")
    sel = select_files(repo, max_file_bytes=10_000, max_line_length=1000)
    assert all(not f.path.startswith("app/") for f in sel.files) and sel.skipped["symlink"] == 1


def test_outside_repository_error(layout):
    """A path whose directory resolves outside the root raises OutsideRepository; inside it reads normally."""
    repo, outside = layout
    (repo / "link").symlink_to(outside)
    with pytest.raises(OutsideRepository):
        read_inside(repo / "link" / "secret.txt", repo)
    assert read_inside(repo / "app" / "other.py", repo) == b"x = 1\n"


def test_indexer_scan_counts_swapped_file_unreadable(layout, monkeypatch):
    """The indexer's scan (hashing after selection) counts a swapped file as unreadable and reads nothing outside."""
    import codesense_ray.index.indexer as indexing
    from codesense_ray.config import config_from_dict
    from codesense_ray.index.indexer import Indexer, RepoReport
    from codesense_ray.sources.repositories import resolve_repositories

    repo, outside = layout
    cfg = config_from_dict({"repositories": [{"id": "r", "path": "repo"}]}, repo.parent)
    real_select = indexing.select_files

    def select_then_swap(*args, **kwargs):
        selection = real_select(*args, **kwargs)
        _swap_file(repo, outside, "absolute")  # the race: after the walk, before the read
        return selection

    monkeypatch.setattr(indexing, "select_files", select_then_swap)
    indexer = Indexer(cfg, store=None, model=None, embed_and_write=None)
    report = RepoReport("r")
    files = indexer._scan(resolve_repositories(cfg)[0], report)
    assert set(files) == {"app/other.py"} and report.skipped["unreadable"] == 1
