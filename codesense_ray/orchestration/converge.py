"""`codesense converge`: make `data/raw/` match the `url:` repositories of `codesense.yaml`, then version it.

Think `terraform apply` for source snapshots: for each `url:` entry, a shallow clone at the pinned ref (or
the remote's HEAD) lands in `data/raw/<id>/` with its commit SHA in `.codesense-ref` (links use it) and
without `.git` (the snapshot is data, not a work tree). A repository already at the wanted commit is left
alone; one that fails is reported while the others converge. Afterwards DVC tracks `data/raw` as one
directory and pushes it to the remote — git-lfs with a remote you own.

    summary = converge(load_config("codesense.yaml"))
    print(summary.to_dict())
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from codesense_ray.config import Config
from codesense_ray.orchestration.data_versioning import DvcResult, version_raw_data
from codesense_ray.errors import ToolMissing
from codesense_ray.config.orchestration import ConvergeConfig, DvcConfig, section
from codesense_ray.sources.repositories import REF_FILE, RepositoryInfo, read_ref_file, resolve_repositories

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")
STAGING_DIR = ".converge-staging"


@dataclass
class RepoResult:
    """What converge did to one repository: `cloned`, `updated`, `unchanged` or `failed` (with `error`)."""

    id: str
    url: str
    status: str
    path: str
    ref: str | None = None
    commit: str | None = None
    previous: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass
class ConvergeSummary:
    """Result of one converge run; `ok` is False when any repository or the DVC step failed."""

    repos: list[RepoResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dvc: DvcResult | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.repos) and (self.dvc is None or self.dvc.ok)

    @property
    def data_version(self) -> str | None:
        """DVC hash of `data/raw` after this run (the `md5` in `data/raw.dvc`), when DVC is enabled."""
        return self.dvc.data_version if self.dvc else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repos": [asdict(r) for r in self.repos],
            "removed": list(self.removed),
            "dvc": self.dvc.to_dict() if self.dvc else None,
            "data_version": self.data_version,
            "seconds": round(self.seconds, 3),
        }


def redact(text: str) -> str:
    """Hide `user:token@` in URLs so credentials never reach logs or summaries."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


class Git:
    """Runs git with a timeout, no prompts and no inherited repository context."""

    def __init__(self, timeout_s: float) -> None:
        if shutil.which("git") is None:
            raise ToolMissing("git is not installed (needed to clone repositories)")
        self.timeout_s = timeout_s
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        # A clone must never wait for a password on a terminal nobody watches.
        env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", SSH_ASKPASS="", GCM_INTERACTIVE="never")
        self.env = env

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        cmd = ["git", "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main", *args]
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} timed out after {self.timeout_s:g}s") from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
            raise GitError(redact((fatal or lines[-1:] or [f"git {args[0]} exited with {proc.returncode}"])[0]))
        return proc.stdout


class GitError(Exception):
    """A git command failed; the message is git's own last error line (credentials redacted)."""


def resolve_remote_commit(git: Git, url: str, ref: str | None) -> str | None:
    """The commit `ref` (branch, tag, `HEAD` when None) points to on the remote, without cloning; None when
    the ref is not advertised (e.g. a short SHA)."""
    if ref and _FULL_SHA.match(ref):
        return ref
    want = ref or "HEAD"
    out = git("ls-remote", url, want)
    refs = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        refs[name.strip()] = sha.strip()
    for name in (f"refs/tags/{want}^{{}}", f"refs/tags/{want}", f"refs/heads/{want}", want):
        if name in refs:
            return refs[name]
    return None


def _already_at(current: str | None, ref: str | None, target: str | None) -> bool:
    if not current:
        return False
    if target:
        return current == target
    # A pinned short SHA: nothing on the remote to compare with, and nothing to fetch if it matches.
    return bool(ref and _SHORT_SHA.match(ref) and current.startswith(ref))


def fetch_snapshot(git: Git, url: str, ref: str | None, dest: Path, depth: int) -> str:
    """Check out `ref` (or the remote HEAD) of `url` into the empty directory `dest`; returns the commit SHA.

    One path for branches, tags and commits: `git fetch <url> <ref>` at the given depth. Servers that refuse
    fetching an unadvertised commit (and short SHAs) fall back to a full fetch and a local lookup.
    """
    git("init", "-q", str(dest))
    depth_args = ["--depth", str(depth)] if depth > 0 else []
    try:
        git("fetch", "-q", "--no-tags", *depth_args, url, ref or "HEAD", cwd=dest)
        sha = git("rev-parse", "--verify", "FETCH_HEAD^{commit}", cwd=dest).strip()
    except GitError:
        if not ref:
            raise
        git("fetch", "-q", "--tags", url, "+refs/heads/*:refs/remotes/origin/*", cwd=dest)
        try:
            sha = git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=dest).strip()
        except GitError:
            try:
                sha = git("rev-parse", "--verify", f"origin/{ref}^{{commit}}", cwd=dest).strip()
            except GitError:
                raise GitError(f"ref {ref!r} not found in {redact(url)}") from None
    git("checkout", "-q", "--detach", sha, cwd=dest)
    return sha


