"""Repository identity: ids, clone URLs, web links to exact lines, and the configured set of repositories.

Pure logic (no Ray). The only I/O is reading a directory's git HEAD and the `.codesense-ref` marker that
`converge` leaves beside a checked-out snapshot.

    >>> info = parse_repository_info("git@gitlab.com:team/platform/payments.git")
    >>> info.id, info.web_url, info.host_kind
    ('payments', 'https://gitlab.com/team/platform/payments', 'gitlab')
    >>> line_url(info.web_url, info.host_kind, "4f1c2ab", "app/auth/jwt.py", 10, 42)
    'https://gitlab.com/team/platform/payments/-/blob/4f1c2ab/app/auth/jwt.py#L10-42'
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from codesense_ray.config import Config
from codesense_ray.errors import InvalidConfig, RepositoryNotFound

HOST_KINDS = ("github", "gitlab", "bitbucket", "generic", "local")
REF_FILE = ".codesense-ref"
"""Written by `converge` into data/raw/<id>/: the commit SHA the snapshot was taken at on the first line, then
(`converge.history`) its ancestors, newest first, one per line."""

DEFAULT_REF = "HEAD"
GIT_TIMEOUT_S = 10.0

_REMOTE_SCHEMES = {"https", "http", "ssh", "git", "git+ssh", "ssh+git"}
# scp-like ssh form: [user@]host:path — the path must not start with "/" followed by "/" (that's a URL).
_SCP_RE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>[A-Za-z0-9.-]+):(?!//)(?P<path>\S+)$")
# Scheme-less "github.com/owner/repo": a first segment that looks like a DNS name.
_BARE_HOST_RE = re.compile(r"^(?P<host>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::\d+)?/(?P<path>\S+)$")
_ID_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_ID_OVERRIDE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


@dataclass(frozen=True)
class RepositoryInfo:
    """Where a repository comes from, where its links point, and which local directory is indexed.

    `ref` is the commit or branch used in links (None: unknown, links use `HEAD`). `path` is the local
    directory to index; for `url:` entries it is `data/raw/<id>/`, which exists only after converge.
    """

    id: str
    clone_url: str
    web_url: str | None
    host_kind: str
    ref: str | None = None
    path: Path | None = None

    def line_url(self, path: str, start: int, end: int) -> str:
        """Link to lines `start..end` (1-based, inclusive) of `path` in this repository."""
        return line_url(self.web_url, self.host_kind, self.ref, path, start, end, local_root=self.path)


def host_kind_for(host: str) -> str:
    """Host kind from a hostname: self-hosted GitLab/GitHub Enterprise/Bitbucket are recognised by name."""
    h = host.lower()
    for kind in ("gitlab", "github", "bitbucket"):
        if kind in h:
            return kind
    return "generic"


def _repo_id(name: str, original: str) -> str:
    rid = _ID_UNSAFE.sub("-", name.lower()).strip("-.")
    if not rid:
        raise ValueError(f"cannot derive a repository id from {original!r}: give an explicit `id:`")
    return rid


def _project_segments(raw_path: str, kind: str, original: str) -> list[str]:
    """Path segments that name the project (owner/.../repo), without `.git` and UI suffixes."""
    segments = [unquote(s) for s in raw_path.split("/") if s and s != "."]
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1][: -len(".git")]
        if not segments[-1]:
            segments.pop()
    if kind == "gitlab" and "-" in segments:
        # .../repo/-/tree/main: everything from "-" on is GitLab UI, not the project path.
        segments = segments[: segments.index("-")]
    elif kind in ("github", "bitbucket") and len(segments) > 2:
        # .../owner/repo/tree/main or .../src/main: these hosts have exactly owner/repo.
        segments = segments[:2]
    if ".." in segments:
        raise ValueError(f"not a repository URL: {original!r} (path contains '..')")
    if not segments:
        raise ValueError(f"not a repository URL: {original!r} (no repository path after the host)")
    if kind in ("github", "gitlab", "bitbucket") and len(segments) < 2:
        raise ValueError(f"not a repository URL: {original!r} (expected <owner>/<repo> after the host)")
    return segments


def _remote_info(original: str, clone_url: str, host: str, raw_path: str, base: str | None = None) -> RepositoryInfo:
    """`base` (scheme://netloc of an http(s) URL) rebuilds the clone URL when a browser suffix was cut off."""
    host = host.lower()
    if not host:
        raise ValueError(f"not a repository URL: {original!r} (no host)")
    kind = host_kind_for(host)
    segments = _project_segments(raw_path, kind, original)
    project = "/".join(quote(s, safe="") for s in segments)
    web_url = f"https://{host}/{project}"
    if base and not re.search(r"/" + re.escape(segments[-1]) + r"(?:\.git)?/*$", raw_path):
        clone_url = f"{base}/{project}"  # e.g. .../owner/repo/tree/main pasted from a browser
    return RepositoryInfo(id=_repo_id(segments[-1], original), clone_url=clone_url, web_url=web_url, host_kind=kind)


def parse_repository_info(url: str) -> RepositoryInfo:
    """Parse a clone URL (https, ssh, scp-like `git@host:group/repo.git`, or `file://`) into a RepositoryInfo.

    `id` is the repository name, lower-cased and safe as a directory name; `web_url` is always
    `https://host/owner/.../repo` (user, port and `.git` dropped). A `file://` URL is a local clone
    (host kind `local`, no web URL). Raises `ValueError` naming the input when it is not a repository URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("empty repository URL")
    original = url.strip()
    if any(c.isspace() for c in original):
        raise ValueError(f"not a repository URL: {original!r} (contains whitespace)")
    clone_url = original.rstrip("/")

    if "://" in original:
        parts = urlsplit(original)
        scheme = parts.scheme.lower()
        if scheme == "file":
            segments = [s for s in unquote(parts.path).split("/") if s]
            name = segments[-1] if segments else ""
            if name.endswith(".git"):
                name = name[: -len(".git")]
            if not name:
                raise ValueError(f"not a repository URL: {original!r} (no directory in the file URL)")
            return RepositoryInfo(id=_repo_id(name, original), clone_url=clone_url, web_url=None, host_kind="local")
        if scheme not in _REMOTE_SCHEMES:
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {original!r} (use https, ssh or file)")
        try:
            host = parts.hostname or ""
            parts.port  # noqa: B018 - validates the port; ValueError on junk like host:abc
        except ValueError as err:
            raise ValueError(f"not a repository URL: {original!r} ({err})") from None
        base = f"{scheme}://{parts.netloc}" if scheme in ("http", "https") else None
        return _remote_info(original, clone_url, host, parts.path, base)

    scp = _SCP_RE.match(original)
    if scp and not scp.group("path").isdigit():
        return _remote_info(original, clone_url, scp.group("host"), scp.group("path"))

    bare = _BARE_HOST_RE.match(original)
    if bare:
        return _remote_info(original, "https://" + clone_url, bare.group("host"), bare.group("path"))

    raise ValueError(
        f"not a repository URL: {original!r} (expected https://host/owner/repo, git@host:owner/repo.git or file:///path)"
    )


def line_url(
    web_url: str | None,
    host_kind: str,
    ref: str | None,
    path: str,
    start: int,
    end: int,
    local_root: Path | None = None,
) -> str:
    """Link to lines `start..end` (1-based, inclusive) of `path` (posix, relative to the repository root).

    GitHub and generic hosts: `{web_url}/blob/{ref}/{path}#L{s}-L{e}`; GitLab: `/-/blob/...#L{s}-{e}`;
    Bitbucket: `/src/...#lines-{s}:{e}`. A single line drops the range. `ref` defaults to `HEAD`. Without a
    web URL (local repositories) the link is a `file://` URL to the file under `local_root`.
    """
    if start < 1 or end < start:
        raise ValueError(f"invalid line range {start}-{end} (1-based, start <= end)")
    rel = path.lstrip("/")
    if not web_url or host_kind == "local":
        if local_root is None:
            raise ValueError(f"no web_url and no local_root: cannot link {path!r}")
        uri = (Path(local_root) / rel).absolute().as_uri()
        return uri + (f"#L{start}" if start == end else f"#L{start}-L{end}")
    base = web_url.rstrip("/")
    qref = quote(ref or DEFAULT_REF, safe="/")
    qpath = quote(rel, safe="/")
    if host_kind == "gitlab":
        anchor = f"#L{start}" if start == end else f"#L{start}-{end}"
        return f"{base}/-/blob/{qref}/{qpath}{anchor}"
    if host_kind == "bitbucket":
        anchor = f"#lines-{start}" if start == end else f"#lines-{start}:{end}"
        return f"{base}/src/{qref}/{qpath}{anchor}"
    anchor = f"#L{start}" if start == end else f"#L{start}-L{end}"
    return f"{base}/blob/{qref}/{qpath}{anchor}"


def _git(directory: Path, *args: str) -> str | None:
    """stdout of `git <args>` run in `directory`, or None on any failure (no git, not a repo, timeout)."""
    # An inherited GIT_DIR/GIT_WORK_TREE would make git answer about some other repository.
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def is_git_work_tree(directory: Path) -> bool:
    """True when `directory` is the top level of a git work tree.

    A subdirectory of some other repository does not count: its paths are not relative to that
    repository's root, so that repository's commit would produce wrong links.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return False
    top = _git(directory, "rev-parse", "--show-toplevel")
    if not top:
        return False
    try:
        return Path(top).resolve() == directory.resolve()
    except OSError:
        return False


def git_head_sha(directory: Path) -> str | None:
    """HEAD commit SHA of the git work tree rooted at `directory`; None if not a work tree, no git, or no commits."""
    if not is_git_work_tree(directory):
        return None
    sha = _git(Path(directory), "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return sha if sha and _SHA_RE.match(sha) else None


def read_ref_history(directory: Path) -> list[str]:
    """The commits recorded by converge in `<directory>/.codesense-ref`, newest (the snapshot's) first; [] if none."""
    try:
        text = (Path(directory) / REF_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_ref_file(directory: Path) -> str | None:
    """The ref recorded by converge in `<directory>/.codesense-ref` (first non-empty line), if any."""
    commits = read_ref_history(directory)
    return commits[0] if commits else None


def _web_url_override(value: str, where: str) -> tuple[str, str]:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidConfig(f"{where}.web_url: expected an http(s) URL, got {value!r}")
    return value.strip().rstrip("/"), host_kind_for(parts.hostname)


def resolve_repositories(cfg: Config) -> list[RepositoryInfo]:
    """One RepositoryInfo per `repositories:` entry, in config order.

    `url:` entries are indexed from `data/raw/<id>/` (relative to the config file; it may not exist
    before converge, callers report that); their ref is the entry's `ref`, else the SHA converge wrote
    to `.codesense-ref`. `path:` entries are indexed in place; their ref is the entry's `ref`, else the
    HEAD commit when the directory is a git work tree. Raises `InvalidConfig` for an unparsable URL, an
    unsafe `id`, or two entries with the same id.
    """
    infos: list[RepositoryInfo] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(cfg.repositories):
        where = f"repositories[{i}]"
        if entry.id is not None and not _ID_OVERRIDE_RE.match(entry.id):
            raise InvalidConfig(f"{where}.id: {entry.id!r} is not a safe id (letters, digits, '.', '_', '-')")
        if entry.url:
            try:
                parsed = parse_repository_info(entry.url)
            except ValueError as err:
                raise InvalidConfig(f"{where}.url: {err}") from None
            rid = entry.id or parsed.id
            web_url, kind = parsed.web_url, parsed.host_kind
            if entry.web_url:
                web_url, kind = _web_url_override(entry.web_url, where)
            path = cfg.resolve_path(f"data/raw/{rid}")
            ref = entry.ref or read_ref_file(path)
            info = RepositoryInfo(rid, parsed.clone_url, web_url, kind, ref, path)
        else:
            assert entry.path and entry.id  # guaranteed by RepositoryConfig's validator
            path = cfg.resolve_path(entry.path)
            web_url, kind = (None, "local")
            if entry.web_url:
                web_url, kind = _web_url_override(entry.web_url, where)
            ref = entry.ref or git_head_sha(path)
            info = RepositoryInfo(entry.id, path.as_uri(), web_url, kind, ref, path)
        key = info.id.casefold()  # ids become directory names; case-insensitive filesystems collide
        if key in seen:
            raise InvalidConfig(
                f"duplicate repository id '{info.id}' (repositories[{seen[key]}] and {where}): set a distinct `id:`"
            )
        seen[key] = i
        infos.append(info)
    return infos


def select_repositories(infos: Iterable[RepositoryInfo], ids: Iterable[str] | None) -> list[RepositoryInfo]:
    """The repositories named in `ids` (all when empty), in config order; unknown ids raise `RepositoryNotFound`."""
    infos = list(infos)
    wanted = list(ids or [])
    if not wanted:
        return infos
    known = {info.id: info for info in infos}
    for rid in wanted:
        if rid not in known:
            names = ", ".join(known) or "none configured"
            raise RepositoryNotFound(f"unknown repository '{rid}' (known: {names})")
    chosen = set(wanted)
    return [info for info in infos if info.id in chosen]
