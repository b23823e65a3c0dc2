"""Kubernetes delivery: every object codesense runs on, rendered from `codesense.yaml`, applied, and rolled out.

- `settings`: the `deployment:` section (node classes, RayService, KServe/vLLM, canary gates, environments).
- `manifests`, `serve_config`: pure builders — config in, Kubernetes objects (dicts) out.
- `gitops`: the `infra/` Kustomize tree (base + one overlay per environment) written from those objects.
- `apply`: server-side apply with the `kubernetes` client, readiness waits, a per-object report.
- `prometheus`, `rollout`: the gated canary of a new student adapter on its InferenceService.
- `cli`: `codesense deploy render|apply`, `codesense rollout start|status|promote|rollback`.
"""
