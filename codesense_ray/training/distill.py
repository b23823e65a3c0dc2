"""Teacher distillation: questions → our retriever's context → the teacher's answer with the production prompt
→ kept only when every citation verifies and the answer is grounded in the context.

Distillation is the senior engineer writing the runbook that the junior follows: the big model (teacher)
answers once, offline, and the small one (student) is trained to answer the same way.

Resumable like an idempotent migration: every answered question is appended to a ledger
(`<dataset>/.ledger.jsonl`) the moment the teacher replies, so an interrupted run continues where it stopped
and never pays the teacher twice for a question. Rate limits (429), 5xx and connection errors are retried
with exponential backoff up to `teacher.max_attempts`, then counted and skipped (and retried by the next run).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from codesense_ray.errors import CodesenseError, InvalidConfig, TeacherUnavailable  # noqa: F401
from codesense_ray.training.data import write_jsonl
from codesense_ray.config.training import DistillConfig, TeacherConfig

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}
LEDGER = ".ledger.jsonl"
CARD = "card.json"

QUESTION_PROMPT = (
    "You write questions a developer new to this codebase would ask. Read the file below and write ONE specific "
    "question about it that the file answers (how something works, where something is done). Reply with the question only.\n\n"
    "File {path}:\n```\n{code}\n```"
)




@dataclass(frozen=True)
class SeedQuestion:
    """A question to distil, scoped to one repository; `id` is stable across runs (the resume key)."""

    repo: str
    question: str
    origin: str  # "definition:<path>:<symbol>" or "file:<path>"

    @property
    def id(self) -> str:
        return hashlib.sha1(f"{self.repo}\n{self.question}".encode()).hexdigest()[:16]


# --- questions -------------------------------------------------------------------------------------------
def definition_questions(chunks: Iterable[dict[str, Any]]) -> Iterator[SeedQuestion]:
    """One question per named definition, from its name and first docstring/comment line (no LLM needed)."""
    from codesense_ray.answering.answerer import first_doc_line

    seen: set[tuple[str, str]] = set()
    for c in chunks:
        symbol = c.get("symbol")
        if not symbol or c.get("kind") in ("module", "file", "text") or (c["repo_id"], symbol) in seen:
            continue
        seen.add((c["repo_id"], symbol))
        name = symbol.rsplit(".", 1)[-1]
        doc = first_doc_line(c.get("text") or "")
        if doc and not doc.startswith(("def ", "class ", "func ", "function ", "public ", "private ")) and len(doc.split()) >= 3:
            question = f"Which code is responsible for this: {doc.rstrip('.')}? How does it work?"
        else:
            question = f"What does `{name}` in {c['path']} do, and how is it used?"
        yield SeedQuestion(c["repo_id"], question, f"definition:{c['path']}:{symbol}")


def indexed_chunks(retriever: Any) -> Iterator[dict[str, Any]]:
    """Every chunk payload of the live index, in a stable order (repo, path, start line)."""
    from qdrant_client import models

    from codesense_ray.store.qdrant import META_KEY

    flt = models.Filter(must_not=[models.FieldCondition(key=META_KEY, match=models.MatchValue(value=True))])
    fields = ["repo_id", "path", "start_line", "end_line", "symbol", "kind", "text"]
    rows = [p.payload for p in retriever.store.scroll(retriever.live(), flt, payload=fields)]
    yield from sorted(rows, key=lambda r: (r["repo_id"], r["path"], r["start_line"]))


def teacher_questions(chunks: Iterable[dict[str, Any]], ask: Callable[[list[dict]], str], limit: int) -> Iterator[SeedQuestion]:
    """One teacher-written question per indexed file (its first chunk shown), at most `limit`."""
    seen: set[tuple[str, str]] = set()
    for c in chunks:
        key = (c["repo_id"], c["path"])
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > limit:
            return
        text = ask([{"role": "user", "content": QUESTION_PROMPT.format(path=c["path"], code=(c.get("text") or "")[:4000])}]).strip()
        question = text.splitlines()[0].strip().strip('"') if text else ""
        if question:
            yield SeedQuestion(c["repo_id"], question, f"file:{c['path']}")


# --- checks ----------------------------------------------------------------------------------------------
_IDENT = re.compile(r"`([^`\n]{2,80})`")


def grounding_score(answer: str, context: str) -> float:
    """Share of code identifiers the answer names (in backticks) that occur in the context; 1.0 if it names none.

    A cheap hallucination check: an answer that talks about functions the context never showed is not grounded.
    """
    names = {m.strip() for m in _IDENT.findall(answer) if m.strip()}
    if not names:
        return 1.0
    found = sum(1 for n in names if n in context or n.split("(")[0].rsplit(".", 1)[-1] in context)
    return found / len(names)


def split_of(question_id: str, validation_fraction: float) -> str:
    """`validation` for a stable share of questions (by hash), else `train` — the same question always lands
    in the same split, so re-runs never leak validation questions into training."""
    bucket = int(question_id[:8], 16) / 0xFFFFFFFF
    return "validation" if bucket < validation_fraction else "train"


# --- teacher calls ---------------------------------------------------------------------------------------
def call_with_retries(call: Callable[[], Any], tcfg: TeacherConfig, sleep: Callable[[float], None] = time.sleep) -> tuple[Any, int, str | None]:
    """(result or None, attempts made, failure reason). Retries 429/5xx/connection errors with exponential backoff;
    fatal statuses (401/403/404) raise `TeacherUnavailable`; other errors fail this question only."""
    from codesense_ray.answering.generators.base import GeneratorError

    delay = tcfg.backoff_s
    for attempt in range(1, tcfg.max_attempts + 1):
        try:
            return call(), attempt, None
        except GeneratorError as err:
            if err.status in FATAL_STATUS:
                raise TeacherUnavailable(f"teacher {err.backend} refused the request: {err.reason}") from None
            retryable = err.status is None or err.status in RETRYABLE_STATUS
            reason = f"HTTP {err.status}" if err.status else "unreachable"
            if not retryable:
                return None, attempt, f"teacher_error:{reason}"
            if attempt == tcfg.max_attempts:
                return None, attempt, "rate_limited" if err.status == 429 else f"teacher_error:{reason}"
            sleep(min(delay, tcfg.backoff_max_s))
            delay *= 2
    return None, tcfg.max_attempts, "teacher_error"


def build_teacher(tcfg: TeacherConfig):
    """The teacher as a generator (no SDK retries: backoff is ours, so every attempt is counted)."""
    from codesense_ray.answering.generators.base import build_generator
    from codesense_ray.config.answering import GeneratorConfig

    if tcfg.backend == "none":
        raise InvalidConfig("training.teacher.backend: `none` — distillation needs a teacher (`gemini` or `openai`)")
    gcfg = GeneratorConfig(backend=tcfg.backend, model=tcfg.model, base_url=tcfg.base_url, api_key_env=tcfg.api_key_env,
                           timeout_s=tcfg.timeout_s, max_retries=0, max_tokens=tcfg.max_tokens, temperature=tcfg.temperature)
    try:
        return build_generator(gcfg, Path("."))
    except InvalidConfig as err:
        raise InvalidConfig(str(err).replace("generator.", "training.teacher.")) from None


# --- the run ---------------------------------------------------------------------------------------------
def _read_ledger(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption: that question is simply asked again
            done[rec["id"]] = rec
    return done


def distil(
    questions: list[SeedQuestion],
    *,
    answerer: Any,
    teacher: Any,
    tcfg: TeacherConfig,
    dcfg: DistillConfig,
    out_dir: Path,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Answer `questions` with the teacher (skipping those in the ledger), verify, write the splits and the card."""
    from codesense_ray.answering.citations import format_context, verify_citations

    out_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = out_dir / LEDGER
    done = _read_ledger(ledger_path)
    prompt = answerer.prompts.get()
    rejected: Counter[str] = Counter()
    calls = kept_now = reused = 0
    with ledger_path.open("a", encoding="utf-8") as ledger:
        for i, q in enumerate(questions, start=1):
            if q.id in done:
                reused += 1
            else:
                _, blocks = answerer.retrieve(q.question, dcfg.k, [q.repo])
                if not blocks:
                    rejected["no_context"] += 1
                    continue
                context = format_context(blocks)
                messages = prompt.render(q.question, context)
                gen, attempts, failure = call_with_retries(lambda: teacher.generate(messages), tcfg, sleep)
                calls += attempts
                if gen is None:
                    rejected[failure or "teacher_error"] += 1
                    continue  # not in the ledger: the next run asks again
                report = verify_citations(gen.text, blocks, answerer.file_line_count)
                reason = None
                if report.invalid:
                    reason = "invalid_citation"
                elif not report.valid:
                    reason = "no_citation"
                elif grounding_score(gen.text, context) < dcfg.min_grounding:
                    reason = "ungrounded"
                rec = {"id": q.id, "repo": q.repo, "question": q.question, "origin": q.origin, "status": "rejected" if reason else "kept",
                       "reason": reason, "model": gen.model, "messages": messages + [{"role": "assistant", "content": gen.text}],
                       "cited": [{"path": b.path, "start_line": b.start_line, "end_line": b.end_line} for b in report.sources]}
                ledger.write(json.dumps(rec, ensure_ascii=False) + "\n")
                ledger.flush()
                done[q.id] = rec
                if reason:
                    rejected[reason] += 1
                else:
                    kept_now += 1
            if on_progress:
                on_progress(i, len(questions))
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": []}
    for rec in done.values():
        if rec["status"] == "kept":
            splits[split_of(rec["id"], dcfg.validation_fraction)].append(
                {"messages": rec["messages"], "id": rec["id"], "repo": rec["repo"], "question": rec["question"], "gold": rec["cited"]}
            )
    for name, rows in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", sorted(rows, key=lambda r: r["id"]))
    card = {
        "name": out_dir.name,
        "path": str(out_dir),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "teacher": {"backend": tcfg.backend, "model": getattr(teacher, "model", tcfg.model)},
        "prompt": {"name": prompt.name, "version": prompt.version, "source": prompt.source},
        "format": "chat messages (system, user with numbered context, assistant answer citing [n])",
        "counts": {"questions": len(questions), "train": len(splits["train"]), "validation": len(splits["validation"]),
                   "kept_this_run": kept_now, "reused": reused, "teacher_calls": calls,
                   "rejected_total": sum(1 for r in done.values() if r["status"] == "rejected")},
        "rejected": dict(rejected),
    }
    (out_dir / CARD).write_text(json.dumps(card, indent=2))
    return card


