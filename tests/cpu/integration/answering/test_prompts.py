"""Prompt registry: the packaged YAML, MLflow's prompt registry on SQLite, Langfuse over its HTTP API, and the CLI."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from codesense_ray.errors import InvalidConfig
from codesense_ray.config.answering import PromptsConfig
from codesense_ray.answering.prompts import (
    FilePromptRegistry,
    LangfusePromptRegistry,
    MlflowPromptRegistry,
    build_prompt_registry,
    load_prompt_file,
    push_prompt,
)
from codesense_ray.answering.prompts.registry import from_double_braces, to_double_braces


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- file ------------------------------------------------------------------------------------------------
def test_packaged_prompt_is_versioned_and_demands_citations():
    """The packaged prompt has a name and version and tells the model to cite [n] and never invent links or line numbers."""
    p = load_prompt_file()
    assert p.name == "rag-code-assistant" and p.version == "1" and p.source.startswith("file:packaged")
    assert "[n]" in p.system and "Never write URLs" in p.system and "line numbers" in p.system
    assert "{question}" in p.user and "{context}" in p.user


def test_render_fills_placeholders_without_interpreting_braces():
    """render() substitutes {question}/{context} once; braces in code or the question ({context}, {0}) stay literal."""
    p = load_prompt_file()
    code = "[1] payments:app/x.py:L1-L3\n```\nd = {'k': f'{v}'}  # {context} {question} {0}\n```"
    messages = p.render("why {0} in `d`?", code)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Question: why {0} in `d`?" in user
    assert code in user
    assert user.count("{context}") == 1  # only the one inside the code, not re-expanded


def test_file_registry_reads_a_custom_yaml_and_rereads_on_change(tmp_path):
    """A prompt file is validated, and edits are picked up on the next get() (like a mounted ConfigMap)."""
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "custom", "version": 3, "system": "S", "user": "Q: {question}\n{context}"}))
    reg = FilePromptRegistry(path)
    assert reg.get().version == "3"
    path.write_text(yaml.safe_dump({"name": "custom", "version": 4, "system": "S2", "user": "Q: {question}\n{context}"}))
    import os

    os.utime(path, (1, 1))  # make sure the mtime differs even on coarse file systems
    assert reg.get().version == "4" and reg.get().system == "S2"


def test_prompt_file_errors_name_the_problem(tmp_path):
    """A prompt without {context}, with an unknown key, or missing is an InvalidConfig naming what is wrong."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "version": 1, "user": "Q: {question}"}))
    with pytest.raises(InvalidConfig, match=r"\{context\}"):
        load_prompt_file(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "version": 1, "user": "{question}{context}", "sytem": "typo"}))
    with pytest.raises(InvalidConfig, match="sytem"):
        load_prompt_file(bad)
    with pytest.raises(InvalidConfig, match="not found"):
        load_prompt_file(tmp_path / "missing.yaml")


def test_brace_conversion_round_trips():
    """Single-brace placeholders become the {{var}} syntax of MLflow/Langfuse and come back unchanged."""
    t = "Q: {question}\n{context}\ncode {x}"
    assert to_double_braces(t) == "Q: {{question}}\n{{context}}\ncode {x}"
    assert from_double_braces(to_double_braces(t)) == t
    assert from_double_braces("{{ question }}") == "{question}"


# --- MLflow ----------------------------------------------------------------------------------------------
def test_mlflow_push_is_stored_and_loaded_back(mlflow_uri, tmp_path):
    """push_prompt registers the packaged prompt in MLflow's registry (SQLite), idempotently; the registry loads it back."""
    from mlflow import MlflowClient

    name = f"rag-{uuid.uuid4().hex[:6]}"
    cfg = PromptsConfig(backend="mlflow", name=name, mlflow_tracking_uri=mlflow_uri)
    first = push_prompt("mlflow", cfg, tmp_path)
    assert first["created"] is True and first["version"] == "1"
    again = push_prompt("mlflow", cfg, tmp_path)
    assert again["created"] is False and again["version"] == "1"

    stored = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).load_prompt(f"prompts:/{name}/1")
    assert stored.template[1]["content"].count("{{question}}") == 1  # stored in MLflow's own variable syntax

    prompt = build_prompt_registry(cfg, tmp_path).get()
    packaged = load_prompt_file()
    assert (prompt.name, prompt.version, prompt.fallback) == (name, "1", False)
    assert prompt.source == f"mlflow:prompts:/{name}@latest"
    assert (prompt.system, prompt.user) == (packaged.system, packaged.user)


