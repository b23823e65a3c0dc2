"""Repository ids, clone/web URLs, line links, git HEAD and the configured repository set."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from codesense_ray.config import config_from_dict
from codesense_ray.errors import InvalidConfig, RepositoryNotFound
from codesense_ray.sources.repositories import (
    RepositoryInfo,
    git_head_sha,
    is_git_work_tree,
    line_url,
    parse_repository_info,
    resolve_repositories,
    select_repositories,
)

URL_CASES = [
    # url, id, web_url, host_kind
    ("https://github.com/google-gemini/gemini-cli", "gemini-cli", "https://github.com/google-gemini/gemini-cli", "github"),
    ("https://github.com/google-gemini/gemini-cli.git", "gemini-cli", "https://github.com/google-gemini/gemini-cli", "github"),
    ("https://github.com/google-gemini/gemini-cli/", "gemini-cli", "https://github.com/google-gemini/gemini-cli", "github"),
    ("https://github.com/Owner/Repo.git/", "repo", "https://github.com/Owner/Repo", "github"),
    ("git@github.com:octo-org/Hello.World.git", "hello.world", "https://github.com/octo-org/Hello.World", "github"),
    ("ssh://git@github.com/octo-org/hello", "hello", "https://github.com/octo-org/hello", "github"),
    ("https://gitlab.com/a/b/c/repo", "repo", "https://gitlab.com/a/b/c/repo", "gitlab"),
    ("git@gitlab.com:group/sub/repo.git", "repo", "https://gitlab.com/group/sub/repo", "gitlab"),
    ("ssh://git@gitlab.example.com:2222/team/payments.git", "payments", "https://gitlab.example.com/team/payments", "gitlab"),
    ("https://gitlab.example.com/team/platform/payments", "payments", "https://gitlab.example.com/team/platform/payments", "gitlab"),
    ("https://github.example.com/corp/api.git", "api", "https://github.example.com/corp/api", "github"),
    ("https://git.example.org/x/y/Service_V2.git", "service_v2", "https://git.example.org/x/y/Service_V2", "generic"),
    ("ssh://git@git.corp.io:7999/group/repo.git", "repo", "https://git.corp.io/group/repo", "generic"),
    ("https://bitbucket.org/team/repo", "repo", "https://bitbucket.org/team/repo", "bitbucket"),
    ("git@bitbucket.org:team/repo.git", "repo", "https://bitbucket.org/team/repo", "bitbucket"),
    ("https://user@github.com/owner/private-repo", "private-repo", "https://github.com/owner/private-repo", "github"),
    ("http://user:token@code.example.com:8443/proj/tool.git", "tool", "https://code.example.com/proj/tool", "generic"),
    ("https://github.com/owner/repo/tree/main/src", "repo", "https://github.com/owner/repo", "github"),
    ("https://gitlab.com/group/repo/-/tree/main", "repo", "https://gitlab.com/group/repo", "gitlab"),
]


@pytest.mark.parametrize(("url", "rid", "web_url", "kind"), URL_CASES)
def test_parse_repository_info_forms(url: str, rid: str, web_url: str, kind: str) -> None:
    """Each supported URL form yields the expected id, https web URL and host kind."""
    info = parse_repository_info(url)
    assert (info.id, info.web_url, info.host_kind) == (rid, web_url, kind)
    assert info.ref is None and info.path is None


def test_clone_url_keeps_credentials_and_drops_trailing_slash() -> None:
    """The clone URL is what git needs: user kept, trailing slash dropped, `.git` left as given."""
    assert parse_repository_info("https://user@github.com/o/r.git/").clone_url == "https://user@github.com/o/r.git"
    assert parse_repository_info("git@gitlab.com:g/r.git").clone_url == "git@gitlab.com:g/r.git"


def test_clone_url_of_browser_link_is_the_project() -> None:
    """A URL pasted from a browser tree view clones the project, not the tree page."""
    assert parse_repository_info("https://github.com/o/r/tree/main").clone_url == "https://github.com/o/r"


def test_file_url_is_a_local_clone() -> None:
    """`file://` URLs are local clones: host kind `local`, no web URL, id from the last component."""
    info = parse_repository_info("file:///tmp/clones/My%20Service.git")
    assert (info.id, info.web_url, info.host_kind) == ("my-service", None, "local")
    assert info.clone_url == "file:///tmp/clones/My%20Service.git"


@pytest.mark.parametrize(
    "junk",
    ["", "   ", "not a url", "foo", "../payments", "https://github.com", "https://github.com/owner",
     "ftp://example.com/a/b", "https://", "file:///", "https://example.com:abc/a/b", "git@github.com:",
     "https://example.com/../x"],
)  # fmt: skip
def test_junk_urls_raise_value_error(junk: str) -> None:
    """Inputs that are not repository URLs raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=r"URL|scheme"):
        parse_repository_info(junk)


