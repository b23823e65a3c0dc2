"""`codesense.yaml` as typed configuration: the schema of every section and the loader.

Owns: `Config` and one pydantic model per concern (`model.py` for the core sections, `answering.py`,
`evaluation.py`, `orchestration.py` for the feature sections), `load_config` (one-line errors naming the key
path), `resolve_secret` (secrets are env-var names, resolved at the entrypoint). Every feature package reads
its section from here; this package imports no feature package, so loading a config never pulls in a
feature's dependencies.
"""

from codesense_ray.config.model import (  # noqa: F401  (the public surface of the package)
    DEFAULT_CONFIG,
    PACKAGED_MINILM,
    AnswerConfig,
    Config,
    EmbeddingConfig,
    IndexConfig,
    QdrantConfig,
    RayConfig,
    RepositoryConfig,
    SearchConfig,
    ServeConfig,
    config_from_dict,
    config_path,
    load_config,
    resolve_secret,
)