def test_mlflow_label_maps_to_alias_and_new_version(mlflow_uri, tmp_path):
    """A changed prompt becomes version 2; `label` pins an MLflow alias that the registry then serves."""
    name = f"rag-{uuid.uuid4().hex[:6]}"
    base = PromptsConfig(backend="mlflow", name=name, mlflow_tracking_uri=mlflow_uri)
    push_prompt("mlflow", base.model_copy(update={"label": "production"}), tmp_path)
    changed = load_prompt_file()
    changed = type(changed)(**{**changed.__dict__, "system": changed.system + "\nBe brief.", "version": "2"})
    second = push_prompt("mlflow", base, tmp_path, changed)
    assert second["version"] == "2" and second["created"] is True
    prod = MlflowPromptRegistry(mlflow_uri, name, label="production").get()
    latest = MlflowPromptRegistry(mlflow_uri, name).get()
    pinned = MlflowPromptRegistry(mlflow_uri, name, version=2).get()
    assert (prod.version, latest.version, pinned.version) == ("1", "2", "2")
    assert latest.system.endswith("Be brief.") and not prod.system.endswith("Be brief.")


def test_mlflow_unregistered_prompt_falls_back_to_packaged(mlflow_uri, tmp_path):
    """With nothing registered yet, the service still answers: the packaged prompt, flagged as a fallback with the reason."""
    reg = MlflowPromptRegistry(mlflow_uri, f"never-pushed-{uuid.uuid4().hex[:6]}")
    p = reg.get()
    assert p.fallback is True and "prompts push --to mlflow" in p.fallback_reason
    assert p.source.startswith("file:packaged")


# --- Langfuse --------------------------------------------------------------------------------------------
def _langfuse_cfg(server, keys, monkeypatch, **kw) -> PromptsConfig:
    monkeypatch.setenv("LF_PK", keys.public_key)
    monkeypatch.setenv("LF_SK", keys.secret_key)
    return PromptsConfig(backend="langfuse", langfuse_host=server.url, langfuse_public_key_env="LF_PK", langfuse_secret_key_env="LF_SK", **kw)


def test_langfuse_push_then_fetch_over_http(langfuse_server, monkeypatch, tmp_path):
    """push creates a chat prompt labelled production (POST /api/public/v2/prompts); the registry GETs it back with Basic auth."""
    server, keys = langfuse_server
    cfg = _langfuse_cfg(server, keys, monkeypatch)
    result = push_prompt("langfuse", cfg, tmp_path)
    assert result == {"to": "langfuse", "name": "rag-code-assistant", "version": "1", "created": True, "label": "production", "host": server.url}
    assert push_prompt("langfuse", cfg, tmp_path)["created"] is False  # unchanged: no new version
    stored = keys.prompts["rag-code-assistant"][0]
    assert stored["type"] == "chat" and "{{context}}" in stored["prompt"][1]["content"]

    prompt = build_prompt_registry(cfg, tmp_path).get()
    assert (prompt.version, prompt.fallback) == ("1", False)
    assert prompt.user == load_prompt_file().user
    get = [r for r in server.requests if r.method == "GET"][-1]
    assert get.path == "/api/public/v2/prompts/rag-code-assistant"
    assert get.headers["authorization"].startswith("Basic ")


def test_langfuse_label_version_and_ttl_cache(langfuse_server, monkeypatch, tmp_path):
    """label/version go to the query string; within the TTL the prompt is served from cache, after it refetched."""
    server, keys = langfuse_server
    keys.add_prompt("rag-code-assistant", [{"role": "system", "content": "v1 sys"}, {"role": "user", "content": "{{question}} {{context}}"}], ["staging"])
    keys.add_prompt("rag-code-assistant", [{"role": "system", "content": "v2 sys"}, {"role": "user", "content": "{{question}} {{context}}"}], ["production"])
    clock = Clock()
    reg = LangfusePromptRegistry(server.url, keys.public_key, keys.secret_key, label="staging", cache_ttl_s=60, clock=clock)
    assert reg.get().system == "v1 sys"
    gets = lambda: [r for r in server.requests if r.method == "GET"]  # noqa: E731
    assert gets()[-1].query == {"label": ["staging"]}
    reg.get()
    assert len(gets()) == 1  # cached
    clock.now += 61
    reg.get()
    assert len(gets()) == 2  # TTL expired → refetched
    pinned = LangfusePromptRegistry(server.url, keys.public_key, keys.secret_key, version=2).get()
    assert pinned.system == "v2 sys" and gets()[-1].query == {"version": ["2"]}


