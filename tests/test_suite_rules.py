"""Rules the suite keeps about itself: no bare sleeps, only the one bounded polling helper."""

import ast
from pathlib import Path

import pytest

from django_plugipay import testing

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "tests").rglob("*.py")) + [Path(testing.__file__)]
#: The only function allowed to sleep: it polls a condition until a deadline.
ALLOWED = {(Path(testing.__file__), "wait_for")}


def sleeps(tree: ast.AST) -> list[tuple[int, str | None]]:
    """``(line, enclosing function)`` of every ``time.sleep(…)`` / ``sleep(…)`` call."""
    found = []

    def visit(node, function):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "sleep") or (
                isinstance(func, ast.Name) and func.id == "sleep"
            ):
                found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_the_detector_sees_a_sleep():
    source = "import time\ndef f():\n    time.sleep(1)\nfrom time import sleep\nsleep(2)\n"
    assert sleeps(ast.parse(source)) == [(3, "f"), (5, None)]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_sleep_outside_the_polling_helper(path):
    found = sleeps(ast.parse(path.read_text(encoding="utf-8")))
    bare = [line for line, function in found if (path, function) not in ALLOWED]
    assert bare == [], f"{path.name}: sleep at lines {bare}; poll with testing.wait_for instead"
