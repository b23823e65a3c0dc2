"""The process environment codesense runs in: offline and telemetry-free, set by entrypoints — never at import.

Libraries we use phone home or try the Hugging Face hub unless told not to; on an air-gapped cluster that is
a DNS wait at best. Entrypoints (the CLI, Ray jobs, the Serve app builder, the Ray Data driver) call
`apply_offline_defaults()` first; importing a codesense module never changes the environment.
"""

from __future__ import annotations

import os

#: Defaults only (`setdefault`): an operator's explicit setting always wins.
OFFLINE_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DEEPEVAL_TELEMETRY_OPT_OUT": "YES",
    "DO_NOT_TRACK": "1",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # MLflow's INFO chatter (table creation, trace flushes)
}


def apply_offline_defaults() -> None:
    """Set each of `OFFLINE_DEFAULTS` unless the environment already has it."""
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)
