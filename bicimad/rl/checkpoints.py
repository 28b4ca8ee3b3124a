"""Checkpoint files that hold data only: loading one never runs code from it.

A checkpoint is read with ``torch.load(weights_only=True)``, whose unpickler builds tensors and
plain Python values (dict, list, tuple, str, int, float, bool, None) and refuses everything
else; nothing is ever unpickled with the general unpickler. Everything a run saves is turned
into those types first:

* RNG states: python's ``random.getstate()`` is already plain; numpy's legacy global state and
  every ``np.random.Generator`` are stored as their ``bit_generator.state`` dicts;
  torch's is a tensor;
* env state (:func:`capture_state` / :func:`apply_state`): the instance attributes of each object
  (the vector env, its action space, each sub-env's wrappers down to the unwrapped env) whose
  values are numbers, strings, None, numpy arrays and scalars, numpy generators, and lists,
  tuples and deques of those. Other attributes (emulators, spaces' dtypes, specs) are not saved.

A file the safe loader refuses (a crafted pickle, a file from another program, a truncated
write) raises :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Keys every checkpoint written by :meth:`bicimad.rl.core.Run.save` holds.
REQUIRED_KEYS = ("algo", "config", "iteration", "global_step", "agent", "optimizer", "scheduler", "extra",
                 "rng", "envs")

_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "MT19937": np.random.MT19937,
                   "Philox": np.random.Philox, "SFC64": np.random.SFC64}


class CheckpointError(ValueError):
    """A checkpoint file that is missing pieces or that the safe loader refuses."""


def load(path: str | Path) -> dict:
    """The checkpoint at ``path``, read with the weights-only unpickler (never runs code from it)."""
    path = Path(path)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: refused: not a checkpoint holding tensors and plain values only, as this program "
            f"writes them (the safe loader said: {first})") from exc
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        missing = sorted(set(REQUIRED_KEYS) - set(state)) if isinstance(state, dict) else list(REQUIRED_KEYS)
        raise CheckpointError(f"{path}: not a training checkpoint (missing {', '.join(missing)})")
    return state


# --- RNG states -----------------------------------------------------------------------------------

def numpy_global_state() -> dict:
    """numpy's legacy global RNG state as plain values (the key array as a list of ints)."""
    state = np.random.get_state(legacy=False)
    state["state"] = {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])}
    return state


def set_numpy_global_state(state: dict) -> None:
    restored = dict(state)
    restored["state"] = {"key": np.array(state["state"]["key"], np.uint32), "pos": state["state"]["pos"]}
    np.random.set_state(restored)


def generator_from_state(state: dict) -> np.random.Generator:
    """A new numpy Generator in ``state`` (a ``bit_generator.state`` dict of a known bit generator)."""
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise CheckpointError(f"unknown numpy bit generator {name!r} in checkpoint")
    bit_generator = _BIT_GENERATORS[name]()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


# --- env state as plain values --------------------------------------------------------------------

class _NotPlain(Exception):
    """A value with no plain encoding (left out of the saved state)."""


def encode(value: Any) -> Any:
    """Plain values as they are; others as ``(tag, ...)`` tuples (every tuple is tagged)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return ("scalar", value.dtype.str, value.item())
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        raw = torch.from_numpy(np.ascontiguousarray(value).reshape(-1).view(np.uint8).copy())
        return ("ndarray", value.dtype.str, list(value.shape), raw)
    if isinstance(value, np.random.Generator):
        return ("generator", value.bit_generator.state)
    if isinstance(value, deque):
        return ("deque", value.maxlen, [encode(item) for item in value])
    if isinstance(value, (list, tuple)):
        return ("list" if isinstance(value, list) else "tuple", [encode(item) for item in value])
    raise _NotPlain


def decode(value: Any, current: Any = None) -> Any:
    if not isinstance(value, tuple):
        return value
    tag = value[0]
    if tag == "scalar":
        return np.dtype(value[1]).type(value[2])
    if tag == "ndarray":
        return value[3].numpy().view(np.dtype(value[1])).reshape(value[2]).copy()
    if tag == "generator":
        if isinstance(current, np.random.Generator) and current.bit_generator.state["bit_generator"] == \
                value[1]["bit_generator"]:
            current.bit_generator.state = value[1]
            return current
        return generator_from_state(value[1])
    if tag == "deque":
        return deque((decode(item) for item in value[2]), maxlen=value[1])
    if tag in ("list", "tuple"):
        items = [decode(item) for item in value[1]]
        return items if tag == "list" else tuple(items)
    raise CheckpointError(f"unknown encoded value tag {tag!r} in checkpoint")


def capture_state(objects: list[Any]) -> list[dict]:
    """For each object: its class name and its plain instance attributes, encoded."""
    captured = []
    for obj in objects:
        attrs = {}
        for name, value in vars(obj).items():
            try:
                attrs[name] = encode(value)
            except _NotPlain:
                continue
        captured.append({"class": type(obj).__qualname__, "attrs": attrs})
    return captured


def apply_state(objects: list[Any], captured: list[dict], source: Path | str) -> None:
    """Set the attributes saved by :func:`capture_state` back on the same stack of objects."""
    classes = [type(obj).__qualname__ for obj in objects]
    saved = [entry["class"] for entry in captured]
    if classes != saved:
        raise CheckpointError(f"{source}: the checkpoint's envs are {saved}, this run's are {classes}")
    for obj, entry in zip(objects, captured):
        for name, value in entry["attrs"].items():
            if name in vars(obj):  # only attributes the fresh object has: nothing new is planted
                setattr(obj, name, decode(value, vars(obj)[name]))


def wrapper_stack(env) -> list[Any]:
    """An env's wrappers from the outermost down to the unwrapped env."""
    stack = [env]
    while hasattr(stack[-1], "env") and stack[-1].env is not stack[-1]:
        stack.append(stack[-1].env)
    return stack