def commit_history(git: Git, url: str, ref: str | None, sha: str, dest: Path, history: int) -> list[str]:
    """Up to `history` commit ids ending at `sha`, newest first. Fetches commit objects only (`--filter=tree:0`; a
    server without partial-clone support sends the trees too); when that fetch fails, the snapshot's own history."""
    if history > 1:
        try:
            git("fetch", "-q", "--no-tags", "--filter=tree:0", "--depth", str(history), url, ref or "HEAD", cwd=dest)
        except GitError:
            pass
    return git("rev-list", f"--max-count={max(history, 1)}", sha, cwd=dest).split()


def converge_repository(git: Git, info: RepositoryInfo, ref: str | None, depth: int, staging_root: Path, history: int = 0) -> RepoResult:
    """Bring `data/raw/<id>/` to the wanted commit of one repository. Never raises: failures are results."""
    started = time.perf_counter()
    dest = Path(info.path) if info.path else None
    result = RepoResult(id=info.id, url=redact(info.clone_url), status="failed", path=str(dest), ref=ref)
    try:
        assert dest is not None
        current = read_ref_file(dest) if dest.is_dir() else None
        result.previous = current
        target = resolve_remote_commit(git, info.clone_url, ref)
        if _already_at(current, ref, target):
            result.status, result.commit = "unchanged", current
            return result
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = staging_root / f"{info.id}-{uuid.uuid4().hex[:8]}"
        try:
            sha = fetch_snapshot(git, info.clone_url, ref, staging, depth)
            # The ref file: the snapshot's commit first, then its ancestors (how far behind an older index is).
            commits = commit_history(git, info.clone_url, ref, sha, staging, history)
            # The snapshot is data: no history, no hooks, nothing git-specific left for DVC to hash.
            shutil.rmtree(staging / ".git")
            (staging / REF_FILE).write_text("\n".join([sha] + [c for c in commits if c != sha]) + "\n", encoding="utf-8")
            _swap_into_place(staging, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.status = "updated" if current else "cloned"
        result.commit = sha
    except GitError as err:
        result.error = str(err)
    except OSError as err:
        result.error = redact(f"{type(err).__name__}: {err}")
    finally:
        result.seconds = round(time.perf_counter() - started, 3)
    return result


def _swap_into_place(new: Path, dest: Path) -> None:
    """Replace `dest` with `new` by renames, so a reader never sees a half-written snapshot."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():
        old = new.with_name(new.name + ".old")
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prune_raw(raw_dir: Path, keep: set[str], protected: set[Path]) -> list[str]:
    """Remove repository directories in `raw_dir` that are no longer configured; returns their names."""
    removed = []
    if not raw_dir.is_dir():
        return removed
    for child in sorted(raw_dir.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and child.name not in keep and child.resolve() not in protected:
            shutil.rmtree(child)
            removed.append(child.name)
    return removed


def converge(
    cfg: Config,
    converge_cfg: ConvergeConfig | None = None,
    dvc_cfg: DvcConfig | None = None,
    *,
    on_repo: Callable[[RepoResult], None] | None = None,
) -> ConvergeSummary:
    """Clone/update every `url:` repository into `data/raw/<id>/`, prune dropped ones, then `dvc add` + `dvc push`.

    Raises only for problems that make the whole run pointless before anything is touched (no git, S3
    credentials missing — `MissingCredentials` names the env var); per-repository failures are in the summary.
    """
    started = time.perf_counter()
    ccfg = converge_cfg or section(cfg, "converge", ConvergeConfig)
    dcfg = dvc_cfg or section(cfg, "dvc", DvcConfig)
    infos = resolve_repositories(cfg)
    remote = [(info, entry.ref) for info, entry in zip(infos, cfg.repositories) if entry.url]
    raw_dir = cfg.resolve_path("data/raw")
    if dcfg.enabled:
        # Fail before cloning anything when the push could never succeed.
        from codesense_ray.orchestration.data_versioning import check_remote_credentials

        check_remote_credentials(dcfg)

    summary = ConvergeSummary()
    if remote:
        git = Git(ccfg.timeout_s)
        staging_root = raw_dir.parent / STAGING_DIR
        with ThreadPoolExecutor(max_workers=min(ccfg.parallel, len(remote))) as pool:
            futures = [pool.submit(converge_repository, git, info, ref, ccfg.depth, staging_root, ccfg.history) for info, ref in remote]
            for fut in futures:
                res = fut.result()
                summary.repos.append(res)
                if on_repo:
                    on_repo(res)
        _remove_if_empty(staging_root)
    if ccfg.prune:
        local_paths = {Path(i.path).resolve() for i, e in zip(infos, cfg.repositories) if e.path and i.path}
        summary.removed = prune_raw(raw_dir, {info.id for info, _ in remote}, local_paths)

    if dcfg.enabled:
        has_data = raw_dir.is_dir() and any(p.name != ".gitkeep" for p in raw_dir.iterdir())
        if has_data or (raw_dir.parent / "raw.dvc").exists():
            summary.dvc = version_raw_data(cfg, dcfg, raw_dir)
        else:
            summary.dvc = DvcResult(status="skipped", remote=dcfg.remote, message="no url: repositories, nothing to version")
    summary.seconds = time.perf_counter() - started
    return summary


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
