"""`codesense prompts push|show` (adapter): register the packaged prompt in a registry, or show the one in use.

Wire it into the main parser with `register(sub, common)` (`sub` from `add_subparsers`, `common` the parent
parser carrying `--config` and `--json`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _prompts_config(cfg: Any):
    from codesense_ray.config.answering import PromptsConfig

    return getattr(cfg, "prompts", None) or PromptsConfig()


def _home(cfg: Any) -> Path:
    return Path(cfg.home)


def _print(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        print(human)


def cmd_prompts_push(args: argparse.Namespace) -> int:
    from codesense_ray.config import load_config
    from codesense_ray.answering.prompts.registry import load_prompt_file, push_prompt

    cfg = load_config(args.config)
    pcfg = _prompts_config(cfg)
    if args.label:
        pcfg = pcfg.model_copy(update={"label": args.label})
    prompt = load_prompt_file(cfg.resolve_path(args.file) if args.file else (cfg.resolve_path(pcfg.path) if pcfg.path else None))
    result = push_prompt(args.to, pcfg, _home(cfg), prompt)
    where = result.get("tracking_uri") or result.get("host")
    verb = "registered" if result["created"] else "unchanged, already"
    label = f" (label {result['label']})" if result.get("label") else ""
    _print(args, {"prompt": prompt.name, "prompt_file_version": prompt.version, **result}, f"{verb} {result['name']} version {result['version']}{label} in {args.to} at {where}")
    return 0


def cmd_prompts_show(args: argparse.Namespace) -> int:
    from codesense_ray.config import load_config
    from codesense_ray.answering.prompts.registry import build_prompt_registry

    cfg = load_config(args.config)
    pcfg = _prompts_config(cfg)
    if pcfg.path:
        pcfg = pcfg.model_copy(update={"path": str(cfg.resolve_path(pcfg.path))})
    prompt = build_prompt_registry(pcfg, _home(cfg)).get()
    payload = {
        "name": prompt.name,
        "version": prompt.version,
        "source": prompt.source,
        "fallback": prompt.fallback,
        "fallback_reason": prompt.fallback_reason,
        "system": prompt.system,
        "user": prompt.user,
    }
    note = f"\n(fallback: {prompt.fallback_reason})" if prompt.fallback else ""
    human = f"{prompt.name} version {prompt.version} from {prompt.source}{note}\n\n--- system ---\n{prompt.system.rstrip()}\n\n--- user ---\n{prompt.user.rstrip()}"
    _print(args, payload, human)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `codesense prompts push|show` to the main parser."""
    group = sub.add_parser(
        "prompts",
        parents=[common],
        help="the RAG prompt in a registry (file, MLflow, Langfuse): push the packaged version, show the one in use",
        description="The RAG prompt is configuration, like a ConfigMap: a versioned template the service reads from a registry "
        "(`prompts.backend` in codesense.yaml). `push` registers the packaged prompt; `show` prints what the service would use.",
    )
    actions = group.add_subparsers(dest="prompts_command", metavar="ACTION")
    group.set_defaults(handler=lambda args: (group.print_help(), 2)[1])

    p = actions.add_parser(
        "push",
        parents=[common],
        help="register the packaged prompt (a new version only when it changed)",
        description="Register the packaged prompt `rag-code-assistant` (or --file) in MLflow or Langfuse. Idempotent: a new registry "
        "version is created only when the template differs from the current one, like `kubectl apply`.",
    )
    p.add_argument("--to", required=True, choices=["mlflow", "langfuse"], help="target registry")
    p.add_argument("--label", default=None, help="label/alias to point at the pushed version (Langfuse default: production)")
    p.add_argument("--file", default=None, help="a prompt YAML to push instead of the packaged one")
    p.set_defaults(handler=cmd_prompts_push)

    p = actions.add_parser("show", parents=[common], help="print the prompt the service would use now (and whether it is a fallback)")
    p.set_defaults(handler=cmd_prompts_show)
