"""A private local Ray head (`ray start --head`) that can be stopped without touching any other Ray.

`ray stop` kills every Ray process on the machine — including a head a colleague or another test run
started. `LocalRayHead` instead starts its head with its own ports and its own `--temp-dir`, and stops
exactly the processes that belong to that directory (plus the workers they spawned).

    with LocalRayHead(num_cpus=2) as head:
        print(head.dashboard_url)     # http://127.0.0.1:<port> — what `ray job submit --address` takes
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codesense_ray.errors import RayUnreachable, ToolMissing

_PORT_FLAGS = (
    "port",
    "dashboard-port",
    "ray-client-server-port",
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_range(size: int = 64, attempts: int = 50) -> int:
    """Start of `size` consecutive ports that are free right now (Ray workers bind inside the range)."""
    import random

    for _ in range(attempts):
        start = random.randrange(20000, 60000 - size)
        ok = True
        for p in range(start, start + size):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return start
    raise RuntimeError("no free port range for Ray workers")


class LocalRayHead:
    """Start/stop one private Ray head on this machine. Use as a context manager or call start()/stop()."""

    def __init__(self, num_cpus: int | None = None, start_timeout_s: float = 120.0, temp_dir: str | os.PathLike | None = None) -> None:
        self.num_cpus = num_cpus
        self.start_timeout_s = start_timeout_s
        # Ray's unix socket paths must stay under ~107 bytes: a short directory directly under /tmp.
        self._own_temp = temp_dir is None
        self.temp_dir = Path(temp_dir) if temp_dir else Path(tempfile.mkdtemp(prefix="codesense-ray-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self._proc: subprocess.Popen | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard-port']}"

    @property
    def gcs_address(self) -> str:
        return f"127.0.0.1:{self.ports['port']}"

    def command(self) -> list[str]:
        ray_bin = Path(sys.executable).with_name("ray")
        if not ray_bin.exists():
            found = shutil.which("ray")
            if not found:
                raise ToolMissing("the `ray` CLI is not installed (pip install 'ray[default]')")
            ray_bin = Path(found)
        workers = _free_port_range()
        cmd = [
            str(ray_bin), "start", "--head", "--block",
            "--temp-dir", str(self.temp_dir),
            "--node-ip-address", "127.0.0.1",
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--disable-usage-stats",
            "--min-worker-port", str(workers), "--max-worker-port", str(workers + 63),
        ]  # fmt: skip
        for flag, port in self.ports.items():
            cmd += [f"--{flag}", str(port)]
        if self.num_cpus is not None:
            cmd += ["--num-cpus", str(self.num_cpus)]
        return cmd

    def start(self) -> "LocalRayHead":
        env = dict(os.environ)
        # Jobs run `python jobs/<name>.py`: make `python` the interpreter that has codesense and ray.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        env.pop("RAY_ADDRESS", None)
        log = open(self.temp_dir / "ray-start.log", "wb")
        # --block keeps `ray start` in the foreground as the parent of the head's processes; its own session
        # gives it a process group we own.
        self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise RayUnreachable(f"local Ray head exited during start (code {self._proc.returncode}): {tail}")
            if self._dashboard_up():
                return self
            time.sleep(0.5)
        self.stop()
        raise RayUnreachable(f"local Ray head did not come up within {self.start_timeout_s:g}s")

    def _dashboard_up(self) -> bool:
        import urllib.error
        import urllib.request

        # The job API answers only when the dashboard finished loading its modules; 401 (token auth) counts as up.
        try:
            urllib.request.urlopen(self.dashboard_url + "/api/version", timeout=2)
            return True
        except urllib.error.HTTPError as err:
            return err.code in (401, 403)
        except OSError:
            return False

    def _log_tail(self, n: int = 5) -> str:
        try:
            lines = (self.temp_dir / "ray-start.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def _own_processes(self) -> list:
        """This head's processes: the `ray start` process, everything whose command line names our temp dir,
        and their descendants (the workers)."""
        import psutil

        marker = str(self.temp_dir)
        found: dict[int, psutil.Process] = {}
        roots = []
        if self._proc is not None:
            try:
                roots.append(psutil.Process(self._proc.pid))
            except psutil.NoSuchProcess:
                pass
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(marker in part for part in proc.info["cmdline"] or ()):
                    roots.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for proc in roots:
            found[proc.pid] = proc
            try:
                for child in proc.children(recursive=True):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                continue
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self, grace_s: float = 3.0) -> None:
        """Terminate this head's processes (SIGTERM, then SIGKILL after `grace_s`) and remove its temp dir."""
        import psutil

        procs = self._own_processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace_s)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=grace_s)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        if self._own_temp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "LocalRayHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
