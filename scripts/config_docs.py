"""Generate docs/configuration.md from the pydantic models (their `description=` is the documentation).

    .venv/bin/python scripts/config_docs.py            # rewrite docs/configuration.md
    .venv/bin/python scripts/config_docs.py --check    # exit 1 if the file is out of date (a unit test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args, get_origin

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesense_ray.config import Config  # noqa: E402

OUT = ROOT / "docs" / "configuration.md"

HEADER = """# Configuration reference (`codesense.yaml`)

Generated from the pydantic models in `codesense_ray/` by `scripts/config_docs.py` — edit the models'
`description=`, not this file. Unknown keys are errors (exit 2, naming the key path). Secrets are never values
here: keys ending in `_env` name the environment variable that holds the secret.

Like a Helm `values.yaml`, every key has a default that runs on one machine (embedded mode); production
overrides a handful of them (`qdrant.url`, `embedding.model`, `ray.address`, ...).
"""


def _type_name(annotation) -> str:
    origin = get_origin(annotation)
    if origin is None:
        return getattr(annotation, "__name__", str(annotation))
    args = ", ".join(_type_name(a) for a in get_args(annotation))
    return f"{getattr(origin, '__name__', str(origin))}[{args}]"


def _default(field) -> str:
    if field.default_factory is not None:
        factory = field.default_factory
        if not isinstance(factory, type) and getattr(factory, "__name__", "") != "<lambda>" and factory.__doc__:
            # An environment-dependent default (e.g. the installed Ray version): describe it, don't freeze it.
            return "computed: " + factory.__doc__.strip().splitlines()[0].rstrip(".")
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{value!r}`"
    return f"`{field.default!r}`"


def _section(name: str, model: type[BaseModel], lines: list[str]) -> None:
    lines += [f"## `{name}`" if name else "## top level", "", (model.__doc__ or "").strip().splitlines()[0], ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested = []
    for key, field in model.model_fields.items():
        if field.exclude:
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((f"{name}.{key}" if name else key, ann))
            continue
        desc = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | `{_type_name(ann)}` | {_default(field)} | {desc} |")
    lines.append("")
    for sub_name, sub in nested:
        _section(sub_name, sub, lines)


def render() -> str:
    lines = [HEADER]
    _section("", Config, lines)
    from codesense_ray.config import RepositoryConfig

    _section("repositories[]", RepositoryConfig, lines)
    from codesense_ray.config.interfaces import ChatProfile

    _section("chat.profiles.<model>", ChatProfile, lines)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print("docs/configuration.md is out of date: run scripts/config_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
