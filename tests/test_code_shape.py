"""The engine core stays readable: no function longer than 80 lines or with more than 8 parameters.

The corpus generator's data lives in JSON files (``corpora/_templates``), so its code is held
to the same limits.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

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


# ---------------------------------------------------------------------------- typed spec, public APIs
def source_lines(pattern: str, under: str = "workbench") -> list[str]:
    """``path:line: text`` for every line of ``under``'s Python files that matches ``pattern``."""
    regex = re.compile(pattern)
    found = []
    root = ROOT / under
    for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if regex.search(text):
                found.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()}")
    return found


def test_no_untyped_spec_and_no_refilled_defaults() -> None:
    """The engine, tasks and methods name ``ResolvedSpec``; none fills a default again."""
    assert source_lines(r"\bspec: Any\b") == []
    refilled = r"\bspec\.[a-z_.]+ or [0-9(\"']|getattr\((s\.|self\.)?spec\b"
    readers = [*source_lines(refilled, "workbench/engine"), *source_lines(refilled, "workbench/tasks"),
               *source_lines(refilled, "workbench/methods.py"), *source_lines(refilled, "workbench/models.py")]
    assert [line for line in readers if "spec_resolution.py" not in line] == []  # (resolution fills the defaults)


PRIVATE_API = {
    "accelerate": r"\._reset_state\b|\._shared_state\b|accelerate[\w.]*\._",
    "optuna": r"\._storage\b|\._trial_id\b|\._study_id\b",
    "textual": r"textual\.widgets\._|from textual[\w.]*\._",
}
"""Private attributes of the libraries the workbench builds on: each breaks without notice."""


@pytest.mark.parametrize("library", list(PRIVATE_API))
def test_no_private_library_attributes(library: str) -> None:
    assert source_lines(PRIVATE_API[library]) == []


def test_the_private_api_check_finds_a_use(tmp_path: Path) -> None:
    assert re.search(PRIVATE_API["optuna"], "storage, study_id = study._storage, study._study_id")
    assert re.search(PRIVATE_API["textual"], "from textual.widgets._footer import FooterKey")
    assert re.search(PRIVATE_API["accelerate"], "AcceleratorState._reset_state(reset_partial_state=True)")
    assert not re.search(PRIVATE_API["accelerate"], "AcceleratorState().initialized")


def test_no_import_cycles() -> None:
    """No module imports (at run time, directly or through others) a module that imports it."""
    import grimp

    graph = grimp.build_graph("workbench", exclude_type_checking_imports=True)
    cycles = [(m, i) for m in sorted(graph.modules) for i in graph.find_modules_directly_imported_by(m)
              if graph.find_shortest_chain(importer=i, imported=m)]
    assert cycles == []


def silent_local_imports(path: Path, root: Path) -> list[str]:
    """``file:line`` of each import inside a function whose lines carry no comment."""
    import ast

    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    if not any("#" in line for line in lines[inner.lineno - 1:inner.end_lineno]):
                        found.append(f"{path.relative_to(root)}:{inner.lineno}")
    return sorted(set(found))


def test_function_local_imports_say_why() -> None:
    """An import inside a function hides the import graph: it is there only to load a heavy
    library late (or a platform-only one), and its line says which."""
    root = Path(__file__).resolve().parents[1]
    silent = [hit for path in sorted((root / "workbench").rglob("*.py")) for hit in silent_local_imports(path, root)]
    assert silent == []


def test_the_local_import_check_finds_a_silent_one(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import json\n    import torch  # torch: late\n    return json\n", encoding="utf-8")
    assert silent_local_imports(source, tmp_path) == ["m.py:2"]
