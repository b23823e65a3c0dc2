"""Ray job entrypoint: evaluate retrieval/answers against a dataset and apply the quality gate.

    ray job submit --working-dir . -- python jobs/evaluate.py --config codesense.yaml --dataset eval.jsonl [--json]

It runs `codesense eval` (arguments pass through unchanged): exit 0 when done, 1 when `--gate` finds a metric
below its threshold, 2 for bad input, 3 when there is no index. The `codesense-rag` pipeline reaches this stage
when an evaluation dataset is given.
"""

from __future__ import annotations

import sys

from codesense_ray.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
