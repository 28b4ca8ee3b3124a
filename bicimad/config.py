"""Paths and environment-driven defaults, resolved at call time (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

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
