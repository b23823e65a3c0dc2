"""The supervised fine-tuning loop (LoRA / QLoRA, optionally unsloth), independent of Ray.

`run_training_loop(spec, report=...)` is what every Ray Train worker runs (see `ray_train.py`), and what a
plain process can run too: the Ray adapter only supplies the device, the rank, DDP wrapping and `report`
(metrics + checkpoint directory). torch, transformers and peft are imported inside the functions.

Loss is computed on the answer tokens only (the prompt and context are masked with -100): the student learns
to *write the answer*, not to reproduce the question — like a test that checks the output, not the fixture.
"""

from __future__ import annotations

import json
import math
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from codesense_ray.training.data import ADAPTER_META, load_examples

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pt"

Report = Callable[[dict[str, Any], "str | None"], None]


@dataclass
class TrainSpec:
    """Everything a worker needs, as plain data (it crosses process boundaries as JSON)."""

    model_dir: str
    base_model: str
    train_path: str
    validation_path: str | None = None
    gguf_file: str | None = None
    device: str = "cpu"
    quantization: str = "none"
    use_unsloth: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_steps: int = 60
    batch_size: int = 4
    max_seq_length: int = 256
    learning_rate: float = 2e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    seed: int = 0
    checkpoint_every: int = 20
    probe_examples: int = 4
    resume_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainSpec":
        return cls(**data)


# --- tokenisation (pure given a tokenizer) -------------------------------------------------------------
def render_example(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, str]:
    """(prompt text up to the answer cue, answer text with its end-of-turn marker)."""
    prompt_msgs, answer = messages[:-1], messages[-1]["content"]
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(prompt_msgs, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt) :]
    from codesense_ray.answering.generators.local import plain_prompt

    return plain_prompt(prompt_msgs), answer.strip() + (tokenizer.eos_token or "")