def test_langfuse_outage_falls_back_and_records_it(langfuse_server, monkeypatch, tmp_path):
    """Langfuse down: first a stale cached copy is reused, and with no cache the packaged prompt — both flagged as fallbacks."""
    server, keys = langfuse_server
    keys.add_prompt("rag-code-assistant", [{"role": "system", "content": "remote"}, {"role": "user", "content": "{{question}} {{context}}"}], ["production"])
    clock = Clock()
    reg = LangfusePromptRegistry(server.url, keys.public_key, keys.secret_key, cache_ttl_s=10, clock=clock)
    assert reg.get().system == "remote"
    server.mode = "down"
    clock.now += 11
    stale = reg.get()
    assert stale.system == "remote" and stale.fallback and "stale cache" in stale.fallback_reason and "503" in stale.fallback_reason

    cold = LangfusePromptRegistry(server.url, keys.public_key, keys.secret_key, fetch_timeout_s=1)
    p = cold.get()
    assert p.fallback and p.source.startswith("file:packaged") and "langfuse fetch failed" in p.fallback_reason
    assert p.trace_attributes()["prompt_fallback"] is True


def test_langfuse_unreachable_host_falls_back_fast(monkeypatch, tmp_path):
    """Nothing listening at the Langfuse host: get() returns the packaged prompt instead of raising."""
    reg = LangfusePromptRegistry("http://127.0.0.1:9", "pk", "sk", fetch_timeout_s=1)
    p = reg.get()
    assert p.fallback and p.name == "rag-code-assistant"


def test_push_to_unreachable_or_unauthorised_registry_is_one_error(langfuse_server, monkeypatch, tmp_path):
    """Push failures (connection refused, 401) surface as PromptRegistryError naming the registry, not SDK tracebacks."""
    from codesense_ray.answering.prompts import PromptRegistryError

    server, keys = langfuse_server
    cfg = _langfuse_cfg(server, keys, monkeypatch)
    monkeypatch.setenv("LF_SK", "wrong")
    with pytest.raises(PromptRegistryError, match="langfuse"):
        push_prompt("langfuse", cfg, tmp_path)
    with pytest.raises(PromptRegistryError, match="127.0.0.1:9"):
        push_prompt("langfuse", cfg.model_copy(update={"langfuse_host": "http://127.0.0.1:9"}), tmp_path)


def test_langfuse_config_needs_host_and_keys(monkeypatch, tmp_path):
    """backend=langfuse without host, or with an unset key env var, is an InvalidConfig at build time."""
    with pytest.raises(InvalidConfig, match="langfuse_host"):
        build_prompt_registry(PromptsConfig(backend="langfuse"), tmp_path)
    monkeypatch.delenv("NOPE_PK", raising=False)
    with pytest.raises(InvalidConfig, match="NOPE_PK"):
        build_prompt_registry(PromptsConfig(backend="langfuse", langfuse_host="http://x", langfuse_public_key_env="NOPE_PK"), tmp_path)


# --- CLI -------------------------------------------------------------------------------------------------
def _cli(argv: list[str], capsys) -> tuple[int, str]:
    import argparse

    from codesense_ray.app.cli.prompts import register

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None)
    common.add_argument("--json", action="store_true")
    parser = argparse.ArgumentParser(prog="codesense", parents=[common])
    register(parser.add_subparsers(dest="command"), common)
    args = parser.parse_args(argv)
    code = args.handler(args)
    return code, capsys.readouterr().out


def test_cli_prompts_push_and_show(tmp_path, monkeypatch, capsys, mlflow_uri):
    """`codesense prompts push --to mlflow --json` prints one JSON document; `prompts show` prints the prompt in use."""
    config = tmp_path / "codesense.yaml"
    config.write_text(yaml.safe_dump({"repositories": []}))
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    code, out = _cli(["prompts", "push", "--to", "mlflow", "--config", str(config), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["to"] == "mlflow" and doc["name"] == "rag-code-assistant" and doc["tracking_uri"] == mlflow_uri
    code, out = _cli(["prompts", "show", "--config", str(config), "--json"], capsys)
    shown = json.loads(out)
    assert code == 0 and shown["source"].startswith("file:packaged") and shown["version"] == "1"
    code, out = _cli(["prompts", "show", "--config", str(config)], capsys)
    assert "rag-code-assistant version 1" in out and "--- system ---" in out
