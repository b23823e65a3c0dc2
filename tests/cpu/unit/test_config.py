"""codesense.yaml validation: errors name the key path."""

from pathlib import Path

import pytest

from codesense_ray.config import Config, config_from_dict, load_config
from codesense_ray.errors import InvalidConfig

ROOT = Path(__file__).resolve().parents[3]


def test_default_config_file_is_valid():
    """The shipped codesense.yaml validates and indexes this project and the sample service."""
    cfg = load_config(ROOT / "codesense.yaml")
    assert {r.id for r in cfg.repositories} >= {"codesense", "payments"}
    assert cfg.embedding.model == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"index": {"retension": 2}}, "unknown key `index.retension`"),
        ({"index": {"retention": "many"}}, "`index.retention`"),
        ({"repositories": [{"url": "https://x/y", "path": "z"}]}, "`repositories.0`: give exactly one of `url` or `path`"),
        ({"repositories": [{"path": "z"}]}, "needs an `id`"),
        ({"bogus": 1}, "unknown key `bogus`"),
    ],
)
def test_invalid_config_names_the_key(data, fragment, tmp_path):
    """Unknown keys, wrong types and bad repository entries give one line naming the key path."""
    with pytest.raises(InvalidConfig) as err:
        config_from_dict(data, tmp_path, source="c.yaml")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_invalid_yaml_reports_line(tmp_path):
    """Broken YAML reports the file and the line number."""
    p = tmp_path / "codesense.yaml"
    p.write_text("index:\n  retention: [1\n")
    with pytest.raises(InvalidConfig, match=r"invalid YAML \(line \d+"):
        load_config(p)


def test_missing_config_file(tmp_path):
    """A missing config file is a clear error, not a traceback."""
    with pytest.raises(InvalidConfig, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_home_and_relative_paths(tmp_path, monkeypatch):
    """State lives in .codesense/ beside the config unless CODESENSE_HOME says otherwise."""
    monkeypatch.delenv("CODESENSE_HOME", raising=False)
    cfg = config_from_dict({}, tmp_path)
    assert cfg.home == tmp_path.resolve() / ".codesense"
    assert cfg.resolve_path("sub") == tmp_path.resolve() / "sub"
    monkeypatch.setenv("CODESENSE_HOME", str(tmp_path / "h"))
    assert cfg.home == (tmp_path / "h").resolve()
    assert isinstance(Config(), Config)


def test_every_config_key_is_documented():
    """Every field has a description, and docs/configuration.md matches the models (regenerate if not)."""
    import subprocess
    import sys

    from pydantic import BaseModel

    def walk(model):
        for key, field in model.model_fields.items():
            if field.exclude:
                continue
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                yield from walk(field.annotation)
            else:
                yield model.__name__, key, field.description

    missing = [f"{m}.{k}" for m, k, d in walk(Config) if not d]
    assert not missing
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_docs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
