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


def test_query_dtype_auto_is_bfloat16_only_on_cpus_that_compute_it_natively(monkeypatch):
    """`embedding.query_dtype: auto` picks bfloat16 on a CPU with AVX512_BF16, AMX or Arm BF16 (read from cpuinfo),
    float32 on one without (emulated bfloat16 is slower) and on a GPU; an explicit setting is kept as is."""
    from codesense_ray.index import embedding

    zen4 = "processor: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
    skylake = "processor: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
    graviton3 = "processor: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
    assert embedding.cpu_has_native_bf16(zen4) and embedding.cpu_has_native_bf16(graviton3)
    assert not embedding.cpu_has_native_bf16(skylake) and not embedding.cpu_has_native_bf16("")
    monkeypatch.setattr(embedding, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    assert embedding.resolve_query_dtype("auto", "cpu") == "bfloat16"
    assert embedding.resolve_query_dtype("auto", "cuda") == "float32"
    assert embedding.resolve_query_dtype("float32", "cpu") == "float32"
    monkeypatch.setattr(embedding, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    assert embedding.resolve_query_dtype("auto", "cpu") == "float32"
    assert embedding.resolve_query_dtype("bfloat16", "cpu") == "bfloat16"
