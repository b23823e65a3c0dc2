"""Ray job entrypoint: index the configured repositories.

    ray job submit --working-dir . -- python jobs/index.py --config codesense.yaml [--repo ID] [--full]

Inside a Ray job, `ray.init()` joins the job's cluster (RAY_ADDRESS is set by the job supervisor), so the
same pipeline that runs locally fans out over the cluster's workers. Exit codes match `codesense index`.
"""

from __future__ import annotations

import sys

from codesense_ray.app.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["index", "--no-progress", *sys.argv[1:]]))