def run_distillation(cfg, *, limit: int | None = None, name: str | None = None, dvc: bool = True, mlflow_log: bool = True,
                     on_progress: Callable[[int, int], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """`codesense distill`: build the teacher, the questions and the answerer from config, distil, version the result."""
    from codesense_ray.app.compose import build_answerer
    from codesense_ray.answering.tracing import NoopTracer
    from codesense_ray.config.training import training_config

    t = training_config(cfg)
    dcfg, tcfg = t.distill, t.teacher
    teacher = build_teacher(tcfg)  # configuration errors before the index or models load
    answerer = build_answerer(cfg, generator=teacher, tracer=NoopTracer())
    try:
        questions = _questions(answerer, teacher, tcfg, dcfg, limit or dcfg.max_questions, sleep)
        out_dir = cfg.resolve_path(dcfg.output_dir) / (name or dcfg.name)
        card = distil(questions, answerer=answerer, teacher=teacher, tcfg=tcfg, dcfg=dcfg, out_dir=out_dir, sleep=sleep, on_progress=on_progress)
    finally:
        # Embedded Qdrant admits one client per process at a time: release it even when interrupted.
        answerer.retriever.store.client.close()
    card["dvc"] = _dvc_add(cfg, out_dir) if dvc and dcfg.dvc_add else "skipped"
    card["mlflow_run_id"] = _log_dataset(cfg, out_dir, card) if mlflow_log else None
    (out_dir / CARD).write_text(json.dumps(card, indent=2))
    return card


def _questions(answerer: Any, teacher: Any, tcfg: TeacherConfig, dcfg: DistillConfig, budget: int, sleep: Callable[[float], None]) -> list[SeedQuestion]:
    chunks = indexed_chunks(answerer.retriever)
    if dcfg.questions == "teacher":
        def ask(messages: list[dict]) -> str:
            gen, _, _failure = call_with_retries(lambda: teacher.generate(messages, max_tokens=128), tcfg, sleep)
            return gen.text if gen else ""

        return list(teacher_questions(chunks, ask, budget))
    return list(definition_questions(chunks))[:budget]


def _dvc_add(cfg, out_dir: Path) -> str:
    """`dvc add` the dataset directory when the project is a DVC repository (else say why not)."""
    from codesense_ray.orchestration.data_versioning import DvcError, DvcProject

    root = Path(cfg.base_dir)
    if not (root / ".dvc").is_dir():
        return "skipped: not a DVC project (run `codesense converge` or `dvc init`)"
    try:
        DvcProject(root).add(str(out_dir.relative_to(root)))
    except (DvcError, ValueError) as err:
        return f"failed: {err}"
    return "added"


def _log_dataset(cfg, out_dir: Path, card: dict[str, Any]) -> str:
    """One MLflow run holding the card and both splits as a dataset input (`mlflow.log_input`)."""
    import mlflow
    import pandas as pd

    from codesense_ray.training.registry import StudentRegistry

    registry = StudentRegistry.from_config(cfg)
    from codesense_ray.training.registry import ensure_experiment

    exp_id = ensure_experiment(registry.client, registry.tracking_uri, registry.experiment)
    mlflow.set_tracking_uri(registry.tracking_uri)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"distill-{out_dir.name}", tags={"codesense.stage": "distill"}) as run:
        for split in ("train", "validation"):
            path = out_dir / f"{split}.jsonl"
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            df = pd.DataFrame({"id": [r["id"] for r in rows], "repo": [r["repo"] for r in rows],
                               "question": [r["messages"][-2]["content"][-500:] for r in rows],
                               "answer": [r["messages"][-1]["content"] for r in rows]})
            mlflow.log_input(mlflow.data.from_pandas(df, source=str(path), name=f"{out_dir.name}-{split}"), context=split)
        mlflow.log_params({"teacher": f"{card['teacher']['backend']}:{card['teacher']['model']}", "prompt_version": card["prompt"]["version"]})
        mlflow.log_metrics({f"count_{k}": float(v) for k, v in card["counts"].items()})
        mlflow.log_dict(card, "card.json")
        return run.info.run_id
