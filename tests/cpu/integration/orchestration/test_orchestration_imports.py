"""The orchestration CLI and settings stay light: registering `converge`/`pipeline` imports no Ray, KFP, Kubernetes or DVC."""

import json
import subprocess
import sys

HEAVY = ("ray", "kfp", "kubernetes", "dvc", "torch")


def test_orchestration_cli_and_settings_import_nothing_heavy():
    """`codesense --help` will import codesense_ray.app.cli.orchestration; it must not pull the orchestration SDKs in."""
    code = (
        "import sys, json\n"
        "import codesense_ray.orchestration, codesense_ray.app.cli.orchestration, codesense_ray.config.orchestration\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert not [m for m in HEAVY if m in loaded]
