"""Ray job entrypoint: distil training data from the teacher (`codesense distill`, arguments pass through).

    ray job submit --working-dir . -- python jobs/distill.py --config codesense.yaml [--limit N] [--json]

Resumable: a re-submitted job continues from the dataset's ledger and never pays the teacher twice.
"""

from __future__ import annotations

import sys

from codesense_ray.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["distill", *sys.argv[1:]]))
