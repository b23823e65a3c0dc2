"""Ray job entrypoint: curate the golden set from answered-request traces (`codesense dataset golden`).

    ray job submit --working-dir . -- python jobs/golden.py --config codesense.yaml [--json]
"""

from __future__ import annotations

import sys

from codesense_ray.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["dataset", "golden", *sys.argv[1:]]))
