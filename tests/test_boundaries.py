"""Package boundaries: the sandbox and the app meet only over HTTP; DRF stays in api/."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                yield path.relative_to(ROOT).as_posix(), name.split(".")[0]


def test_sandbox_uses_the_standard_library_only():
    allowed = {"plugipay_sandbox", "__future__"}
    import sys

    third_party = {
        (path, top)
        for path, top in imported_modules("plugipay_sandbox")
        if top not in allowed and top not in sys.stdlib_module_names
    }
    assert third_party == set()


# The app may start the sandbox from its pytest plugin and its management command.
SANDBOX_USERS = {
    "django_plugipay/testing.py",
    "django_plugipay/management/commands/plugipay_sandbox.py",
}


def test_app_does_not_import_the_sandbox():
    users = {path for path, top in imported_modules("django_plugipay") if top == "plugipay_sandbox"}
    assert users <= SANDBOX_USERS


@pytest.mark.parametrize("framework", ["rest_framework", "drf_spectacular"])
def test_drf_only_inside_api(framework):
    users = {path for path, top in imported_modules("django_plugipay") if top == framework}
    assert users and all(path.startswith("django_plugipay/api/") for path in users)
