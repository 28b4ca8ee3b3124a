"""``bicimad rl train|eval`` end to end on a probe env."""

from __future__ import annotations

import re

from bicimad.cli import main


def test_train_stop_resume_and_eval(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["rl", "train", "--env", "probe/contextual", "--algo", "a2c", "--total-steps", "4000", "--seed", "2",
            "--out", str(out)]
    assert main(args + ["--stop-after", "1000"]) == 0
    assert main(args) == 2                      # the folder holds a run: refuse to overwrite it
    assert "use --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert (out / "learning_curve.png").exists()
    capsys.readouterr()
    assert main(["rl", "eval", str(out), "--episodes", "30", "--deterministic"]) == 0
    printed = capsys.readouterr().out
    mean, std = map(float, re.search(r"mean (\S+) std (\S+)", printed).groups())
    assert mean == 1.0 and std == 0.0           # the contextual bandit's optimum


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["rl", "eval", str(tmp_path)]) == 2
    assert "no checkpoint.pt" in capsys.readouterr().err
    assert main(["rl", "train", "--env", "CartPole-v1", "--out", str(tmp_path / "a"), "--set", "clip=0.3"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert main(["rl", "train", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "b")]) == 2
    assert "NoSuchEnv" in capsys.readouterr().err
    assert main(["rl", "train", "--env", "retro/GradiusIII-Snes", "--out", str(tmp_path / "c")]) == 2
    assert "stable_retro.import" in capsys.readouterr().err
