"""Fixtures for the model lifecycle: the packaged Gemma converted once per session, tiny chat datasets, an
indexed copy of the payments service, MLflow on SQLite in tmp."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.conftest import CODESENSE_BIN, PAYMENTS, write_config  # noqa: E402

TINY_EXAMPLES = [
    ("Where are JWT tokens verified?", "In `verify_token` [1]."),
    ("How is a refund issued?", "By `issue_refund` [1]."),
    ("Where are the settings loaded?", "In `load_settings` [1]."),
    ("What signs outgoing requests?", "The `sign_request` helper [1]."),
]


def chat_row(question: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "Answer from the context; cite blocks as [n]."},
                         {"role": "user", "content": f"Context:\n[1] payments:app/auth/jwt.py:L1-L9\n\nQuestion: {question}"},
                         {"role": "assistant", "content": answer}]}


def write_dataset(directory: Path, rows: list[dict] | None = None, validation: bool = True) -> Path:
    """A tiny chat-messages dataset (train.jsonl, validation.jsonl) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else [chat_row(q, a) for q, a in TINY_EXAMPLES]
    (directory / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if validation:
        (directory / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    return directory


def tiny_llama(root: Path) -> Path:
    """A randomly initialised 2-layer Llama with a word-level tokenizer in `root/tiny-base`: a real transformers
    model whose training steps and generations take milliseconds."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "[1]", "token", "verified", "in", "jwt", "scopes", "the"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    base = root / "tiny-base"
    LlamaForCausalLM(cfg).save_pretrained(base)
    fast.save_pretrained(base)
    return base


@pytest.fixture(scope="session")
def gemma_models_dir(tmp_path_factory) -> Path:
    """A `models/` directory holding the packaged Gemma 3 270M converted to transformers format (done once: slow).

    `CODESENSE_TEST_MODELS_DIR` points at an already converted `models/` directory to skip the conversion."""
    preset = os.environ.get("CODESENSE_TEST_MODELS_DIR")
    if preset and (Path(preset) / "gemma3-270m" / "config.json").is_file():
        return Path(preset)
    from codesense_ray.answering.generators.local import packaged_gemma_dir

    home = tmp_path_factory.mktemp("gemma-home")
    packaged_gemma_dir(home)
    return home / "models"


def link_models(home: Path, models_dir: Path) -> None:
    """Make `home/models/gemma3-270m` the session's converted model (no second conversion)."""
    (home / "models").mkdir(parents=True, exist_ok=True)
    link = home / "models" / "gemma3-270m"
    if not link.exists():
        link.symlink_to(models_dir / "gemma3-270m", target_is_directory=True)


@pytest.fixture
def mlflow_home(tmp_path, monkeypatch) -> Path:
    """A `$CODESENSE_HOME` in tmp whose MLflow store is `sqlite:///<home>/mlflow.db`."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    home = tmp_path / ".codesense"
    home.mkdir()
    monkeypatch.setenv("CODESENSE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture(scope="session")
def indexed_project(tmp_path_factory) -> Path:
    """One indexed copy of the payments service for the session, built by `codesense index` in a subprocess."""
    root = tmp_path_factory.mktemp("trainproject")
    shutil.copytree(PAYMENTS, root / "payments")
    write_config(root, [{"id": "payments", "path": "payments", "web_url": "https://gitlab.example.com/team/payments", "ref": "main"}],
                 index={"in_process_max_files": 1000})  # stages in-process: the Ray Data path is tested in test_indexing
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["CODESENSE_HOME"] = str(root / ".codesense")
    res = subprocess.run([CODESENSE_BIN, "index", "--config", str(root / "codesense.yaml"), "--no-progress", "--json"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    return root
