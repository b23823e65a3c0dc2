"""Run one `codesense` command as a pipeline step: a subprocess with `--json`, its stderr streamed to the step's
log, its JSON document returned. KFP components of the lifecycle DAG are one call to this (see kfp_wrappers/lifecycle.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_codesense(args: list[str], config: str, *, allow_exit: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """`codesense ARGS --config CONFIG --json` → its JSON output. A non-allowed exit ends the step with that code,
    after printing the command's last stderr line (the one-line reason) — a failed step, not a Python traceback."""
    cmd = [sys.executable, "-m", "codesense_ray.app.cli", *args, "--config", config, "--json"]
    print("$ codesense " + " ".join(args), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.stderr:
        print(proc.stderr, end="", file=sys.stderr, flush=True)
    try:
        payload = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except ValueError:
        payload = {"stdout": proc.stdout[-2000:]}
    if proc.returncode not in allow_exit:
        reason = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        print(f"step failed: codesense {' '.join(args[:2])}: {reason}", file=sys.stderr, flush=True)
        if payload:
            print(json.dumps(payload, indent=2, default=str), flush=True)
        raise SystemExit(proc.returncode or 1)
    return payload if isinstance(payload, dict) else {"result": payload}


def registry_adapter(config: str, alias: str = "challenger") -> tuple[str, str]:
    """(artifact URI, version) of the registry version holding `alias` (`codesense models list --json`); ("", "") if none."""
    listing = run_codesense(["models", "list"], config)
    versions = listing.get("versions", listing.get("result", []))
    for v in versions or []:
        if alias in (v.get("aliases") or []):
            return str(v.get("source") or ""), str(v.get("version") or "")
    return "", ""
