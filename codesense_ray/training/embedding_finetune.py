"""Fine-tune the embedding model on pairs mined from the indexed code (`codesense embeddings finetune`).

Contrastive learning is like teaching an alert router from labelled incidents: for each (report, component)
pair the model pulls the two together and pushes the report away from every *other* component in the same
batch (MultipleNegativesRankingLoss: the batch's other positives are the negatives). A few minutes on CPU
adapt the packaged MiniLM to this codebase's vocabulary; the result is an ordinary sentence-transformers
directory, logged to MLflow and registered (`models:/codesense-embedding@challenger`), which
`embedding.model` can name like any other model. Changing the model re-embeds the index on the next run.
"""

from __future__ import annotations

import glob
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from codesense_ray.config.training import EmbeddingFinetuneConfig, training_config
from codesense_ray.training.embedding_pairs import EvalExclusions, Function, MiningReport, Pair, mine_pairs, python_functions, write_pairs

MAX_PROBE_PAIRS = 256


@dataclass
class FinetuneResult:
    """What a fine-tuning run produced: the model directory, the pairs and the before/after probe."""

    model_dir: str
    base_model: str
    pairs: dict[str, int]
    dropped: dict[str, int]
    train_pairs: int
    probe_pairs: int
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    probe_recall_before: float | None = None
    probe_recall_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"} | {"final_loss": self.history[-1]["loss"] if self.history else None}


def repository_functions(cfg) -> list[Function]:
    """Every Python function of the configured repositories, selected like the indexer selects files."""
    from codesense_ray.sources.files import read_text, select_files
    from codesense_ray.sources.repositories import resolve_repositories

    out: list[Function] = []
    idx = cfg.index
    for info in resolve_repositories(cfg):
        if info.path is None or not Path(info.path).is_dir():
            continue
        selection = select_files(Path(info.path), max_file_bytes=idx.max_file_bytes, max_line_length=idx.max_line_length,
                                 exclude=idx.exclude, secret_files=cfg.secrets.exclude_files)
        for sf in selection.files:
            if sf.language == "python":
                out.extend(python_functions(info.id, sf.path, read_text(sf, info.path)))
    return out


def eval_exclusions(cfg, settings: EmbeddingFinetuneConfig) -> EvalExclusions:
    """Gold spans of every evaluation set matched by `exclude_datasets` (relative to the config file)."""
    files = sorted({Path(p) for pattern in settings.exclude_datasets for p in glob.glob(str(cfg.resolve_path(pattern)))})
    return EvalExclusions.from_datasets(files)


def split_pairs(pairs: Sequence[Pair], settings: EmbeddingFinetuneConfig) -> tuple[list[Pair], list[Pair]]:
    """A seeded sample of at most `max_pairs`, split into (train, probe)."""
    rng = random.Random(settings.seed)
    sample = list(pairs)
    rng.shuffle(sample)
    sample = sample[: settings.max_pairs]
    n_probe = min(MAX_PROBE_PAIRS, int(len(sample) * settings.holdout_fraction))
    return sample[n_probe:], sample[:n_probe]


def probe_recall(model: Any, pairs: Sequence[Pair]) -> float | None:
    """Share of probe anchors whose nearest probe positive is their own (recall@1 among the probe's positives)."""
    if len(pairs) < 2:
        return None
    import numpy as np

    a = model.encode([p.anchor for p in pairs], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    b = model.encode([p.positive for p in pairs], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return round(float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(pairs)))), 4)


def _batches(pairs: Sequence[Pair], size: int, seed: int):
    """Endless shuffled batches; a batch never holds two pairs with the same positive (it would be its own negative)."""
    rng = random.Random(seed)
    while True:
        order = list(pairs)
        rng.shuffle(order)
        batch: list[Pair] = []
        seen: set[str] = set()
        for p in order:
            if p.positive in seen:
                continue
            batch.append(p)
            seen.add(p.positive)
            if len(batch) == size:
                yield batch
                batch, seen = [], set()


