"""Ray job entrypoint: converge the `url:` repositories into data/raw/ and version them with DVC.

    ray job submit --working-dir . -- python jobs/converge.py --config codesense.yaml [--json]

Clones run in the job's driver (git and dvc are I/O, not Ray tasks); running it as a job puts it next to
the data volume and the DVC credentials of the cluster. Exit codes match `codesense converge`: 0 converged,
1 a repository or the DVC push failed (the others still converged), 2 bad config or missing credentials.
"""

from __future__ import annotations

import argparse
import sys

from codesense_ray.errors import CodesenseError
from codesense_ray.app.cli.orchestration import cmd_converge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobs/converge.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="path to codesense.yaml (default ./codesense.yaml, env CODESENSE_CONFIG)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON document on stdout")
    args = parser.parse_args(argv)
    try:
        return cmd_converge(args)
    except CodesenseError as err:
        print(f"codesense: error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
