"""Build the issue-style dev set: long bug reports whose gold is the file a fix would touch.

Built from the same library copies as the docstring set (run `build_docstring_set.py` first). Each report
starts from a `raise SomeError("message")` (or an f-string message) inside a library function and reads
like a GitHub issue: what the user was doing, a snippet calling the public API, the error, expected vs
actual, environment. The gold is the raising function's file and lines in the rewritten copy.

Three shapes, chosen per report with a seeded RNG:

* `full` — a traceback whose last frame is the raising function (the gold file is named in it);
* `callers_only` — the traceback stops before the gold file (as when a log collector cuts the innermost
  frames): the user's frames, plus a public caller in *another* file when there is one; only the message
  and identifiers hint at the gold file;
* `no_traceback` — just the API used and the error line.

Tracebacks quote the *installed* (original) line numbers and source lines, like a real report would, not
the lines of the rewritten copy. Messages are rendered from the literal; f-string fields get neutral
placeholder values. Messages raised from more than one function are skipped (ambiguous gold).

    python benchmarks/devsets/build_issue_set.py --out .codesense/devsets
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib
import inspect
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DEFAULT_SEED,
    EVAL_DIR,
    ROOT,
    Corpus,
    Func,
    iter_functions,
    library_sources,
    library_version,
    new_line,
    rel_to_root,
    write_json,
    write_jsonl,
)

DEFAULT_PER_LIBRARY = 16
SHAPES = ("full", "callers_only", "no_traceback")
SITE = "/usr/lib/python3.11/site-packages"
_SKIP_EXCEPTIONS = {"NotImplementedError", "AssertionError", "StopIteration", "StopAsyncIteration", "KeyboardInterrupt", "SystemExit", "GeneratorExit"}
_PLACEHOLDERS = ("foo", "bar", "example", "demo", "spam", "data")
_GENERIC_NAMES = {"get", "set", "run", "call", "open", "close", "read", "write", "update", "copy", "pop", "add", "items", "keys", "values", "join", "split", "format", "send", "load", "dump", "wrap", "parse", "process", "render", "validate", "check", "handle", "convert"}


# --- finding raises -------------------------------------------------------------------------------
def _exc_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _resolve_exception(module: str, dotted: str) -> str | None:
    """How Python prints the exception's type in a traceback (`ValueError`, `click.exceptions.UsageError`)."""
    if hasattr(builtins, dotted) and "." not in dotted:
        cls = getattr(builtins, dotted)
    else:
        try:
            obj = importlib.import_module(module)
            for part in dotted.split("."):
                obj = getattr(obj, part)
        except Exception:  # noqa: BLE001 - unresolvable names are simply not used
            return None
        cls = obj
    if not (inspect.isclass(cls) and issubclass(cls, BaseException)) or cls.__name__ in _SKIP_EXCEPTIONS:
        return None
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _template(arg: ast.expr) -> str | None:
    """The message with f-string fields as `{}`; None when it is not a literal or f-string."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value.replace("{", "{{").replace("}", "}}")
    if isinstance(arg, ast.JoinedStr):
        out = []
        for v in arg.values:
            if isinstance(v, ast.Constant):
                out.append(str(v.value).replace("{", "{{").replace("}", "}}"))
            else:
                out.append("{!r}" if getattr(v, "conversion", -1) == ord("r") else "{}")
        return "".join(out)
    return None


def _render(template: str, rng: random.Random) -> str:
    values = []
    for m in re.finditer(r"(?<!\{)\{(!r)?\}(?!\})", template):
        word = rng.choice(_PLACEHOLDERS)
        values.append(repr(word) if m.group(1) else word)
    return template.replace("{!r}", "{}").format(*values)


def _calls(fn: ast.AST) -> dict[str, tuple[int, str]]:
    """Names this function calls → (line of the first call, how: "name" `f()`, "self" `self.f()`, "attr" `x.f()`)."""
    out: dict[str, tuple[int, str]] = {}
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name):
            name, how = node.func.id, "name"
        elif isinstance(node.func, ast.Attribute):
            base = node.func.value
            name, how = node.func.attr, "self" if isinstance(base, ast.Name) and base.id in ("self", "cls") else "attr"
        else:
            continue
        if name not in out:
            out[name] = (node.lineno, how)
    return out


def _is_public(fn: Func) -> bool:
    """No private component in the module path or the qualified name (`__init__`/`__call__` are public)."""
    parts = fn.path[: -len(".py")].split("/")[1:] + fn.qualname.split(".")
    return not any(p.startswith("_") and p not in ("__init__", "__call__") for p in parts)


def _distinctive(name: str) -> bool:
    """A method name unlikely to be shared with unrelated objects (`get_source` yes, `wrap` no)."""
    core = name.lstrip("_")
    return "_" in core and len(core) >= 8 and core not in _GENERIC_NAMES


def callers_of(fn: Func, calls: dict[str, list[tuple[Func, int, str]]]) -> list[tuple[Func, int]]:
    """Public functions that (by name, statically) call `fn`, sorted; unrelated same-named calls filtered out."""
    out: dict[tuple[str, str], tuple[Func, int]] = {}
    for c, line, how in calls.get(fn.name, []):
        if c is fn or not _is_public(c) or fn.name in _GENERIC_NAMES:
            continue
        if fn.class_name is None:
            ok = how == "name" or (how == "attr" and _distinctive(fn.name))
        else:
            ok = (how == "self" and c.class_name == fn.class_name and c.path == fn.path) or (how != "name" and _distinctive(fn.name))
        if ok:
            out.setdefault((c.path, c.qualname), (c, line))
    return sorted(out.values(), key=lambda cl: (cl[0].path, cl[0].start))


def _module_name(path: str) -> str:
    mod = path[: -len(".py")].replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


def find_raises(lib: str, files: dict[str, str], indexed: set[str]) -> tuple[list[dict], dict[str, list[tuple[Func, int, str]]]]:
    """Raise sites with a resolvable exception and a literal message, plus a callee name → callers index."""
    sites: list[dict] = []
    callers: dict[str, list[tuple[Func, int, str]]] = defaultdict(list)
    for path in sorted(files):
        if path not in indexed:
            continue
        try:
            tree = ast.parse(files[path])
        except SyntaxError:
            continue
        lines = files[path].split("\n")
        for fn in iter_functions(tree, path):
            for name, (line, how) in _calls(fn.node).items():
                callers[name].append((fn, line, how))
            if fn.name.startswith("__") and fn.name not in ("__init__", "__call__"):
                continue
            for node in ast.walk(fn.node):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                    continue
                dotted = _exc_name(node.exc.func)
                template = _template(node.exc.args[0])
                if dotted is None or template is None:
                    continue
                literal = re.sub(r"\{!?r?\}", " ", template)
                if len(literal.split()) < 4 or len(literal.strip()) < 15 or "\n" in template.strip():
                    continue
                exc = _resolve_exception(_module_name(path), dotted)
                if exc is None:
                    continue
                sites.append({"path": path, "func": fn, "line": node.lineno, "source": lines[node.lineno - 1].strip(), "exc": exc, "template": template})
    return sites, callers


# --- writing a report -----------------------------------------------------------------------------
def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    if args and args[0] in ("self", "cls"):
        args = args[1:]
    required = len(args) - len(fn.args.defaults)
    shown = args[: max(required, 0)][:3]
    shown += [f"{a.arg}=..." for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is None][:2]
    return shown


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower().strip("_") or "obj"


def _public_module(module: str, name: str) -> str:
    """The shortest enclosing package that exports `name` (`werkzeug.datastructures`, not its submodule)."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        try:
            if getattr(importlib.import_module(candidate), name, None) is not None:
                return candidate
        except Exception:  # noqa: BLE001
            continue
    return module


