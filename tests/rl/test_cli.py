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


def test_bad_values_exit_2_with_a_clear_message(tmp_path, capsys):
    base = ["rl", "train", "--env", "probe/contextual", "--out", str(tmp_path / "run")]
    cases = [(["--num-envs", "0"], "--num-envs must be at least 1"),
             (["--set", "num_steps=0"], "num_steps must be at least 1"),
             (["--set", "learning_rate=abc"], "learning_rate must be a finite number, got 'abc'"),
             (["--total-steps", "-5"], "--total-steps must be at least 1"),
             (["--stop-after", "-1"], "--stop-after must be at least 1"),
             (["--seed", "-1"], "seed must be at least 0")]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert main(["rl", "eval", str(tmp_path), "--episodes", "0"]) == 2
    assert "--episodes must be at least 1" in capsys.readouterr().err


def test_jobs_are_functions_returning_results(tmp_path):
    from bicimad.jobs.rl import evaluate, train

    result = train("probe/contextual", algo="a2c", out=tmp_path, total_steps=4000, seed=2, stop_after=1000,
                   progress=False)
    assert not result.finished and 1000 <= result.global_step < 4000
    result = train("probe/contextual", algo="a2c", out=tmp_path, resume=True, progress=False)
    assert result.finished and result.global_step == result.config.num_iterations * result.config.batch_size
    assert evaluate(tmp_path, episodes=20, deterministic=True).mean == 1.0


def test_cli_defaults_are_the_env_presets(tmp_path):
    import dataclasses

    from bicimad.cli import build_parser
    from bicimad.rl.checkpoints import load
    from bicimad.rl.presets import PRESETS, preset
    from bicimad.rl.runs import make_config

    args = build_parser().parse_args(["rl", "train", "--env", "CartPole-v1", "--out", str(tmp_path)])
    assert args.algo == "ppo" and args.total_steps is None and args.num_envs is None and args.set == []
    # The CLI's run of CartPole holds the preset's values (one iteration is enough to write them).
    assert main(["rl", "train", "--env", "CartPole-v1", "--out", str(tmp_path / "cp"), "--stop-after", "1"]) == 0
    saved = load(tmp_path / "cp" / "checkpoint.pt")["config"]
    assert PRESETS["ppo"]["CartPole-v1"]["total_steps"] == 100_000
    for field, value in PRESETS["ppo"]["CartPole-v1"].items():
        assert saved[field] == value, field
    # Atari and retro ids get their family's preset; other envs the algorithm's own defaults.
    for algo in PRESETS:
        for env_id, family in (("ALE/Breakout-v5", "atari"), ("retro/Airstriker-Genesis", "retro")):
            config = dataclasses.asdict(make_config(algo, env_id))
            assert PRESETS[algo][family] and all(config[k] == v for k, v in PRESETS[algo][family].items())
    assert preset("ppo", "Acrobot-v1") == {}
