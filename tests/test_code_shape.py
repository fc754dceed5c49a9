"""The engine core stays readable: no function longer than 80 lines or with more than 8 parameters.

The corpus generator's data lives in JSON files (``corpora/_templates``), so its code is held
to the same limits.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
MAX_PARAMS = 8


def functions(path: Path) -> list[tuple[str, int, int, int]]:
    """(name, first line, length in lines, parameter count without self/cls) per function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            params = len([n for n in names if n not in ("self", "cls")])
            params += bool(args.vararg) + bool(args.kwarg)
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            found.append((node.name, node.lineno, node.end_lineno - start + 1, params))
    return found


def offenders() -> list[str]:
    paths = sorted((ROOT / "workbench").rglob("*.py")) + [ROOT / "corpora" / "generate.py"]
    bad = []
    for path in paths:
        for name, line, length, params in functions(path):
            if length > MAX_LINES or params > MAX_PARAMS:
                bad.append(f"{path.relative_to(ROOT)}:{line} {name}: {length} lines, {params} parameters")
    return bad


def test_no_long_functions_or_long_parameter_lists() -> None:
    assert offenders() == []


def test_the_checker_finds_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES + 1))
    path = tmp_path / "long.py"
    path.write_text(f"def f(a, b, c, d, e, f, g, h, i):\n{body}\n", encoding="utf-8")
    [(name, _, length, params)] = functions(path)
    assert name == "f" and length == MAX_LINES + 2 and params == 9
