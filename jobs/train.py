"""Ray job entrypoint: fine-tune the student (LoRA/QLoRA on Ray Train) and register the adapter as `challenger`.

    ray job submit --working-dir . -- python jobs/train.py --config codesense.yaml [--max-steps N] [--json]

It runs `codesense train` (arguments pass through unchanged). Inside the job the driver joins the job's cluster
(`ray.address: auto` or RAY_ADDRESS) and the TorchTrainer schedules its workers there — on KubeRay, onto the GPU
worker group whose `gpu` share matches `training.train.gpus_per_worker`. Exit 0 when registered, 2 for bad input.
"""

from __future__ import annotations

import sys

from codesense_ray.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
