"""No function in the package is over 60 lines (issue 15): a longer one must say why in a ``# long: <why>``
comment on the line above its ``def``. Quick: reads the source, imports nothing."""

from __future__ import annotations

import ast

from conftest import REPO

PACKAGE = REPO / "workflow/llmbench"
LIMIT = 60


def long_functions(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length) of each function over LIMIT lines without a ``# long:`` comment above it."""
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - node.lineno + 1
            explained = first >= 2 and lines[first - 2].strip().startswith("# long:")
            if length > LIMIT and not explained:
                out.append((node.name, node.lineno, length))
    return out


def test_the_check_sees_a_long_function_and_its_reason():
    body = "".join(f"    x{i} = {i}\n" for i in range(LIMIT))
    assert long_functions("def f():\n" + body) == [("f", 1, LIMIT + 1)]
    assert long_functions("# long: a table of cases\ndef f():\n" + body) == []
    assert long_functions("def f():\n" + body[: -len("    x59 = 59\n")]) == []


def test_no_function_over_60_lines_without_a_reason():
    found = [f"{path.relative_to(PACKAGE)}:{line} {name}() is {length} lines"
             for path in sorted(PACKAGE.rglob("*.py")) for name, line, length in long_functions(path.read_text())]
    assert not found, "split these or say why above the def (# long: ...):\n" + "\n".join(found)
