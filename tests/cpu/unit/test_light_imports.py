"""Importing the package and running `codesense --help` stay light: no torch, no ray.serve, no vllm."""

import json
import subprocess
import sys

HEAVY = ("torch", "ray.serve", "vllm", "transformers", "sentence_transformers")


def _loaded_modules(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_package_is_light():
    """`import codesense_ray` (and its config) loads none of the heavy ML or serving modules."""
    mods = _loaded_modules("import codesense_ray, codesense_ray.config, codesense_ray.app.cli.main")
    assert not [m for m in HEAVY if m in mods]


def test_cli_help_is_light():
    """`codesense --help` parses and prints without importing torch or ray.serve."""
    code = "import sys\nsys.argv=['codesense','--help']\nfrom codesense_ray.app.cli.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
    mods = _loaded_modules(code)
    assert not [m for m in HEAVY if m in mods]
