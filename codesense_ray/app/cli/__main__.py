"""`python -m codesense_ray.app.cli ...` — the `codesense` command without its console script (pipeline steps)."""

import sys

from codesense_ray.app.cli.main import main

sys.exit(main())
