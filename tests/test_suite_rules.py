"""Rules the suite keeps about itself: no bare sleeps, only the one bounded polling helper."""

import ast
from pathlib import Path

import pytest

from django_plugipay import testing
from tests import mutations

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "tests").rglob("*.py")) + [Path(testing.__file__)]
#: The functions allowed to sleep: the one that polls a condition until a deadline, and the
#: race tests' random stagger, whose delays make the interleavings and wait for nothing.
ALLOWED = {
    (Path(testing.__file__), "wait_for"),
    (ROOT / "tests" / "services" / "test_queued_reconcile_races.py", "stagger"),
}


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


@pytest.mark.parametrize("mutation", mutations.MUTATIONS, ids=lambda m: m.name.split(":")[0])
def test_every_mutation_still_finds_its_code(mutation):
    """`make mutate` breaks exactly this code; when it moves, update tests/mutations.py."""
    for name, search, _replacement in mutation.edits:
        assert (ROOT / name).read_text(encoding="utf-8").count(search) == 1, (name, search)
    for test in mutation.tests:
        path, function = test.split("::")
        assert f"def {function}(" in (ROOT / path).read_text(encoding="utf-8"), test


def test_a_missing_search_string_stops_the_mutation_run(tmp_path):
    (tmp_path / "code.py").write_text("x = 1\n")
    broken = mutations.Mutation("demo", (("code.py", "y = 2\n", "y = 3\n"),), ("t",))
    with pytest.raises(SystemExit, match="found 0 times in code.py"):
        mutations.apply(tmp_path, broken)
    applied = mutations.Mutation("demo", (("code.py", "x = 1\n", "x = 2\n"),), ("t",))
    assert mutations.apply(tmp_path, applied) == {tmp_path / "code.py": "x = 1\n"}
    assert (tmp_path / "code.py").read_text() == "x = 2\n"
