import subprocess
import sys

from bicimad.cli import build_parser


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "bicimad", "--help"], capture_output=True, text=True, check=True)
    assert "usage: bicimad" in out.stdout


def test_no_command_prints_help_and_fails(capsys):
    from bicimad.cli import main

    assert main([]) == 2
    assert "usage: bicimad" in capsys.readouterr().out


def test_parser_builds():
    assert build_parser().prog == "bicimad"