def train(model: Any, pairs: Sequence[Pair], settings: EmbeddingFinetuneConfig, steps: int,
          on_step: Callable[[int, float], None] | None = None) -> list[dict[str, float]]:
    """`steps` AdamW steps of MultipleNegativesRankingLoss on `pairs`, linear warm-up then decay."""
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(settings.seed)
    loss_fn = MultipleNegativesRankingLoss(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    batches = _batches(pairs, min(settings.batch_size, len({p.positive for p in pairs})), settings.seed)
    history = []
    model.train()
    for step in range(1, steps + 1):
        batch = next(batches)
        features = [model.preprocess([p.anchor for p in batch]), model.preprocess([p.positive for p in batch])]
        loss = loss_fn(features, None)
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        history.append({"step": step, "loss": round(float(loss.item()), 5)})
        if on_step:
            on_step(step, float(loss.item()))
    model.eval()
    return history


def mine(cfg) -> MiningReport:
    """The pairs `training.embedding` asks for, from the configured repositories, evaluation gold excluded."""
    settings = training_config(cfg).embedding
    return mine_pairs(repository_functions(cfg), eval_exclusions(cfg, settings), settings.kinds)


def finetune_embeddings(cfg, *, max_steps: int | None = None, output: Path | None = None,
                        on_step: Callable[[int, float], None] | None = None) -> FinetuneResult:
    """Mine pairs, train, save the model directory (with `pairs.jsonl` beside it). Raises `CodesenseError` when
    the repositories yield too few pairs to train on."""
    from sentence_transformers import SentenceTransformer

    from codesense_ray.errors import CodesenseError
    from codesense_ray.index.embedding import resolve_model_path

    settings = training_config(cfg).embedding
    base = settings.base_model or cfg.embedding.model
    out = Path(output) if output else (cfg.resolve_path(settings.output_dir) if settings.output_dir else cfg.home / "models" / "embedding-finetuned")
    report = mine(cfg)
    train_pairs, probe = split_pairs(report.pairs, settings)
    if len({p.positive for p in train_pairs}) < 2:
        raise CodesenseError(f"embeddings finetune: only {len(report.pairs)} pairs mined from the configured repositories (need a few with docstrings, tests or raised errors)")
    started = time.perf_counter()
    model = SentenceTransformer(str(resolve_model_path(base)), device="cpu", local_files_only=True)
    model.max_seq_length = settings.max_seq_length
    before = probe_recall(model, probe)
    steps = max_steps or settings.max_steps
    history = train(model, train_pairs, settings, steps, on_step)
    after = probe_recall(model, probe)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    write_pairs(report.pairs, out / "pairs.jsonl")
    return FinetuneResult(
        model_dir=str(out), base_model=base, pairs=report.counts(), dropped=dict(report.dropped), train_pairs=len(train_pairs),
        probe_pairs=len(probe), steps=steps, seconds=round(time.perf_counter() - started, 1), history=history,
        probe_recall_before=before, probe_recall_after=after,
    )


def log_and_register(cfg, result: FinetuneResult, *, register: bool = True) -> dict[str, Any]:
    """One MLflow run (parameters, loss curve, probe recall, the model directory as artifact `model`) and, unless
    `register` is false, a new version of `training.embedding.model_name` with alias `challenger`."""
    from mlflow.entities import Metric, Param

    from codesense_ray.training.registry import CHALLENGER, StudentRegistry, ensure_experiment, resolve_tracking_uri

    t = training_config(cfg)
    settings = t.embedding
    registry = StudentRegistry(resolve_tracking_uri(t.registry.tracking_uri, cfg.home), settings.model_name, t.registry.experiment)
    client = registry.client
    run = client.create_run(ensure_experiment(client, registry.tracking_uri, registry.experiment), run_name="embedding-finetune",
                            tags={"codesense.stage": "embedding-finetune"})
    run_id = run.info.run_id
    params = {**settings.model_dump(exclude={"exclude_datasets", "kinds"}), "base_model": result.base_model, "steps": result.steps,
              "kinds": ",".join(settings.kinds), "train_pairs": result.train_pairs, "probe_pairs": result.probe_pairs}
    metrics = [Metric("loss", row["loss"], 0, int(row["step"])) for row in result.history]
    extra = {"train_seconds": result.seconds, "probe_recall_before": result.probe_recall_before, "probe_recall_after": result.probe_recall_after,
             **{f"pairs_{k}": v for k, v in result.pairs.items()}, **{f"dropped_{k}": v for k, v in result.dropped.items()}}
    metrics += [Metric(k, float(v), 0, 0) for k, v in extra.items() if v is not None]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items() if v is not None])
    client.log_artifacts(run_id, result.model_dir, "model")
    client.set_terminated(run_id)
    payload: dict[str, Any] = {"run_id": run_id, "model": settings.model_name, "version": None, "uri": None}
    if register:
        info = registry.register(run_id, alias=CHALLENGER, artifact="model", tags={"base_model": result.base_model, "kind": "embedding"},
                                 description="Embedding models fine-tuned on pairs mined from the indexed code.")
        payload.update(version=info.version, uri=f"models:/{settings.model_name}@{CHALLENGER}")
    return payload
