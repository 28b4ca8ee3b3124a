"""Paths and environment-driven defaults, resolved at call time (never at import), and the one
loader of TOML files into frozen dataclasses (job configs and simulation scenarios)."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import tomli_w

from bicimad.io import atomic_open

TZ = "Europe/Madrid"

#: Repository root (where pyproject.toml lives) when running from a checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Root of the data tree: ``raw/``, ``processed/``, ``runs/``.

    Order: explicit argument, ``$BICIMAD_DATA_DIR``, ``./data``.
    """
    if override is not None:
        return Path(override)
    return Path(os.environ.get("BICIMAD_DATA_DIR", "data"))


def raw_dir(root: str | os.PathLike | None = None) -> Path:
    return data_dir(root) / "raw"


def processed_dir(root: str | os.PathLike | None = None) -> Path:
    return data_dir(root) / "processed"


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    return data_dir(root) / "runs"


def shared_data_dir() -> Path:
    """The real EMT data used by tests: ``$BICIMAD_SHARED_DATA`` or ``../shared/data/bicimad``."""
    env = os.environ.get("BICIMAD_SHARED_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "bicimad"


def models_dir() -> Path:
    """Trained artefacts: ``$BICIMAD_MODELS_DIR`` or the repository's ``models/``."""
    return Path(os.environ.get("BICIMAD_MODELS_DIR", REPO_ROOT / "models"))


# ---------------------------------------------------------------------------------------------
# TOML files as frozen dataclasses: the one loader (job configs and simulation scenarios)
# ---------------------------------------------------------------------------------------------

class ConfigError(ValueError):
    """A config file or table is invalid; the message names the file and the dotted key."""


def _check_value(value: Any, type_: Any, key: str, source: str) -> Any:
    """Check (and lightly coerce: list -> tuple, int -> float) one TOML value against a type."""
    origin = typing.get_origin(type_)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(type_)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{source}: {key}: invalid value {value!r}")
    if dataclasses.is_dataclass(type_):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a table, got {type(value).__name__}")
        return build_config(type_, value, source, prefix=f"{key}.")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(type_)
        item_type = args[0] if args else Any
        return tuple(_check_value(v, item_type, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict or type_ is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a table, got {type(value).__name__} {value!r}")
        return dict(value)
    if type_ is Any:
        return value
    if type_ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type_ in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{source}: {key}: expected {type_.__name__}, got bool {value!r}")
    if type_ in (int, float, str, bool) and not isinstance(value, type_):
        raise ConfigError(f"{source}: {key}: expected {type_.__name__}, got {type(value).__name__} {value!r}")
    return value


def build_config(cls: type, table: dict, source: str, prefix: str = ""):
    """The frozen dataclass ``cls`` from a parsed TOML table: unknown keys, missing required
    keys and wrong types are a :class:`ConfigError` naming ``source`` and the dotted key; so is
    a ``ValueError`` from the dataclass's own checks (``__post_init__`` or a ``validate()``
    method; a :class:`ConfigError` subclass keeps its class)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]!s} (known keys: {', '.join(prefix + k for k in fields)})"
        )
    kwargs = {}
    for name, field in fields.items():
        if name in table:
            kwargs[name] = _check_value(table[name], hints[name], prefix + name, source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {prefix}{name}")
    try:
        obj = cls(**kwargs)
        validate = getattr(obj, "validate", None)
        if validate is not None:
            validate()
    except ValueError as exc:
        error = type(exc) if isinstance(exc, ConfigError) else ConfigError
        raise error(f"{source}: {exc}") from None
    return obj


def read_toml(path: str | os.PathLike) -> dict:
    """The table of a TOML file; a :class:`ConfigError` naming the file if it is missing,
    not a file or not valid TOML."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(cls: type, path: str | os.PathLike):
    """Load a TOML file into the frozen dataclass ``cls``."""
    return build_config(cls, read_toml(path), str(path))


def config_to_dict(config) -> dict:
    """The config as a TOML-ready dict (tuples as lists; None values left out, TOML has no null)."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return clean(dataclasses.asdict(config))


def write_config(config, path: str | os.PathLike) -> Path:
    """Write the config next to the artefacts it produced (atomically, as TOML)."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        tomli_w.dump(config_to_dict(config), fh)
    return path


def data_lock_path(root: str | os.PathLike | None = None) -> Path:
    """The one lock of a data folder: held by the nightly run and by every ingest that writes it."""
    return runs_dir(root) / "nightly.lock"
