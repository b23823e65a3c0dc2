"""Argument validation at the CLI edge (no index, no model)."""

import pytest

from codesense_ray.app.cli.main import build_parser, main


@pytest.mark.parametrize("argv", [["search", "x", "-k", "0"], ["ask", "q", "-k", "-3"], ["search", "x", "-k", "many"]])
def test_non_positive_k_is_rejected(argv, capsys):
    """-k must be a positive integer: argparse exits 2 with the reason instead of silently using a default."""
    with pytest.raises(SystemExit) as err:
        build_parser().parse_args(argv)
    assert err.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_every_contract_command_exists():
    """The CLI contract's commands are all registered."""
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"index", "search", "ask", "eval", "serve", "status", "converge", "pipeline", "prompts"} <= set(choices)


def test_no_command_prints_help_and_exits_2(capsys):
    """`codesense` alone prints the help and exits 2."""
    assert main([]) == 2
    assert "index" in capsys.readouterr().out


@pytest.mark.parametrize(
    "serve, ray, env, expected",
    [
        ({}, {}, None, True),  # a Ray `codesense serve` starts, one ingress: on
        ({}, {"address": "ray://head:10001"}, None, False),  # joining a cluster: the env of its pods decides
        ({}, {}, "ray://head:10001", False),
        ({"ingress_replicas": 2, "qdrant_url": True}, {}, None, False),  # several replicas need the proxy
        ({"direct_ingress": False}, {}, None, False),
        ({"direct_ingress": True}, {"address": "ray://head:10001"}, None, "needs the Ray"),
        ({"direct_ingress": True, "ingress_replicas": 2, "qdrant_url": True}, {}, None, "one ingress replica"),
    ],
)
def test_direct_ingress_only_where_codesense_owns_the_ray(serve, ray, env, expected, monkeypatch):
    """`serve.direct_ingress`: auto-on only for a local Ray and one ingress replica; asking for it where it
    cannot work is a one-line config error, never a silent fallback."""
    from codesense_ray.app.cli.serve import direct_ingress
    from codesense_ray.config import config_from_dict
    from codesense_ray.errors import CodesenseError

    serve = dict(serve)
    data = {"serve": serve, "ray": ray}
    if serve.pop("qdrant_url", False):
        data["qdrant"] = {"url": "http://qdrant:6333"}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    cfg = config_from_dict(data, __import__("pathlib").Path("."), source="test")
    if isinstance(expected, str):
        with pytest.raises(CodesenseError, match=expected):
            direct_ingress(cfg)
    else:
        assert direct_ingress(cfg) is expected
