"""Ray job entrypoint: evaluate retrieval/answers against a dataset and apply the quality gate.

    ray job submit --working-dir . -- python jobs/evaluate.py --config codesense.yaml --dataset eval.jsonl [--json]

It runs `codesense eval` (arguments pass through unchanged). That command is delivered by the evaluation
issue; until it lands this entrypoint exits 2 with argparse's "invalid choice: 'eval'" message, and the
`codesense-rag` pipeline only reaches this stage when an evaluation dataset is given.
"""

from __future__ import annotations

import sys

from codesense_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
