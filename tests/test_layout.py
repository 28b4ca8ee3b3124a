"""The code's own structure: import directions between the parts, and function length.

Read from the source with ``ast`` (nothing is imported), so a forbidden import fails here even
when it sits inside a function that no other test calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bicimad"

#: The longest function body allowed, in lines (decorators and docstring included).
MAX_FUNCTION_LINES = 80

#: Part of the package -> prefixes of modules it must never import (DESIGN's data flow:
#: cli -> jobs -> {report, plan, sim, demand, opendata}; plan -> {sim, rl}; rl is generic;
#: the simulator never loads LightGBM, OR-Tools or torch).
FORBIDDEN = {
    "rl": ("bicimad.opendata", "bicimad.demand", "bicimad.sim", "bicimad.plan", "bicimad.report",
           "bicimad.jobs", "bicimad.cli"),
    "sim": ("lightgbm", "ortools", "torch", "bicimad.demand", "bicimad.plan", "bicimad.rl", "bicimad.report",
            "bicimad.jobs", "bicimad.cli"),
    "opendata": ("bicimad.demand", "bicimad.plan", "bicimad.rl", "bicimad.report", "bicimad.jobs", "bicimad.cli"),
    "demand": ("bicimad.plan", "bicimad.rl", "bicimad.report", "bicimad.jobs", "bicimad.cli", "bicimad.sim"),
    "plan": ("bicimad.demand", "bicimad.report", "bicimad.jobs", "bicimad.cli"),
    "report": ("bicimad.jobs", "bicimad.cli", "bicimad.plan", "bicimad.rl"),
    "jobs": ("bicimad.cli",),
    "": ("bicimad.jobs", "bicimad.cli"),  # the top-level helpers: config, errors, geo, io
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _part(path: Path, package: Path = PACKAGE) -> str | None:
    rel = path.relative_to(package)
    if rel.name in ("cli.py", "__main__.py") and len(rel.parts) == 1:
        return None
    return rel.parts[0] if len(rel.parts) > 1 else ""


def imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``tree``, relative ones resolved."""
    found = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "bicimad"]
    return found


def violations(path: Path, package: Path = PACKAGE) -> list[str]:
    part = _part(path, package)
    if part is None:
        return []
    rel = path.relative_to(package.parent)
    module = ".".join(rel.with_suffix("").parts)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = []
    for line, name in imported_modules(tree, module):
        for prefix in FORBIDDEN.get(part, ()):
            if name == prefix or name.startswith(prefix + "."):
                bad.append(f"{rel}:{line}: {part or 'bicimad'} must not import {name}")
    return bad


def test_import_directions_follow_the_data_flow():
    bad = [v for path in _modules() for v in violations(path)]
    assert not bad, "\n".join(bad)


def test_the_checker_catches_a_forbidden_import(tmp_path):
    """The rule bites: an rl module importing the simulator and (relatively) a job, even inside
    a function, is reported; the same imports in a job module are allowed."""
    source = "def f():\n    from bicimad.sim import core\n    from ..jobs import nightly\n"
    for part in ("rl", "jobs"):
        probe = tmp_path / "bicimad" / part / "probe.py"
        probe.parent.mkdir(parents=True)
        probe.write_text(source)
    bad = violations(tmp_path / "bicimad" / "rl" / "probe.py", tmp_path / "bicimad")
    assert any("rl must not import bicimad.sim" in v for v in bad), bad
    assert any("rl must not import bicimad.jobs" in v for v in bad), bad
    assert violations(tmp_path / "bicimad" / "jobs" / "probe.py", tmp_path / "bicimad") == []


def test_nothing_below_the_command_line_imports_it():
    users = [str(path.relative_to(PACKAGE.parent)) for path in _modules()
             if _part(path) is not None and "bicimad.cli" in path.read_text(encoding="utf-8")]
    assert not users, f"modules that name bicimad.cli: {users}"


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                out.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.name} has {length} lines")
    return out


@pytest.mark.parametrize("part", sorted({p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")}))
def test_no_function_is_longer_than_80_lines(part):
    root = PACKAGE / part
    paths = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    long = [f for path in paths for f in _long_functions(path)]
    assert not long, "\n".join(long)
