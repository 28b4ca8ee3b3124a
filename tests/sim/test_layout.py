"""The simulator's and planners' code stays readable: no function longer than 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import bicimad

PACKAGE = Path(bicimad.__file__).parent


def test_no_function_in_sim_or_plan_is_longer_than_80_lines():
    long = []
    for part in ("sim", "plan"):
        for path in sorted((PACKAGE / part).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > 80:
                        long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
