"""The MLflow Model Registry for the student adapter: versions, aliases, promotion behind a gate, rollback.

Think of the registered model as an image repository and each version as an immutable image digest; the
aliases are moving tags. `challenger` is the freshly trained candidate (a canary tag), `champion` is what
production serves (`models:/codesense-student@champion`, like `image:stable`). Promotion moves `champion` only
when the challenger's latest comparison passes the gate; every move is appended to the model's
`champion_history` tag, so rollback steps back exactly one promotion (like `helm rollback`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesense_ray.errors import CodesenseError, PromotionRefused, RegistryError  # noqa: F401

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
EVAL_TAG_PREFIX = "eval."






@dataclass
class ModelVersionInfo:
    """One registered version as `models list` shows it."""

    version: int
    aliases: list[str]
    run_id: str | None
    source: str
    created: int
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def eval_metrics(self) -> dict[str, float]:
        return {k.removeprefix(EVAL_TAG_PREFIX): float(v) for k, v in self.tags.items() if k.startswith(EVAL_TAG_PREFIX)}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "aliases": self.aliases, "run_id": self.run_id, "source": self.source, "created": self.created,
                "tags": {k: v for k, v in self.tags.items() if not k.startswith(EVAL_TAG_PREFIX)}, "eval": self.eval_metrics}


def resolve_tracking_uri(configured: str | None, home: Path) -> str:
    from codesense_ray.config.answering import resolve_mlflow_uri

    return resolve_mlflow_uri(configured, home)


def ensure_experiment(client: Any, tracking_uri: str, name: str) -> str:
    from codesense_ray.config.answering import mlflow_artifact_location

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=mlflow_artifact_location(tracking_uri, name))


def parse_model_uri(uri: str) -> tuple[str, str | None, int | None]:
    """`models:/name@alias` → (name, alias, None); `models:/name/3` → (name, None, 3)."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"not a registry URI: {uri!r} (expected models:/<name>@<alias> or models:/<name>/<version>)")
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias:
            return name, alias, None
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return name, None, int(version)
    raise RegistryError(f"malformed registry URI: {uri!r} (expected models:/<name>@<alias> or models:/<name>/<version>)")


