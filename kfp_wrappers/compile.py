"""Compile the `codesense-rag` pipeline to KFP IR YAML (what you upload to Kubeflow or hand to `kfp.Client`).

    python -m kfp_wrappers.compile --config codesense.yaml --output codesense-rag.yaml
    codesense pipeline compile --output codesense-rag.yaml          # the same, through the CLI
"""

from __future__ import annotations

import argparse
from pathlib import Path

from codesense_ray.config.orchestration import PipelineConfig


def compile_pipeline(output: str | Path, pcfg: PipelineConfig | None = None) -> Path:
    """Write the pipeline's IR YAML to `output` and return its path."""
    from kfp import compiler

    from kfp_wrappers.pipeline import build_pipeline

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(pcfg), package_path=str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kfp_wrappers.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="codesense.yaml whose `pipeline:` section sets image, defaults and secrets")
    parser.add_argument("--output", default="codesense-rag.yaml", help="IR YAML file to write")
    args = parser.parse_args(argv)
    pcfg = None
    if args.config:
        from codesense_ray.config import load_config
        from codesense_ray.config.orchestration import section

        pcfg = section(load_config(args.config), "pipeline", PipelineConfig)
    print(compile_pipeline(args.output, pcfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
