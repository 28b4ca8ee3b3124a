import subprocess
import sys

import pytest

from bicimad.cli import build_parser, main

COMMANDS = ("ingest", "data", "demand", "sim", "rl", "train-agent", "compare", "nightly", "whatif", "report")


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "bicimad", "--help"], capture_output=True, text=True, check=True)
    assert "usage: bicimad" in out.stdout
    for command in COMMANDS:
        assert f"    {command} " in out.stdout, command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: bicimad {command}" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: bicimad" in capsys.readouterr().out