class StudentRegistry:
    """Registered versions of one model name on an MLflow tracking/registry server (SQLite locally)."""

    def __init__(self, tracking_uri: str, model_name: str, experiment: str = "codesense-training", client: Any = None) -> None:
        import mlflow

        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.client = client or mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def from_config(cls, cfg) -> "StudentRegistry":
        from codesense_ray.config.training import training_config

        r = training_config(cfg).registry
        return cls(resolve_tracking_uri(r.tracking_uri, cfg.home), r.model_name, r.experiment)

    # --- write ----------------------------------------------------------------------------------------
    def log_training_run(self, result: Any, *, dataset: str | None = None, extra_params: dict[str, Any] | None = None) -> str:
        """One MLflow run with the parameters, the per-report metrics (loss curve, tokens/s, peak memory) and
        the adapter as an artifact. Returns the run id."""
        from mlflow.entities import Metric, Param

        exp_id = ensure_experiment(self.client, self.tracking_uri, self.experiment)
        run = self.client.create_run(exp_id, run_name="train-" + Path(str(result.adapter_dir)).parent.name, tags={"codesense.stage": "train"})
        run_id = run.info.run_id
        spec = dict(result.spec)
        params = {k: spec.get(k) for k in ("base_model", "device", "quantization", "use_unsloth", "lora_r", "lora_alpha", "target_modules",
                                           "max_steps", "batch_size", "max_seq_length", "learning_rate", "seed")}
        params.update({"dataset": dataset or spec.get("train_path"), **(extra_params or {})})
        metrics = []
        now = 0
        for row in result.history:
            step = int(row.get("step") or 0)
            for key in ("loss", "probe_loss", "tokens_per_s", "peak_memory_mb"):
                if isinstance(row.get(key), (int, float)):
                    metrics.append(Metric(key, float(row[key]), now, step))
        if isinstance(result.metrics.get("probe_loss_before"), (int, float)):
            metrics.append(Metric("probe_loss_before", float(result.metrics["probe_loss_before"]), now, 0))
        metrics.append(Metric("train_seconds", float(result.seconds), now, 0))
        self.client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)[:6000]) for k, v in params.items() if v is not None])
        self.client.log_artifacts(run_id, str(result.adapter_dir), "adapter")
        self.client.set_terminated(run_id)
        return run_id

    def register(self, run_id: str, *, tags: dict[str, Any] | None = None, alias: str = CHALLENGER, artifact: str = "adapter",
                 description: str = "LoRA adapters of the codesense student model (base model in each version's tags).") -> ModelVersionInfo:
        """A new version from the run's `artifact` directory, with `alias` (default `challenger`) moved onto it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            self.client.create_registered_model(self.model_name, description=description)
        run = self.client.get_run(run_id)
        source = run.info.artifact_uri.rstrip("/") + "/" + artifact
        mv = self.client.create_model_version(self.model_name, source, run_id=run_id, tags={k: str(v) for k, v in (tags or {}).items()})
        self.client.set_registered_model_alias(self.model_name, alias, mv.version)
        return self.get(int(mv.version))

    def record_evaluation(self, version: int, metrics: dict[str, float | None]) -> None:
        """Store a comparison's metrics on the version (tags `eval.<metric>`); `promote` gates on them."""
        for name, value in metrics.items():
            if value is not None:
                self.client.set_model_version_tag(self.model_name, str(version), EVAL_TAG_PREFIX + name, f"{float(value):.6g}")

    # --- read -----------------------------------------------------------------------------------------
    def _info(self, mv: Any) -> ModelVersionInfo:
        return ModelVersionInfo(
            version=int(mv.version), aliases=sorted(getattr(mv, "aliases", None) or []), run_id=mv.run_id, source=mv.source,
            created=int(mv.creation_timestamp or 0), tags=dict(mv.tags or {}),
        )

    def versions(self) -> list[ModelVersionInfo]:
        """Every version, newest first (empty when nothing was registered yet)."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = dict(self.client.get_registered_model(self.model_name).aliases or {})
        except MlflowException:
            return []
        found = self.client.search_model_versions(f"name='{self.model_name}'")
        infos = sorted((self._info(mv) for mv in found), key=lambda v: v.version, reverse=True)
        for info in infos:  # search results do not carry aliases; the registered model does
            info.aliases = sorted(a for a, v in aliases.items() if int(v) == info.version)
        return infos

    def get(self, version: int) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version(self.model_name, str(version)))
        except MlflowException:
            raise RegistryError(f"{self.model_name} has no version {version}") from None

    def by_alias(self, alias: str) -> ModelVersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version_by_alias(self.model_name, alias))
        except MlflowException:
            return None

    def _history(self) -> list[int]:
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.model_name).tags or {}
        except MlflowException:
            raise RegistryError(f"no registered model {self.model_name!r} yet: run `codesense train` first") from None
        return [int(v) for v in json.loads(tags.get(HISTORY_TAG) or "[]")]

    # --- move aliases ----------------------------------------------------------------------------------
    def _set_champion(self, version: int, history: list[int]) -> None:
        self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version))
        self.client.set_registered_model_tag(self.model_name, HISTORY_TAG, json.dumps(history))

    def promote(self, rules: list[Any], version: int | None = None) -> dict[str, Any]:
        """Move `champion` to `version` (default: the `challenger`) if its recorded evaluation passes `rules`.

        Raises `PromotionRefused` naming each failing metric (the alias stays where it was)."""
        from codesense_ray.evaluation.gate import check_gates

        history = self._history()
        if version is None:
            candidate = self.by_alias(CHALLENGER)
            if candidate is None:
                raise RegistryError(f"{self.model_name} has no `{CHALLENGER}` alias: train a new version first")
        else:
            candidate = self.get(version)
        current = self.by_alias(CHAMPION)
        if current is not None and current.version == candidate.version:
            raise RegistryError(f"version {candidate.version} is already the champion")
        failures = check_gates(candidate.eval_metrics, rules)
        if failures:
            hint = "" if candidate.eval_metrics else " (no comparison recorded: run `codesense models compare` first)"
            raise PromotionRefused(f"gate failed for version {candidate.version}{hint}: " + "; ".join(f.message() for f in failures))
        if current is not None and (not history or history[-1] != current.version):
            history.append(current.version)  # a champion set by hand still becomes a rollback target
        self._set_champion(candidate.version, history + [candidate.version])
        if self.by_alias(CHALLENGER) and self.by_alias(CHALLENGER).version == candidate.version:
            self.client.delete_registered_model_alias(self.model_name, CHALLENGER)
        return {"model": self.model_name, "champion": candidate.version, "previous": current.version if current else None}

    def rollback(self, to: int | None = None) -> dict[str, Any]:
        """Move `champion` back to the previous champion (or to version `to`)."""
        history = self._history()
        current = self.by_alias(CHAMPION)
        if current is None:
            raise RegistryError(f"{self.model_name} has no `{CHAMPION}` yet: nothing to roll back")
        if to is not None:
            target = self.get(to).version
            if target == current.version:
                raise RegistryError(f"version {target} is already the champion")
            history.append(target)
        else:
            while history and history[-1] == current.version:
                history.pop()
            if not history:
                raise RegistryError(f"no previous champion of {self.model_name} to roll back to (use --to VERSION)")
            target = history[-1]
        self._set_champion(target, history)
        return {"model": self.model_name, "champion": target, "previous": current.version}

    # --- load -----------------------------------------------------------------------------------------
    def download(self, version: ModelVersionInfo, cache: Path, marker: str = "adapter_config.json") -> Path:
        """The files of `version` in a local directory (downloaded once into `cache`; `marker` proves a complete copy)."""
        import mlflow

        target = cache / f"{self.model_name}-v{version.version}"
        if (target / marker).is_file():
            return target
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        local = mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(tmp), tracking_uri=self.tracking_uri)
        src = Path(local)
        if not (src / marker).is_file():
            raise RegistryError(f"{self.model_name} v{version.version}: no {marker} in {version.source}")
        shutil.rmtree(target, ignore_errors=True)
        if src != tmp:
            shutil.move(str(src), str(target))
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(target)
        return target


def resolve_version(uri: str, home: Path, tracking_uri: str | None = None) -> tuple[StudentRegistry, ModelVersionInfo]:
    """The registry and the version `models:/name@alias` (or `models:/name/3`) points at."""
    name, alias, version = parse_model_uri(uri)
    registry = StudentRegistry(resolve_tracking_uri(tracking_uri, home), name)
    info = registry.by_alias(alias) if alias else registry.get(version or 0)
    if info is None:
        raise RegistryError(f"{uri}: {name} has no alias `{alias}`")
    return registry, info


def resolve_adapter_uri(uri: str, home: Path, tracking_uri: str | None = None) -> Path:
    """`models:/codesense-student@champion` (or `/3`) → a local adapter directory, downloaded once under
    `home/models/registry/`. Used by the `local` generator."""
    registry, info = resolve_version(uri, home, tracking_uri)
    return registry.download(info, Path(home) / "models" / "registry")


def resolve_registered_student(uri: str, home: Path) -> tuple[str, str | None, Path]:
    """(base model, gguf file, adapter directory) of a registered student version — what the `local`
    generator needs to load `models:/codesense-student@champion` as base + adapter."""
    from codesense_ray.training.data import ADAPTER_META

    adapter = resolve_adapter_uri(uri, home)
    meta_file = adapter / ADAPTER_META
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    base = meta.get("base_model")
    if not base:
        raise RegistryError(f"{uri}: the adapter does not name its base model ({ADAPTER_META} missing)")
    return base, meta.get("gguf_file"), adapter


def resolve_registered_embedding(uri: str, home: Path, tracking_uri: str | None = None) -> tuple[Path, str]:
    """(local model directory, `models:/name/<version>`) of a registered embedding model — the pinned URI names the
    exact version, so moving an alias changes the model the index records and forces a re-embed."""
    registry, info = resolve_version(uri, home, tracking_uri)
    path = registry.download(info, Path(home) / "models" / "registry", marker="modules.json")
    return path, f"models:/{registry.model_name}/{info.version}"
