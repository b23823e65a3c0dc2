"""DVC for `data/raw`: git-lfs with a remote you own.

`data/raw` is tracked as one directory (`data/raw.dvc` holds its content hash, the *data version*); the
objects go to a remote — a local directory by default, S3-compatible storage in production. Credentials
come from env vars named in the config and are written to `.dvc/config.local`, which DVC itself keeps out
of git. The `dvc` CLI does the work (the same commands an operator would type); only the remote settings
are written through DVC's own config API, in one step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from codesense_ray.config import Config
from codesense_ray.errors import MissingCredentials
from codesense_ray.config.orchestration import DvcConfig


@dataclass
class DvcResult:
    """Outcome of versioning `data/raw`: `pushed`, `committed` (no push), `skipped` or `failed`."""

    status: str
    remote: str
    remote_url: str | None = None
    data_version: str | None = None
    files: int | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DvcError(Exception):
    """A dvc command failed; the message is DVC's own error line."""


def default_remote_url(cfg: Config) -> Path:
    return cfg.home / "dvc-remote"


def check_remote_credentials(dcfg: DvcConfig) -> dict[str, str]:
    """The S3 credentials from the env vars the config names; `MissingCredentials` names a missing one."""
    if not dcfg.s3:
        return {}
    s3 = dcfg.s3
    names = {"access_key_id": s3.access_key_id_env, "secret_access_key": s3.secret_access_key_env}
    if s3.session_token_env:
        names["session_token"] = s3.session_token_env
    creds = {}
    for key, env_name in names.items():
        value = os.environ.get(env_name)
        if not value:
            raise MissingCredentials(env_name, f"dvc.s3 {key} for the DVC remote {s3.url}")
        creds[key] = value
    return creds


def git_layout(root: Path) -> str:
    """`root` (top of a git work tree), `subdir` (inside one) or `none` — decides how `dvc init` runs."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return "none"
    if proc.returncode != 0 or not proc.stdout.strip():
        return "none"
    return "root" if Path(proc.stdout.strip()).resolve() == root.resolve() else "subdir"


class DvcProject:
    """The DVC project at `root` (the directory holding codesense.yaml), driven through the `dvc` CLI."""

    def __init__(self, root: Path, timeout_s: float = 1800.0) -> None:
        self.root = Path(root)
        self.timeout_s = timeout_s

    def run(self, *args: str) -> str:
        # `python -m dvc` from this interpreter: the dvc that was installed with codesense, whatever PATH says.
        env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_IGNORE_ISATTY": "1"}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "dvc", *args],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise DvcError(f"dvc {args[0]} timed out after {self.timeout_s:g}s") from None
        if proc.returncode != 0:
            raise DvcError(_dvc_error_line(proc.stderr or proc.stdout, args))
        return proc.stdout

    def ensure_initialized(self) -> bool:
        """`dvc init` when `.dvc/` is missing (`--no-scm` outside git, `--subdir` inside a larger repo). True if it ran."""
        if (self.root / ".dvc").is_dir():
            return False
        mode = git_layout(self.root)
        flags = {"root": [], "subdir": ["--subdir"], "none": ["--no-scm"]}[mode]
        self.run("init", "-q", *flags)
        return True

    def configure_remote(self, name: str, url: str, shared: dict[str, str], secret: dict[str, str]) -> None:
        """Make `name` the default remote at `url`.

        A local directory is machine-specific: url and default go to `.dvc/config.local`. An S3 remote's
        url/endpoint/region are shared (`.dvc/config`, committed) and only its credentials are local.
        """
        from dvc.config import Config as DvcFileConfig

        conf_files = DvcFileConfig(dvc_dir=str(self.root / ".dvc"), validate=True)
        local_only = "://" not in url  # a directory path; any scheme (s3://, gs://, ssh://, ...) is shared storage
        with conf_files.edit("repo") as repo_conf:
            if local_only:
                # A shared definition would be overridden key by key by the local one: drop it to avoid a mix.
                if repo_conf["core"].get("remote") == name:
                    del repo_conf["core"]["remote"]
                repo_conf["remote"].pop(name, None)
            else:
                repo_conf["remote"][name] = {"url": url, **shared}
                repo_conf["core"]["remote"] = name
        with conf_files.edit("local") as local_conf:
            if local_only:
                local_conf["remote"][name] = {"url": url}
                local_conf["core"]["remote"] = name
            else:
                section = {k: v for k, v in local_conf["remote"].get(name, {}).items() if k not in ("url", *shared)}
                section.update(secret)
                local_conf["remote"][name] = section
                local_conf["core"].pop("remote", None)

    def add(self, target: str) -> None:
        self.run("add", "-q", target)

    def push(self, remote: str) -> None:
        self.run("push", "-q", "-r", remote)

    def pull(self, remote: str | None = None, target: str | None = None) -> None:
        self.run("pull", "-q", *(["-r", remote] if remote else []), *([target] if target else []))

    def tracked(self, target: str) -> dict[str, Any] | None:
        """The `outs` entry of `<target>.dvc` (md5, nfiles, size), or None when not tracked yet."""
        dvc_file = self.root / f"{target}.dvc"
        try:
            data = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
        except OSError:
            return None
        outs = data.get("outs") or []
        return outs[0] if outs else None


def _dvc_error_line(output: str, args: tuple[str, ...]) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    line = (errors or lines or [f"dvc {args[0]} failed"])[0]
    if "already tracked by SCM" in output:
        line += " — stop tracking it in git (`git rm -r --cached data/raw`, e.g. a data/raw/.gitkeep) and commit data/raw.dvc instead"
    return line


def version_raw_data(cfg: Config, dcfg: DvcConfig, raw_dir: Path) -> DvcResult:
    """`dvc init` (when needed) → remote config → `dvc add data/raw` → `dvc push`. Never raises for DVC
    failures: they come back as a `failed` result so the clone results are still reported."""
    root = cfg.base_dir
    target = os.path.relpath(raw_dir, root)
    if dcfg.s3:
        url = dcfg.s3.url
        shared = {k: v for k, v in {"endpointurl": dcfg.s3.endpoint_url, "region": dcfg.s3.region}.items() if v}
        secret = check_remote_credentials(dcfg)
    else:
        url = str(cfg.resolve_path(dcfg.url)) if dcfg.url and "://" not in dcfg.url else (dcfg.url or str(default_remote_url(cfg)))
        shared, secret = {}, {}
        if "://" not in url:
            Path(url).mkdir(parents=True, exist_ok=True)
    result = DvcResult(status="failed", remote=dcfg.remote, remote_url=url)
    project = DvcProject(root, dcfg.timeout_s)
    try:
        project.ensure_initialized()
        project.configure_remote(dcfg.remote, url, shared, secret)
        project.add(target)
        outs = project.tracked(target) or {}
        result.data_version = outs.get("md5")
        result.files = outs.get("nfiles")
        if dcfg.push:
            project.push(dcfg.remote)
            result.status = "pushed"
        else:
            result.status = "committed"
    except DvcError as err:
        result.message = str(err)
    except Exception as err:  # DVC's config API raises its own types (ConfigError, ...)
        result.message = f"{type(err).__name__}: {err}"
    return result
