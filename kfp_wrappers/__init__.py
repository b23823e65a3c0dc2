"""Kubeflow Pipelines adapters: thin components that submit codesense's Ray jobs, and the `codesense-rag` pipeline.

The DAG lives in Kubeflow (scheduling, lineage, the UI); the compute lives in Ray (a local head, a
long-lived RayCluster, or one RayJob per stage on KubeRay). Components hold no logic: each imports
`codesense_ray` inside its function, submits one stage, and returns the stage's JSON summary.
"""
