"""`codesense deploy render|apply` and `codesense rollout start|status|promote|rollback` (adapter).

    codesense deploy render [--output infra]               # the GitOps tree: base + every environment's overlay
    codesense deploy render --env prod [--output DIR]      # one environment's objects (stdout: a YAML stream)
    codesense deploy apply --env prod [--no-wait] [--timeout S]
    codesense rollout start --adapter-uri s3://.../adapter [--version 7] [--all]
    codesense rollout status | promote [--all] | rollback

Only argument parsing and printing live here; errors are `CodesenseError`s that the main CLI turns into
one-line messages and exit codes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codesense_ray.app.cli.common import emit as _emit, load_config_from_args as _load




# --- deploy ---------------------------------------------------------------------------------------
def cmd_render(args: argparse.Namespace) -> int:
    from codesense_ray.deployment import gitops
    from codesense_ray.deployment.manifests import render

    cfg = _load(args)
    if args.env is None:
        out = Path(args.output or "infra")
        files = gitops.write_tree(cfg, out)
        payload = {"env": None, "output": str(out), "files": [str(f) for f in files]}
        _emit(args, payload, lambda: print(f"wrote {len(files)} files under {out}/ (base + overlays: {', '.join(sorted(_envs(cfg)))})"))
        return 0
    rendered = render(cfg, args.env)
    if args.output is None:
        if args.json:
            _emit(args, {"env": args.env, "objects": rendered.objects, "helm_values": rendered.helm_values}, lambda: None)
        else:
            sys.stdout.write(gitops.stream(rendered))
        return 0
    files = gitops.write_flat(rendered, Path(args.output))
    payload = {"env": args.env, "output": args.output, "files": [str(f) for f in files]}
    _emit(args, payload, lambda: print(f"wrote {len(rendered.objects)} objects and {len(rendered.helm_values)} values files for {args.env} under {args.output}/"))
    return 0


def _envs(cfg) -> list[str]:
    from codesense_ray.deployment.manifests import deployment_section

    return list(deployment_section(cfg).environments)


def _api(cfg, env: str | None = None):
    from codesense_ray.deployment.apply import kube_client
    from codesense_ray.deployment.manifests import resolve_environment

    return kube_client(resolve_environment(cfg, env).kube_context)


def cmd_apply(args: argparse.Namespace) -> int:
    from codesense_ray.deployment.apply import apply_objects
    from codesense_ray.deployment.manifests import render

    from codesense_ray.deployment.gitops import observability_objects
    from codesense_ray.deployment.manifests import resolve_environment

    cfg = _load(args)
    rendered = render(cfg, args.env)
    # Dashboards and alert rules kept by hand beside the generated tree go out with the rest.
    extra = observability_objects(cfg.base_dir / "infra", resolve_environment(cfg, args.env).namespace)
    report = apply_objects(rendered.objects + extra, _api(cfg, args.env), wait=not args.no_wait, timeout_s=args.timeout, poll_interval_s=args.poll_interval)
    payload = report.to_dict()

    def human() -> None:
        for r in payload["objects"]:
            where = f"{r['namespace']}/" if r["namespace"] else ""
            state = "ready" if r["ready"] else ("not waited" if r["ready"] is None else "NOT READY")
            print(f"  {r['kind']:<22} {where}{r['name']:<32} {r['action']:<10} {state}{': ' + r['message'] if r['message'] else ''}")
        print(f"applied {len(payload['objects'])} objects ({'ok' if payload['ok'] else 'FAILED'}) in {payload['seconds']:.1f}s")

    _emit(args, payload, human)
    return 0 if report.ok else 1


# --- rollout --------------------------------------------------------------------------------------
def _rollout(args: argparse.Namespace):
    from codesense_ray.deployment.rollout import Rollout

    cfg = _load(args)
    return Rollout.from_config(cfg, _api(cfg, args.env), env=args.env)


def _print_rollout(payload: dict) -> None:
    print(f"rollout of {payload['name']}: {payload['phase']} at {payload.get('canary_percent')}% canary")
    print(f"  stable:    {payload.get('stable_uri') or '(base model only)'} {payload.get('stable_version') or ''}")
    print(f"  candidate: {payload.get('candidate_uri') or '-'} {payload.get('candidate_version') or ''}")
    for g in payload.get("gates") or []:
        print(f"  gate @{g['percent']}%: {'pass' if g['ok'] else 'FAIL'} " + "; ".join(c["message"] for c in g["checks"]))
    if payload.get("message"):
        print(f"  {payload['message']}")


def _run_rollout(args: argparse.Namespace, action) -> int:
    rollout = _rollout(args)
    result = action(rollout)
    _emit(args, result.to_dict(), lambda: _print_rollout(result.to_dict()))
    return 0 if result.ok else 1


def cmd_rollout_start(args: argparse.Namespace) -> int:
    return _run_rollout(args, lambda r: r.start(args.adapter_uri, version=args.version, to_end=args.all))


def cmd_rollout_promote(args: argparse.Namespace) -> int:
    return _run_rollout(args, lambda r: r.promote(to_end=args.all))


def cmd_rollout_rollback(args: argparse.Namespace) -> int:
    return _run_rollout(args, lambda r: r.rollback(reason="manual rollback"))


def cmd_rollout_status(args: argparse.Namespace) -> int:
    return _run_rollout(args, lambda r: r.status())


def register(sub, common: argparse.ArgumentParser) -> None:
    """Add `deploy` and `rollout` to the `codesense` sub-command parser."""
    env = argparse.ArgumentParser(add_help=False)
    env.add_argument("--env", default=None, metavar="ENV", help="environment overlay from deployment.environments (dev, prod, ...)")

    dep = sub.add_parser(
        "deploy",
        help="Kubernetes objects from codesense.yaml: render the infra/ GitOps tree, or apply it",
        description="`helm template` + `kubectl apply --server-side` for codesense: every object is built from codesense.yaml.",
    )
    dsub = dep.add_subparsers(dest="deploy_command", metavar="ACTION")
    dep.set_defaults(handler=lambda a: (dep.print_help(), 2)[1])

    r = dsub.add_parser(
        "render",
        parents=[common, env],
        help="write the manifests (no --env: the Kustomize tree infra/base + infra/overlays/*)",
        description="Without --env: write the GitOps tree (base and one overlay per environment) to --output (default infra/). "
        "With --env: that environment's objects, as files under --output or as one YAML stream on stdout.",
    )
    r.add_argument("--output", metavar="DIR", default=None, help="directory to write (default: infra/ for the tree, stdout for --env)")
    r.set_defaults(handler=cmd_render)

    a = dsub.add_parser(
        "apply",
        parents=[common, env],
        help="server-side apply every object (field manager `codesense`), wait for readiness, report per object",
        description="Namespaces and config first, then workloads; each object is applied with server-side apply and, unless "
        "--no-wait, polled until Ready (RayService, InferenceService, Deployments, ...). Exit 1 when one is not ready in time.",
    )
    a.add_argument("--no-wait", action="store_true", help="apply only, do not wait for readiness")
    a.add_argument("--timeout", type=float, default=900.0, metavar="S", help="seconds to wait for all objects to be ready (default 900)")
    a.add_argument("--poll-interval", type=float, default=5.0, metavar="S", help=argparse.SUPPRESS)
    a.set_defaults(handler=cmd_apply)

    ro = sub.add_parser(
        "rollout",
        help="gated canary of a new student adapter on the InferenceService: start, status, promote, rollback",
        description="A blue/green with a traffic dial: the new LoRA adapter gets canary.steps percent of requests; between steps a gate "
        "reads Prometheus (error rate, p95 latency, judge score) and runs the evaluation set against the canary; a failing gate rolls back.",
    )
    rsub = ro.add_subparsers(dest="rollout_command", metavar="ACTION")
    ro.set_defaults(handler=lambda a: (ro.print_help(), 2)[1])

    s = rsub.add_parser("start", parents=[common, env], help="send the first canary step to a new adapter version and gate it")
    s.add_argument("--adapter-uri", required=True, metavar="URI", help="LoRA adapter of the new version (s3://... artifact from the registry)")
    s.add_argument("--version", default=None, help="registry version of the adapter (recorded on the InferenceService)")
    s.add_argument("--all", action="store_true", help="walk every step (gate between each) up to full promotion")
    s.set_defaults(handler=cmd_rollout_start)

    p = rsub.add_parser("promote", parents=[common, env], help="move the canary to the next step and gate it (--all: every remaining step, then the candidate becomes stable)")
    p.add_argument("--all", action="store_true", help="walk every remaining step up to full promotion")
    p.set_defaults(handler=cmd_rollout_promote)

    b = rsub.add_parser("rollback", parents=[common, env], help="send all traffic back to the last good adapter")
    b.set_defaults(handler=cmd_rollout_rollback)

    st = rsub.add_parser("status", parents=[common, env], help="phase, traffic split, stable and candidate adapters")
    st.set_defaults(handler=cmd_rollout_status)