LINK_CASES = [
    ("https://github.com/o/r", "github", "abc123", "src/a.py", 10, 42, "https://github.com/o/r/blob/abc123/src/a.py#L10-L42"),
    ("https://github.com/o/r", "github", "abc123", "src/a.py", 7, 7, "https://github.com/o/r/blob/abc123/src/a.py#L7"),
    ("https://github.com/o/r", "github", None, "a.py", 1, 2, "https://github.com/o/r/blob/HEAD/a.py#L1-L2"),
    ("https://gitlab.com/g/s/r", "gitlab", "main", "app/x.go", 3, 9, "https://gitlab.com/g/s/r/-/blob/main/app/x.go#L3-9"),
    ("https://gitlab.com/g/r", "gitlab", "main", "x.go", 5, 5, "https://gitlab.com/g/r/-/blob/main/x.go#L5"),
    ("https://bitbucket.org/t/r", "bitbucket", "dev", "lib/y.ts", 4, 8, "https://bitbucket.org/t/r/src/dev/lib/y.ts#lines-4:8"),
    ("https://bitbucket.org/t/r", "bitbucket", "dev", "y.ts", 4, 4, "https://bitbucket.org/t/r/src/dev/y.ts#lines-4"),
    ("https://git.example.org/x/r/", "generic", "v1", "m.tf", 1, 3, "https://git.example.org/x/r/blob/v1/m.tf#L1-L3"),
    ("https://github.com/o/r", "github", "feature/auth", "docs/my file#1?.md", 2, 3,
     "https://github.com/o/r/blob/feature/auth/docs/my%20file%231%3F.md#L2-L3"),
]  # fmt: skip


@pytest.mark.parametrize(("web", "kind", "ref", "path", "s", "e", "expected"), LINK_CASES)
def test_line_url_per_host(web: str, kind: str, ref: str | None, path: str, s: int, e: int, expected: str) -> None:
    """Line links use each host's own blob URL and line-anchor syntax, with quoted path segments."""
    assert line_url(web, kind, ref, path, s, e) == expected


def test_line_url_without_web_url_points_at_the_local_file(tmp_path: Path) -> None:
    """Local repositories link to the absolute file with a `file://` URL and a line anchor."""
    url = line_url(None, "local", None, "pkg/my mod.py", 3, 5, local_root=tmp_path)
    assert url == (tmp_path / "pkg" / "my mod.py").as_uri() + "#L3-L5"
    assert "%20" in url
    with pytest.raises(ValueError, match="local_root"):
        line_url(None, "local", None, "a.py", 1, 1)


def test_line_url_rejects_bad_ranges() -> None:
    """A range that is not 1-based and ordered is a caller bug, reported as ValueError."""
    with pytest.raises(ValueError, match="line range"):
        line_url("https://github.com/o/r", "github", None, "a.py", 5, 2)
    with pytest.raises(ValueError, match="line range"):
        line_url("https://github.com/o/r", "github", None, "a.py", 0, 2)


def test_repository_info_line_url_uses_its_ref() -> None:
    """`RepositoryInfo.line_url` fills in the repository's own web URL, host kind and ref."""
    info = RepositoryInfo("r", "git@gitlab.com:g/r.git", "https://gitlab.com/g/r", "gitlab", "4f1c2ab")
    assert info.line_url("a.py", 1, 4) == "https://gitlab.com/g/r/-/blob/4f1c2ab/a.py#L1-4"


def _git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


@needs_git
def test_git_head_sha_of_a_committed_work_tree(tmp_path: Path) -> None:
    """A git work tree with a commit reports that commit's SHA; before the first commit, None."""
    _git(tmp_path, "init", "-q")
    assert is_git_work_tree(tmp_path)
    assert git_head_sha(tmp_path) is None
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    sha = git_head_sha(tmp_path)
    assert sha == _git(tmp_path, "rev-parse", "HEAD") and len(sha) == 40


@needs_git
def test_git_head_sha_outside_a_work_tree(tmp_path: Path) -> None:
    """Plain directories, missing directories and subdirectories of another repository give None."""
    assert git_head_sha(tmp_path) is None
    assert git_head_sha(tmp_path / "missing") is None
    _git(tmp_path, "init", "-q")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    assert not is_git_work_tree(tmp_path / "sub")
    assert git_head_sha(tmp_path / "sub") is None