def _decorators(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    out = []
    for d in fn.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        out.append(ast.unparse(d))
    return out


def snippet(lib: str, fn: Func, rng: random.Random) -> tuple[list[str], list[tuple[int, str, str]]]:
    """A user script calling `fn` through the public API, and its own traceback frames (line, function, source)."""
    module = _module_name(fn.path)
    wrapped = rng.random() < 0.5
    imports = ["import logging", f"import {lib}"] if wrapped and rng.random() < 0.5 else [f"import {lib}"]
    args = ", ".join(_params(fn.node))
    if fn.class_name:
        cls = fn.qualname.rsplit(".", 1)[0]
        top = cls.split(".")[0]
        home = _public_module(module, top)
        if home == lib:
            ref = f"{lib}.{cls}"
        else:
            imports.append(f"from {home} import {top}")
            ref = cls
        var = _snake(fn.class_name)
        decorators = _decorators(fn.node)
        if fn.name == "__init__":
            setup, call = [], f"{var} = {ref}({args})"
        else:
            setup = [f"{var} = {ref}(...)  # configured as in our app (omitted)"]
            if any(d.endswith(".setter") for d in decorators):
                call = f"{var}.{fn.name} = value"
            elif any(d.endswith("property") for d in decorators):
                call = f"result = {var}.{fn.name}"
            elif fn.name == "__call__":
                call = f"result = {var}({args})"
            else:
                call = f"result = {var}.{fn.name}({args})"
    else:
        home = _public_module(module, fn.name)
        if home == lib:
            ref = f"{lib}.{fn.name}"
        else:
            imports.append(f"from {home} import {fn.name}")
            ref = fn.name
        setup = []
        call = f"result = {ref}({args})"
    if not wrapped:
        lines = [*imports, "", *setup, call]
        return lines, [(lines.index(call) + 1, "<module>", call)]
    entry = rng.choice(["main", "run", "handle", "export_report"])
    note = '    logging.info("starting")' if "import logging" in imports else "    # the only call into the library"
    lines = [*imports, "", "", f"def {entry}():", *[f"    {x}" for x in setup], note, f"    {call}", "", "", 'if __name__ == "__main__":', f"    {entry}()"]
    return lines, [(len(lines), "<module>", f"{entry}()"), (lines.index(f"    {call}") + 1, entry, call)]


def _frame(path: str, line: int, func: str, source: str) -> list[str]:
    return [f'  File "{path}", line {line}, in {func}', f"    {source}"]


_TRIED = [
    "What I tried: pinning the previous minor release makes the error go away, so it looks like a regression, "
    "but I haven't bisected it yet. Passing the arguments as keywords instead of positionally changes nothing.",
    "I tried to work around it by catching the exception and retrying, which obviously is not a fix. I also "
    "checked that the input is what I think it is (printed it right before the call) and it looks fine to me.",
    "I searched the changelog and the open issues but found nothing matching this message. Happy to provide "
    "more details or test a patch if someone points me to the right place.",
    "Interestingly it only happens for some inputs; for most of our data the same call works. I have not "
    "managed to figure out what the failing inputs have in common.",
]
_FREEZE_NOISE = ["certifi==2024.2.2", "charset-normalizer==3.3.2", "idna==3.6", "MarkupSafe==2.1.5", "urllib3==2.2.1", "typing_extensions==4.10.0", "packaging==24.0"]


def report(
    lib: str,
    version: str,
    site: dict,
    entry: tuple[Func, int] | None,
    caller: tuple[Func, int] | None,
    shape: str,
    files: dict[str, str],
    rng: random.Random,
) -> str:
    """One bug report: the user's script calls `entry` (else the raising function); `caller` is a library frame shown between."""
    fn: Func = site["func"]
    message = _render(site["template"], rng)
    api = entry[0] if entry is not None else fn
    code, user_frames = snippet(lib, api, rng)
    script = rng.choice(["app.py", "main.py", "cli.py", "jobs/nightly.py", "scripts/export.py", "service/handlers.py"])
    exc_short = site["exc"].rsplit(".", 1)[-1]
    api_name = api.qualname
    error_line = f"{site['exc']}: {message}"

    tb = ["Traceback (most recent call last):"]
    for line, func, source in user_frames:
        tb += _frame(f"/home/dev/project/{script}", line, func, source)
    if caller is not None:
        cfn, cline = caller
        tb += _frame(f"{SITE}/{cfn.path}", cline, cfn.name, files[cfn.path].split("\n")[cline - 1].strip())
    if shape == "full":
        tb += _frame(f"{SITE}/{fn.path}", site["line"], fn.name, site["source"])
    tb.append(error_line)

    title = rng.choice(
        [
            f"{exc_short} from `{api_name}` after upgrading to {lib} {version}",
            f"`{api_name}` raises {exc_short}: \"{message}\"",
            f"Unexpected {exc_short} when calling {api_name}",
            f"{lib}: {message}",
        ]
    )
    context = rng.choice(
        [
            f"We use {lib} in a small internal service and started seeing this after a routine dependency bump. "
            f"I reduced it to the snippet below; it fails every time on our CI runners.",
            f"I'm calling `{api_name}` from a background job. It worked on our staging data, but in production "
            "one input makes it blow up. I couldn't find an existing issue about this.",
            f"Not sure whether this is a bug or I'm holding it wrong. The call below is the only {lib} call in "
            "the failing code path, the rest is plain Python.",
            "Reproduced on a fresh virtualenv with nothing else installed. The failure is deterministic, and it "
            "happens both on my laptop (macOS) and in our Linux containers.",
        ]
    )
    expected = rng.choice(
        [
            "I expected the call to succeed (or at least to fail with a message that says which argument is wrong).",
            "Expected: the same result as with the previous release, no exception.",
            f"I would expect `{api_name}` to handle this input, as the documentation suggests.",
        ]
    )
    parts = [f"**{title}**", context, "Steps to reproduce:", "```python\n" + "\n".join(code) + "\n```"]
    if shape == "no_traceback":
        parts.append(
            rng.choice(
                [
                    f"It fails with `{error_line}`. I don't have the full traceback, our job runner only keeps the last line.",
                    f"The process exits with:\n\n```\n{error_line}\n```",
                ]
            )
        )
    else:
        if shape == "callers_only":
            parts.append("The traceback (our log shipper truncates the innermost frames, sorry):")
        else:
            parts.append("Full traceback:")
        parts.append("```\n" + "\n".join(tb) + "\n```")
    parts.append(f"**Expected behaviour**\n{expected}")
    parts.append(f"**Actual behaviour**\n`{exc_short}` is raised: {message}")
    parts.append(rng.choice(_TRIED))
    env = f"**Environment**\n- Python 3.11.7 on Ubuntu 22.04\n- {lib}=={version}"
    if rng.random() < 0.4:
        noise = sorted(rng.sample(_FREEZE_NOISE, 3) + [f"{lib}=={version}"], key=str.lower)
        env += "\n\n<details><summary>pip freeze</summary>\n\n```\n" + "\n".join(noise) + "\n```\n</details>"
    parts.append(env)
    return "\n\n".join(parts)


def build(
    out: Path,
    *,
    per_library: int = DEFAULT_PER_LIBRARY,
    seed: int = DEFAULT_SEED,
    dataset: Path = EVAL_DIR / "issues.jsonl",
    meta: Path = EVAL_DIR / "issues.meta.json",
) -> dict:
    corpus = Corpus.load(out.resolve())
    rows: list[dict] = []
    counts: dict[str, dict] = {}
    for lib, entry in corpus.libraries.items():
        version = library_version(lib)
        if version != entry["version"]:
            raise SystemExit(f"{lib} {version} is installed but the corpus was built from {entry['version']}: rebuild the docstring set first")
        files = library_sources(lib)  # the original sources: tracebacks quote installed line numbers
        indexed = {p for p in files if (corpus.repo_dir(lib) / p).is_file()}
        sites, callers = find_raises(lib, files, indexed)
        by_template: dict[str, set[str]] = defaultdict(set)
        for s in sites:
            by_template[s["template"]].add(f"{s['path']}:{s['func'].qualname}")
        sites = [s for s in sites if len(by_template[s["template"]]) == 1]
        seen_funcs: set[tuple[str, str]] = set()
        unique = []
        for s in sites:  # one report per raising function, reachable from the public API
            key = (s["path"], s["func"].qualname)
            reachable = _is_public(s["func"]) or bool(callers_of(s["func"], callers))
            if key not in seen_funcs and reachable:
                seen_funcs.add(key)
                unique.append(s)
        rng = random.Random(f"{seed}/issues/{lib}")
        chosen = rng.sample(unique, min(per_library, len(unique)))
        chosen.sort(key=lambda s: (s["path"], s["line"]))
        shape_count: dict[str, int] = defaultdict(int)
        for i, site in enumerate(chosen):
            fn: Func = site["func"]
            public_callers = callers_of(fn, callers)
            other_file = [c for c in public_callers if c[0].path != fn.path]
            shape = SHAPES[(i + rng.randrange(3)) % 3]
            # The snippet calls the raising function itself when it is public API, else a public caller.
            entry = rng.choice(public_callers) if not _is_public(fn) and public_callers else None
            frame = entry
            if shape == "callers_only":
                # Only frames outside the gold file: the user's, plus a public caller in another file if any.
                if other_file:
                    entry = frame = rng.choice(other_file)
                elif frame is not None and frame[0].path == fn.path:
                    frame = None
            text = report(lib, version, site, entry, frame, shape, files, rng)
            gaps = corpus.removed(lib, fn.path)
            rows.append(
                {
                    "id": f"issue/{lib}/{fn.path}:{fn.qualname}",
                    "question": text,
                    "repo": lib,
                    "gold": [{"path": fn.path, "start_line": new_line(fn.start, gaps), "end_line": new_line(fn.end, gaps)}],
                    "answer": f"`{fn.qualname}` in {fn.path} raises this {site['exc'].rsplit('.', 1)[-1]}",
                    "shape": shape,
                }
            )
            shape_count[shape] += 1
        counts[lib] = {"version": version, "raise_sites": len(unique), "reports": len(chosen), **dict(sorted(shape_count.items()))}
    shapes = {r["id"]: r["shape"] for r in rows}
    write_jsonl(dataset, rows)
    summary = {
        "dataset": rel_to_root(dataset),
        "builder": "benchmarks/devsets/build_issue_set.py",
        "seed": seed,
        "per_library": per_library,
        "queries": len(rows),
        "libraries": counts,
        "shapes": shapes,
        "caveat": "gold line ranges refer to the rewritten library copies of build_docstring_set.py (same versions)",
    }
    write_json(meta, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / ".codesense" / "devsets", help="where build_docstring_set.py wrote the corpus")
    ap.add_argument("--per-library", type=int, default=DEFAULT_PER_LIBRARY)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--dataset", type=Path, default=EVAL_DIR / "issues.jsonl")
    ap.add_argument("--meta", type=Path, default=EVAL_DIR / "issues.meta.json", help="versions, counts and each report's shape")
    args = ap.parse_args(argv)
    summary = build(args.out, per_library=args.per_library, seed=args.seed, dataset=args.dataset, meta=args.meta)
    for lib, c in summary["libraries"].items():
        print(f"{lib} {c['version']}: {c['reports']} reports from {c['raise_sites']} raising functions " + ", ".join(f"{k}={v}" for k, v in c.items() if k in SHAPES))
    print(f"{summary['queries']} reports → {summary['dataset']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
