"""Checkpoints are data only: a crafted file is refused and runs nothing; plain state round-trips."""

from __future__ import annotations

import pickle
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch

from bicimad.cli import main
from bicimad.rl import checkpoints
from bicimad.rl.runs import ALGORITHMS, load_checkpoint, make_config


class _TouchOnLoad:
    """Unpickling this calls ``Path.touch(marker)``: any code the loader runs would leave the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _train_small_run(out: Path) -> None:
    config = make_config("a2c", "probe/contextual", total_steps=256, seed=1)
    ALGORITHMS["a2c"][1](config, out, progress=False)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys, writer):
    out = tmp_path / "run"
    _train_small_run(out)
    marker = tmp_path / "pwned"
    state = load_checkpoint(out)
    state["extra"] = {"payload": _TouchOnLoad(marker)}   # a real checkpoint with one poisoned entry
    path = out / "checkpoint.pt"
    if writer == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    assert not marker.exists()

    with pytest.raises(checkpoints.CheckpointError, match="refused") as info:
        load_checkpoint(out)
    assert str(path) in str(info.value)
    assert main(["rl", "eval", str(out)]) == 2
    assert main(["rl", "train", "--env", "probe/contextual", "--algo", "a2c", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count(str(path)) == 2 and "refused" in err and "Traceback" not in err
    assert not marker.exists()                           # nothing ran


def test_truncated_or_foreign_file_is_refused_with_its_name(tmp_path):
    out = tmp_path / "run"
    _train_small_run(out)
    path = out / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(checkpoints.CheckpointError, match="refused"):
        checkpoints.load(path)
    torch.save({"weights": torch.zeros(2)}, path)        # loads safely but is not a run's checkpoint
    with pytest.raises(checkpoints.CheckpointError, match=r"missing .*agent"):
        checkpoints.load(path)


def test_plain_state_round_trips_through_the_safe_loader(tmp_path):
    class Holder:
        pass

    rng = np.random.default_rng(4)
    source = Holder()
    source.array = np.arange(6, dtype=np.uint32).reshape(2, 3) * 2**31
    source.scalar, source.number, source.none = np.float32(1.5), 3, None
    source.rng = rng
    source.queue = deque([np.ones(2), np.zeros(2)], maxlen=4)
    source.pair = (1, "a")
    source.skipped = object()                            # not plain: left out
    path = tmp_path / "state.pt"
    torch.save({"state": checkpoints.capture_state([source])}, path)
    captured = torch.load(path, weights_only=True)["state"]
    assert "skipped" not in captured[0]["attrs"]

    target = Holder()
    target.array, target.scalar, target.number, target.none = None, None, 0, 1
    target.rng, target.queue, target.pair = np.random.default_rng(99), None, None
    checkpoints.apply_state([target], captured, path)
    np.testing.assert_array_equal(target.array, source.array)
    assert target.array.dtype == np.uint32 and target.scalar.dtype == np.float32 and target.scalar == 1.5
    assert target.number == 3 and target.none is None and target.pair == (1, "a")
    assert target.queue.maxlen == 4 and len(target.queue) == 2
    assert target.rng.random() == np.random.default_rng(4).random()
    with pytest.raises(checkpoints.CheckpointError, match="envs are"):
        checkpoints.apply_state([object()], captured, path)
