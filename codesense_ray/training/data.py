"""Training data in chat-messages format: one JSON object a line, `{"messages": [{"role", "content"}, ...]}`,
the last message the assistant's answer the student learns to write (the format TRL, OpenAI and vLLM share).

Pure logic: reading, validating and writing the files. Errors name the file and line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codesense_ray.errors import CodesenseError, InvalidTrainingData  # noqa: F401

#: Beside every saved adapter: which base model (and GGUF file) it was trained on, so it can be loaded again.
ADAPTER_META = "codesense_adapter.json"

ROLES = ("system", "user", "assistant")




def validate_example(obj: Any, where: str) -> list[dict[str, str]]:
    """The messages of one line, or `InvalidTrainingData` naming what is wrong."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise InvalidTrainingData(f"{where}: expected an object with a non-empty `messages` list")
    messages = []
    for i, m in enumerate(obj["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InvalidTrainingData(f"{where}: messages[{i}] needs `role` ({'/'.join(ROLES)}) and string `content`")
        messages.append({"role": m["role"], "content": m["content"]})
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise InvalidTrainingData(f"{where}: the last message must be a non-empty `assistant` answer (what the student learns)")
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise InvalidTrainingData(f"{where}: no `user` message before the answer")
    return messages


def load_examples(path: str | Path) -> list[list[dict[str, str]]]:
    """Every example of a chat-messages JSONL file. Empty or malformed files raise `InvalidTrainingData`."""
    p = Path(path)
    if not p.is_file():
        raise InvalidTrainingData(f"training data not found: {p}")
    examples = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InvalidTrainingData(f"{p}:{n}: not JSON ({err.msg})") from None
        examples.append(validate_example(obj, f"{p}:{n}"))
    if not examples:
        raise InvalidTrainingData(f"{p}: no examples (empty dataset)")
    return examples


def dataset_files(directory: str | Path) -> tuple[Path, Path | None]:
    """`train.jsonl` (required) and `validation.jsonl` (optional) of a dataset directory."""
    d = Path(directory)
    train = d / "train.jsonl"
    if not train.is_file():
        raise InvalidTrainingData(f"{d}: no train.jsonl (run `codesense distill` first, or set training.train.dataset)")
    validation = d / "validation.jsonl"
    return train, (validation if validation.is_file() else None)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
