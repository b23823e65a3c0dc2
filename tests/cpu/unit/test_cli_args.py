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