def _config(tmp_path: Path, repositories: list[dict]) -> object:
    return config_from_dict({"repositories": repositories}, tmp_path)


@needs_git
def test_resolve_repositories_url_and_path_entries(tmp_path: Path) -> None:
    """URL entries map to data/raw/<id> with overrides; path entries resolve in place with git HEAD as ref."""
    local = tmp_path / "payments-service"
    local.mkdir()
    (local / "a.py").write_text("x = 1\n")
    _git(local, "init", "-q")
    _git(local, "add", ".")
    _git(local, "commit", "-q", "-m", "first")
    plain = tmp_path / "plain"
    plain.mkdir()
    cfg = _config(
        tmp_path,
        [
            {"url": "https://github.com/google-gemini/gemini-cli"},
            {"url": "git@gitlab.com:g/tool.git", "id": "Tool-X", "ref": "v2", "web_url": "https://code.example.com/g/tool/"},
            {"id": "payments", "path": "payments-service", "web_url": "https://gitlab.example.com/team/payments"},
            {"id": "plain", "path": "plain"},
        ],
    )
    gem, tool, pay, pl = resolve_repositories(cfg)
    assert gem == RepositoryInfo(
        "gemini-cli",
        "https://github.com/google-gemini/gemini-cli",
        "https://github.com/google-gemini/gemini-cli",
        "github",
        None,
        tmp_path.resolve() / "data" / "raw" / "gemini-cli",
    )
    assert (tool.id, tool.web_url, tool.host_kind, tool.ref) == ("Tool-X", "https://code.example.com/g/tool", "generic", "v2")
    assert tool.path == tmp_path.resolve() / "data" / "raw" / "Tool-X"
    assert (pay.path, pay.host_kind, pay.web_url) == (local.resolve(), "gitlab", "https://gitlab.example.com/team/payments")
    assert pay.ref == _git(local, "rev-parse", "HEAD")
    assert (pl.host_kind, pl.web_url, pl.ref, pl.path) == ("local", None, None, plain.resolve())
    assert pl.line_url("a.py", 1, 1) == (plain.resolve() / "a.py").as_uri() + "#L1"


def test_ref_file_written_by_converge_supplies_the_ref(tmp_path: Path) -> None:
    """A `.codesense-ref` in data/raw/<id>/ is the ref of a URL entry without its own `ref`."""
    raw = tmp_path / "data" / "raw" / "gemini-cli"
    raw.mkdir(parents=True)
    (raw / ".codesense-ref").write_text("\n4f1c2ab9e0\n")
    cfg = _config(tmp_path, [{"url": "https://github.com/google-gemini/gemini-cli"}])
    assert resolve_repositories(cfg)[0].ref == "4f1c2ab9e0"
    cfg = _config(tmp_path, [{"url": "https://github.com/google-gemini/gemini-cli", "ref": "main"}])
    assert resolve_repositories(cfg)[0].ref == "main"


def test_duplicate_ids_are_invalid_config(tmp_path: Path) -> None:
    """Two entries resolving to the same id (case-insensitively) raise InvalidConfig naming the id."""
    cfg = _config(tmp_path, [{"url": "https://github.com/a/tool"}, {"url": "git@gitlab.com:b/Tool.git"}])
    with pytest.raises(InvalidConfig, match="duplicate repository id 'tool'"):
        resolve_repositories(cfg)


def test_bad_url_and_unsafe_id_are_invalid_config(tmp_path: Path) -> None:
    """A junk URL or an id that is not directory-safe is reported as InvalidConfig with its entry."""
    with pytest.raises(InvalidConfig, match=r"repositories\[0\]\.url"):
        resolve_repositories(_config(tmp_path, [{"url": "https://github.com/only-owner"}]))
    with pytest.raises(InvalidConfig, match=r"repositories\[0\]\.id"):
        resolve_repositories(_config(tmp_path, [{"url": "https://github.com/o/r", "id": "../escape"}]))


def test_select_repositories(tmp_path: Path) -> None:
    """Selection keeps config order, returns all for no ids, and names known ids for an unknown one."""
    infos = [RepositoryInfo(i, "", None, "local") for i in ("a", "b", "c")]
    assert [i.id for i in select_repositories(infos, ["c", "a"])] == ["a", "c"]
    assert select_repositories(infos, []) == infos
    with pytest.raises(RepositoryNotFound, match=r"^unknown repository 'x' \(known: a, b, c\)$"):
        select_repositories(infos, ["a", "x"])
