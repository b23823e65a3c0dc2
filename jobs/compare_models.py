"""Ray job entrypoint: compare champion / challenger / base / teacher (`codesense models compare`).

    ray job submit --working-dir . -- python jobs/compare_models.py --config codesense.yaml [--limit N] [--json]

The challenger's numbers are stored on its registry version, where `codesense models promote` gates on them.
"""

from __future__ import annotations

import sys

from codesense_ray.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["models", "compare", *sys.argv[1:]]))
