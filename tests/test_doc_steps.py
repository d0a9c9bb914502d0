"""The docs run in the order written: the pages' steps, their copies of the files, their lists.

The whole build (every step of the tutorial and the how-tos, their tests included) runs in
``make stock``; here, what is quick: the parse, the copies, and that moving one step before what
it needs fails the build where a reader would fail.
"""

import re
from pathlib import Path

import pytest

from tests.scripts import loaded

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").rglob("*.md"))


@pytest.fixture(scope="module")
def doc_steps():
    with loaded("doc_steps") as module:
        yield module


def test_the_pages_copies_of_the_tutorials_files_are_current(doc_steps):
    stale = doc_steps.sync(write=False)
    assert not stale, "run `python scripts/doc_steps.py --write`"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO / "docs")))
def test_every_page_reads_as_plain_markdown(page):
    """No snippet include, which a code host shows as a bare ``--8<--`` line."""
    assert "--8<--" not in page.read_text(encoding="utf-8")


def test_a_copy_in_a_page_is_refreshed_from_its_file(doc_steps, tmp_path, monkeypatch):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "urls.py").write_text("urlpatterns = []\n")
    (tmp_path / "figures.md").write_text("| a | b |\n")
    page = tmp_path / "page.md"
    page.write_text(
        '```python title="shop/urls.py"\nold\n```\n\n'
        '```python title="shop/urls.py (at the end)"\nurlpatterns += []\n```\n\n'
        "<!-- begin: figures.md -->\nold\n<!-- end: figures.md -->\n"
    )
    monkeypatch.setattr(doc_steps, "SOURCES", tmp_path)
    assert doc_steps.sync(write=True, pages=[page]) == [page]
    assert page.read_text() == (
        '```python title="shop/urls.py"\nurlpatterns = []\n```\n\n'
        '```python title="shop/urls.py (at the end)"\nurlpatterns += []\n```\n\n'
        "<!-- begin: figures.md -->\n| a | b |\n<!-- end: figures.md -->\n"
    )
    assert doc_steps.sync(write=False, pages=[page]) == []


def test_steps_are_files_and_commands_in_document_order(doc_steps, tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## One\n\n```sh\ndjango-admin startproject mysite .\n```\n\n"
        '```python title="mysite/extra.py"\n# not a heading\nX = 1\n```\n\n'
        "## Two\n\n```console\n$ python manage.py check  # a comment\noutput\n```\n\n"
        '```python title="mysite/extra.py (at the end)"\nY = 2\n```\n\n'
        "```python\nillustration()\n```\n"
    )
    got = [(s.section, s.kind, s.path or s.text, s.append) for s in doc_steps.steps(page)]
    assert got == [
        ("One", "command", "django-admin startproject mysite .", False),
        ("One", "file", "mysite/extra.py", False),
        ("Two", "command", "python manage.py check", False),
        ("Two", "file", "mysite/extra.py", True),
    ]


def test_the_tutorial_connects_the_shops_urls_after_creating_them(doc_steps):
    files = [s.path for s in doc_steps.steps(doc_steps.TUTORIAL) if s.kind == "file"]
    assert files.index("shop/urls.py") < files.index("mysite/urls.py")


def test_a_step_moved_before_what_it_needs_fails_the_build(doc_steps, tmp_path):
    """The tutorial as it was: §2 replaced mysite/urls.py with include("shop.urls"), which §4
    creates. The build stops at the end of §2, with the error a reader saw."""

    def urls_in_settings_section(steps):
        urls = next(s for s in steps if s.path == "mysite/urls.py")
        steps.remove(urls)
        at = next(n for n, s in enumerate(steps) if s.path == "mysite/settings.py")
        urls.section = steps[at].section
        steps.insert(at + 1, urls)
        # Stop soon after: the failure comes before any of the later steps.
        return [s for s in steps if s.section.startswith(("1.", "2.", "3."))]

    with pytest.raises(doc_steps.StepFailed) as failed:
        doc_steps.build(tmp_path / "project", [doc_steps.TUTORIAL], order=urls_in_settings_section)
    message = str(failed.value)
    assert message.startswith("docs/tutorial.md:") and "(2. Settings): `manage.py check`" in message
    assert "No module named 'shop.urls'" in message


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("make coffee", "no rule to run `make coffee`"),
        ("pip install ../no-such-distribution", "no-such-distribution is not installed here"),
    ],
)
def test_a_command_the_harness_cannot_follow_fails(doc_steps, tmp_path, command, error):
    page = tmp_path / "page.md"
    page.write_text(f"## Only\n\n```sh\npip install ../django-plugipay\n{command}\n```\n")
    with pytest.raises(doc_steps.StepFailed, match=error):
        doc_steps.build(tmp_path / "project", [page])


def test_the_add_endpoint_list_names_every_event_of_the_shops_objects():
    """The tutorial's tick list: every event the sandbox sends about checkout sessions, payments
    and refunds (the async how-to relies on ``payment.updated``)."""
    from plugipay_sandbox.state import event_kinds

    text = (REPO / "docs" / "tutorial.md").read_text(encoding="utf-8")
    paragraph = text[text.index("**Add endpoint**") :].split("\n\n")[0]
    listed = set(re.findall(r"`(\w+\.\w+)`", paragraph))
    shops = ("checkout_session", "payment", "refund")
    wanted = {kind for kind in event_kinds() if kind.split(".")[0] in shops}
    assert "payment.updated" in wanted
    assert listed == wanted


def test_the_readme_says_how_to_install_and_no_longer_that_billing_is_unused():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "pip install ./django-plugipay" in text and "pip wheel" in text
    assert "does not use billing" not in text
    tutorial = (REPO / "docs" / "tutorial.md").read_text(encoding="utf-8")
    assert "pip install ../django-plugipay pytest-django" in tutorial