def encode_example(tokenizer: Any, messages: list[dict[str, str]], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (prompt masked with -100), cut to `max_len`.

    When too long, the answer keeps at most half the budget and the prompt is cut from the front (keeping the
    first, BOS, token): the question and the generation cue sit at the end of the prompt and matter most.
    """
    prompt_text, answer_text = render_example(tokenizer, messages)
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer = tokenizer(answer_text, add_special_tokens=False)["input_ids"]
    if len(prompt) + len(answer) > max_len:
        answer = answer[: max(1, max_len // 2)] if len(answer) > max_len // 2 else answer
        room = max_len - len(answer)
        bos = tokenizer.bos_token_id
        if prompt and bos is not None and prompt[0] == bos and room > 1:
            prompt = prompt[:1] + prompt[len(prompt) - (room - 1) :]
        else:
            prompt = prompt[len(prompt) - room :] if room > 0 else []
    return prompt + answer, [-100] * len(prompt) + answer


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding)."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        labels[i, : len(y)] = torch.tensor(y)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --- model ---------------------------------------------------------------------------------------------
def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated by torch on CUDA, else this process's peak RSS."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / (2**20 if sys.platform == "darwin" else 2**10)


def build_model(spec: TrainSpec) -> tuple[Any, Any, str]:
    """(peft model, tokenizer, flavour) where flavour is `lora`, `qlora`, `unsloth-lora` or `unsloth-qlora`."""
    import torch

    four_bit = spec.quantization == "4bit"
    if spec.use_unsloth:
        from unsloth import FastLanguageModel  # noqa: I001 - unsloth patches transformers; import it first

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=spec.model_dir, max_seq_length=spec.max_seq_length, load_in_4bit=four_bit, dtype=None
        )
        model = FastLanguageModel.get_peft_model(
            model, r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=0.0, target_modules=spec.target_modules,
            bias="none", use_gradient_checkpointing="unsloth", random_state=spec.seed,
        )
        return model, tokenizer, "unsloth-qlora" if four_bit else "unsloth-lora"

    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    kwargs: dict[str, Any] = {}
    if four_bit:
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": torch.device(spec.device).index or 0}
        kwargs["dtype"] = torch.bfloat16
    else:
        kwargs["dtype"] = torch.bfloat16 if spec.device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, attn_implementation="eager", **kwargs)
    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if spec.resume_from:
        model = PeftModel.from_pretrained(model, spec.resume_from, is_trainable=True)
    else:
        lora = LoraConfig(
            r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout, target_modules=spec.target_modules,
            bias="none", task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    if not four_bit:
        model.to(spec.device)
    return model, tokenizer, "qlora" if four_bit else "lora"


def save_adapter(model: Any, directory: Path, spec: TrainSpec, state: dict[str, Any]) -> Path:
    """The peft adapter files plus the base-model note and the trainer state (step, losses)."""
    directory.mkdir(parents=True, exist_ok=True)
    getattr(model, "module", model).save_pretrained(str(directory))
    meta = {"base_model": spec.base_model, "gguf_file": spec.gguf_file, "lora_r": spec.lora_r, "target_modules": spec.target_modules,
            "quantization": spec.quantization}
    (directory / ADAPTER_META).write_text(json.dumps(meta, indent=2))
    (directory / TRAINER_STATE).write_text(json.dumps(state, indent=2))
    return directory


def build_optimizer(params: list[Any], spec: TrainSpec) -> tuple[Any, Any]:
    """AdamW over the adapter weights and the learning-rate schedule (`constant`, `linear` or `cosine` after
    `warmup_steps`), stepped once per optimiser step."""
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate)
    name = "constant_with_warmup" if spec.lr_schedule == "constant" else spec.lr_schedule
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=spec.max_steps)
    return optimizer, scheduler


def save_optimizer(directory: Path, optimizer: Any, scheduler: Any) -> None:
    """AdamW's moments and step counters and the schedule's position: what a resumed run needs to continue the
    same optimisation instead of restarting it with cold moments (like restoring a database's WAL, not only its tables)."""
    import torch

    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, directory / OPTIMIZER_STATE)


def restore_optimizer(directory: Path, optimizer: Any, scheduler: Any) -> bool:
    """Load the state `save_optimizer` wrote; False for a checkpoint without it (adapter-only, older runs)."""
    import torch

    path = directory / OPTIMIZER_STATE
    if not path.is_file():
        return False
    saved = torch.load(path, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return True


def batch_order(n: int, batch_size: int, seed: int) -> Any:
    """The example indices of each step, forever: shuffled passes over the data, a pure function of the seed, so
    a resumed run skips the batches it already trained on and sees the same ones an uninterrupted run would."""
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            fresh = list(range(n))
            rng.shuffle(fresh)
            order += fresh * max(1, math.ceil(batch_size / max(1, len(fresh))))
        picked, order = order[:batch_size], order[batch_size:]
        yield picked


def _seed_step(spec: TrainSpec, rank: int, step: int) -> None:
    """Dropout masks of a step depend only on (seed, rank, step): a resumed step draws what it would have drawn."""
    import torch

    torch.manual_seed(spec.seed * 1_000_003 + rank * 10_007 + step)


# --- the loop ------------------------------------------------------------------------------------------
def _mean_loss(model: Any, batches: list[dict[str, Any]], device: str) -> float:
    import torch

    model.eval()
    total = 0.0
    with torch.no_grad():
        for b in batches:
            total += model(**{k: v.to(device) for k, v in b.items()}).loss.item()
    model.train()
    return total / len(batches)


def run_training_loop(
    spec: TrainSpec | dict[str, Any],
    report: Report,
    *,
    rank: int = 0,
    world_size: int = 1,
    prepare_model: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Train for `spec.max_steps` steps on this worker's shard; call `report(metrics, checkpoint_dir)` every
    `checkpoint_every` steps and at the end (checkpoint only from rank 0). Returns the final metrics.

    Metrics: `loss` (mean training loss since the last report), `probe_loss_before` / `probe_loss` (loss on a
    fixed probe batch before training and now, the honest "did it learn" number), `tokens_per_s`, `peak_memory_mb`.
    """
    import torch

    spec = spec if isinstance(spec, TrainSpec) else TrainSpec.from_dict(spec)
    torch.manual_seed(spec.seed)
    model, tokenizer, flavour = build_model(spec)
    if prepare_model is not None:
        model = prepare_model(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    examples = load_examples(spec.train_path)
    shard = examples[rank::world_size] or examples
    encoded = [encode_example(tokenizer, m, spec.max_seq_length) for m in shard]
    probe_source = load_examples(spec.validation_path) if spec.validation_path else examples
    probe = [encode_example(tokenizer, m, spec.max_seq_length) for m in probe_source[: spec.probe_examples]]
    probe_batches = [collate(probe[i : i + spec.batch_size], pad) for i in range(0, len(probe), spec.batch_size)]

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = build_optimizer(params, spec)
    state: dict[str, Any] = {"step": 0, "losses": []}
    if spec.resume_from and (Path(spec.resume_from) / TRAINER_STATE).is_file():
        state = json.loads((Path(spec.resume_from) / TRAINER_STATE).read_text())
        state["optimizer_restored"] = restore_optimizer(Path(spec.resume_from), optimizer, scheduler)
    probe_before = state.get("probe_loss_before") or _mean_loss(model, probe_batches, spec.device)
    state["probe_loss_before"] = probe_before
    trainable = sum(p.numel() for p in params)

    model.train()
    batches = batch_order(len(encoded), spec.batch_size, spec.seed + rank)
    for _ in range(state["step"]):  # the batches the checkpointed steps already trained on
        next(batches)
    window_losses: list[float] = []
    tokens = 0
    train_seconds = 0.0
    metrics: dict[str, Any] = {}
    for step in range(state["step"] + 1, spec.max_steps + 1):
        batch = collate([encoded[i] for i in next(batches)], pad)
        _seed_step(spec, rank, step)
        started = time.perf_counter()
        out = model(**{k: v.to(spec.device) for k, v in batch.items()})
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        train_seconds += time.perf_counter() - started
        tokens += int(batch["attention_mask"].sum())
        loss = out.loss.item()
        window_losses.append(loss)
        state["losses"].append(round(loss, 5))
        state["step"] = step
        if step % spec.checkpoint_every == 0 or step == spec.max_steps:
            probe_now = _mean_loss(model, probe_batches, spec.device)
            metrics = {
                "step": step,
                "loss": sum(window_losses) / len(window_losses),
                "probe_loss_before": probe_before,
                "probe_loss": probe_now,
                "tokens_per_s": tokens / train_seconds if train_seconds else 0.0,
                "peak_memory_mb": peak_memory_mb(spec.device),
                "trainable_params": trainable,
                "flavour": flavour,
                "learning_rate": scheduler.get_last_lr()[0],
            }
            state["probe_loss"] = probe_now
            window_losses = []
            if rank == 0:
                with tempfile.TemporaryDirectory(prefix="codesense-ckpt-") as tmp:
                    save_adapter(model, Path(tmp), spec, state)
                    save_optimizer(Path(tmp), optimizer, scheduler)
                    report(metrics, tmp)
            else:
                report(metrics, None)
    if not metrics:  # resumed at or past max_steps: nothing to train, report the state once
        metrics = {"step": state["step"], "probe_loss_before": probe_before, "probe_loss": state.get("probe_loss", probe_before), "flavour": flavour}
        report(metrics, None)
    return metrics


def train_in_process(spec: TrainSpec, output: Path) -> dict[str, Any]:
    """Run the loop in this process (no Ray) and keep the last checkpoint in `output` — for benchmarks and
    debugging; `codesense train` uses Ray Train."""
    history: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any], checkpoint: str | None) -> None:
        history.append(metrics)
        if checkpoint:
            shutil.rmtree(output, ignore_errors=True)
            shutil.copytree(checkpoint, output)

    final = run_training_loop(spec, report)
    return {"final": final, "history": history}
