"""Evaluation datasets (contract): JSONL, one question a line, with the files (and optionally lines) that answer it.

    {"id": "q1", "question": "How are JWTs verified?", "repo": "payments",
     "gold": [{"path": "app/auth/jwt.py", "start_line": 78, "end_line": 110}], "answer": "optional reference"}

`repo` may be omitted when the question is not tied to one repository (retrieval then searches them all and a
gold path matches in any repository). Extra keys (`tags`, `source`, ...) are kept and copied into the
per-question results, so runs can be sliced by them. Blank lines are skipped.

Every problem is reported with its line number (`dataset.jsonl:7: gold[0].start_line: ...`) as
`InvalidDataset`, exit code 2 on the command line.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from codesense_ray.errors import InvalidDataset




def normalize_path(path: str) -> str:
    """One spelling per repository-relative path: `/`-separated, no `./`, no leading `/`, `..` resolved."""
    p = path.strip().replace("\\", "/")
    p = posixpath.normpath(p) if p else p
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/") if p not in (".", "") else ""


@dataclass(frozen=True)
class GoldSpan:
    """A file that answers the question, optionally narrowed to a line range (1-based, inclusive)."""

    path: str
    start_line: int | None = None
    end_line: int | None = None

    @property
    def has_lines(self) -> bool:
        return self.start_line is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path}
        if self.start_line is not None:
            d["start_line"] = self.start_line
            d["end_line"] = self.end_line
        return d


@dataclass(frozen=True)
class EvalQuestion:
    """One dataset line. `line` is where it was read (for messages); `extra` holds keys beyond the contract."""

    id: str
    question: str
    repo: str | None
    gold: tuple[GoldSpan, ...]
    answer: str | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def gold_files(self) -> list[str]:
        """Distinct gold paths in dataset order."""
        return list(dict.fromkeys(g.path for g in self.gold))

    @property
    def line_spans(self) -> list[GoldSpan]:
        """Gold spans with line ranges (those `chunk_hit@k` checks)."""
        return [g for g in self.gold if g.has_lines]


@dataclass(frozen=True)
class EvalDataset:
    path: Path
    sha256: str
    questions: tuple[EvalQuestion, ...]

    @property
    def name(self) -> str:
        return self.path.stem

    def __len__(self) -> int:
        return len(self.questions)


class _GoldLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: StrictStr = Field(min_length=1)
    start_line: StrictInt | None = Field(None, ge=1)
    end_line: StrictInt | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _range(self) -> "_GoldLine":
        if self.end_line is not None and self.start_line is None:
            raise ValueError("`end_line` without `start_line`")
        if self.start_line is not None and self.end_line is not None and self.end_line < self.start_line:
            raise ValueError(f"`end_line` {self.end_line} is before `start_line` {self.start_line}")
        return self


class _QuestionLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StrictStr | StrictInt
    question: StrictStr
    repo: StrictStr | None = None
    gold: list[_GoldLine] = Field(min_length=1)
    answer: StrictStr | None = None

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty question")
        return v.strip()

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | int) -> str:
        v = str(v).strip()
        if not v:
            raise ValueError("empty id")
        return v


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in first["loc"]).lstrip(".")
    kind = first["type"]
    if kind == "missing":
        return f"missing `{loc}`"
    if kind == "extra_forbidden":
        return f"unknown key `{loc}` (gold entries take path, start_line, end_line)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"`{loc}`: {msg}" if loc else msg


def parse_question(text: str, line: int) -> EvalQuestion:
    """One JSONL line → `EvalQuestion`. Raises `ValueError` with the problem (without the line number)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON at column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        q = _QuestionLine.model_validate(data)
    except ValidationError as err:
        raise ValueError(_describe(err)) from None
    gold = []
    for i, g in enumerate(q.gold):
        path = normalize_path(g.path)
        if not path:
            raise ValueError(f"`gold[{i}].path` is not a file path: {g.path!r}")
        end = g.end_line if g.end_line is not None else g.start_line
        gold.append(GoldSpan(path, g.start_line, end))
    return EvalQuestion(
        id=str(q.id),
        question=q.question,
        repo=q.repo or None,
        gold=tuple(gold),
        answer=q.answer if q.answer and q.answer.strip() else None,
        line=line,
        extra=dict(q.model_extra or {}),
    )


def load_dataset(path: str | Path) -> EvalDataset:
    """Read and validate a dataset file. Raises `InvalidDataset` naming the file, the line and the problem."""
    p = Path(path)
    if not p.is_file():
        raise InvalidDataset(f"dataset not found: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InvalidDataset(f"{p}:{line}: not UTF-8 text") from None
    questions: list[EvalQuestion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            q = parse_question(line, number)
        except ValueError as err:
            raise InvalidDataset(f"{p}:{number}: {err}") from None
        if q.id in seen:
            raise InvalidDataset(f"{p}:{number}: duplicate id {q.id!r} (first on line {seen[q.id]})")
        seen[q.id] = number
        questions.append(q)
    if not questions:
        raise InvalidDataset(f"{p}: no questions (the file is empty or has only blank lines); expected one JSON object a line")
    return EvalDataset(path=p.resolve(), sha256=hashlib.sha256(raw).hexdigest(), questions=tuple(questions))
