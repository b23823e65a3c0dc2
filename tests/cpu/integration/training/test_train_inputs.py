"""Bad input to `codesense train` fails before any worker starts: one line naming the file/key, exit 2."""

from __future__ import annotations

import json

import pytest

from codesense_ray.app.cli.main import main
from codesense_ray.training.data import InvalidTrainingData, load_examples
from tests.cpu.integration.training.conftest import chat_row, write_dataset
from tests.conftest import write_config


def _run(tmp_path, capsys, train: dict | None = None, *extra: str) -> tuple[int, str]:
    cfg = write_config(tmp_path, [], training={"train": train or {}})
    capsys.readouterr()
    rc = main(["train", "--config", str(cfg), *extra])
    return rc, capsys.readouterr().err.strip()


def test_missing_dataset(tmp_path, capsys, monkeypatch):
    """No distilled dataset yet: the error says where it looked and what to run."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    rc, err = _run(tmp_path, capsys)
    assert rc == 2 and err == f"codesense: error: {tmp_path / 'data' / 'training' / 'distilled'}: no train.jsonl (run `codesense distill` first, or set training.train.dataset)"


def test_bad_run_name(tmp_path, capsys, monkeypatch):
    """`--run-name` becomes a directory: a path separator is refused with one line naming the option."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    rc, err = _run(tmp_path, capsys, None, "--run-name", "../elsewhere")
    assert rc == 2 and err == "codesense: error: --run-name: '../elsewhere' is not a run name (letters, digits, '.', '_', '-')"


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("", "no examples (empty dataset)"),
        (json.dumps(chat_row("q", "a")) + "\n{not json\n", "train.jsonl:2: not JSON"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n", "train.jsonl:1: the last message must be a non-empty `assistant` answer"),
        (json.dumps({"messages": [{"role": "robot", "content": "q"}]}) + "\n", "train.jsonl:1: messages[0] needs `role`"),
        (json.dumps({"text": "plain"}) + "\n", "train.jsonl:1: expected an object with a non-empty `messages` list"),
    ],
)
def test_empty_or_malformed_dataset(tmp_path, capsys, monkeypatch, content, fragment):
    """Empty and malformed training files are rejected with file:line and the reason."""
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    d = tmp_path / "ds"
    d.mkdir()
    (d / "train.jsonl").write_text(content)
    rc, err = _run(tmp_path, capsys, None, "--dataset", str(d))
    assert rc == 2 and fragment in err and err.count("\n") == 0


def test_wrong_base_model_cuda_absent_and_qlora_on_cpu(tmp_path, capsys, monkeypatch):
    """An unknown base model, `device: cuda` without a GPU, and 4-bit on CPU each name their key."""
    import torch

    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / ".codesense"))
    write_dataset(tmp_path / "data" / "training" / "distilled")
    rc, err = _run(tmp_path, capsys, {"base_model": str(tmp_path / "no-such-model")})
    assert rc == 2 and err.startswith("codesense: error: training.train.base_model:") and "no-such-model" in err
    (tmp_path / "empty-model").mkdir()
    rc, err = _run(tmp_path, capsys, {"base_model": str(tmp_path / "empty-model")})
    assert rc == 2 and "is not a transformers model directory (no config.json)" in err
    if not torch.cuda.is_available():
        rc, err = _run(tmp_path, capsys, {"device": "cuda"})
        assert rc == 2 and "training.train.device: `cuda` requested but no CUDA GPU is visible" in err
        rc, err = _run(tmp_path, capsys, {"quantization": "4bit"})
        assert rc == 2 and "training.train.quantization: `4bit` (QLoRA) needs a CUDA GPU" in err


def test_unknown_training_key_and_bad_teacher(tmp_path, capsys):
    """A typo under training: and an `openai` teacher without an endpoint are config errors naming the key."""
    rc, err = _run(tmp_path, capsys, {"max_stepz": 3})
    assert rc == 2 and "unknown key `training.train.max_stepz`" in err
    cfg = write_config(tmp_path, [], training={"teacher": {"backend": "openai"}})
    assert main(["models", "list", "--config", str(cfg)]) == 2
    assert "training.teacher" in capsys.readouterr().err


def test_load_examples_accepts_valid_rows(tmp_path):
    """Valid chat rows load with their roles in order."""
    d = write_dataset(tmp_path / "ok")
    rows = load_examples(d / "train.jsonl")
    assert len(rows) == 4 and [m["role"] for m in rows[0]] == ["system", "user", "assistant"]
    with pytest.raises(InvalidTrainingData, match="not found"):
        load_examples(tmp_path / "missing.jsonl")
