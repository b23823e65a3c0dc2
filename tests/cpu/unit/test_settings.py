"""The answer-path configuration models: documented fields, strict keys, embedded defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codesense_ray.config.answering import GeneratorConfig, PromptsConfig, TracingConfig, resolve_mlflow_uri


@pytest.mark.parametrize("model", [GeneratorConfig, PromptsConfig, TracingConfig])
def test_every_field_is_documented_and_unknown_keys_fail(model):
    """Each field carries a description (docs are generated from them) and a typo'd key is rejected."""
    assert all(f.description for f in model.model_fields.values())
    with pytest.raises(ValidationError, match="extra"):
        model.model_validate({"bakend": "x"})


def test_embedded_defaults_need_no_network():
    """Defaults: extractive generator, packaged prompt file, MLflow tracing — all offline."""
    assert GeneratorConfig().backend == "extractive" and GeneratorConfig().local_model == "packaged-gemma3-270m"
    p = PromptsConfig()
    assert (p.backend, p.name, p.label, p.version) == ("file", "rag-code-assistant", None, None)
    assert (TracingConfig().backend, TracingConfig().sample_rate) == ("mlflow", 1.0)


def test_mlflow_uri_resolution(tmp_path, monkeypatch):
    """Config value wins, then $MLFLOW_TRACKING_URI, then sqlite:///<home>/mlflow.db (home created)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_mlflow_uri("http://mlflow:5000", tmp_path) == "http://mlflow:5000"
    home = tmp_path / "h"
    assert resolve_mlflow_uri(None, home) == f"sqlite:///{home.resolve()}/mlflow.db" and home.is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_mlflow_uri(None, home) == "http://env:5000"
