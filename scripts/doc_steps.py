"""The docs' code, run in the order the pages give it.

A page's fenced code blocks are its steps, in document order:

- a block with ``title="path"`` creates (replaces) that file of the reader's project;
  ``title="path (at the end)"`` appends to it;
- an ``sh`` or ``console`` block runs its commands (``$``-prefixed lines in a ``console`` block);
- any other block is an illustration and is not run.

``build()`` applies the steps of one or more pages to an empty directory, each at its point,
and stops at the first step that fails, naming the page, the line and the output: a step that
needs something a later step adds fails there, as it would for a reader. At the end of every
section that wrote files the project must pass ``manage.py check`` (a reader may start
``runserver`` at any point). The only departures from the text are ports (the sandbox and
``runserver`` listen on free ones, and ``127.0.0.1:8787`` / ``:8000`` in the pages' files and
commands are rewritten to them) and the environment commands (``python -m venv``, ``pip install``,
activating), which this interpreter's environment stands in for.

The tutorial's files live in ``docs/tutorial/`` (ruff formats and lints them); the page carries
a copy of each in the block whose title names it, so the page reads as plain Markdown on a code
host too. ``sync()`` keeps the copies in step (``--write`` rewrites them, the test suite fails on
a difference); a block whose file is not the title's path says so on the line before it:
``<!-- source: mysite/settings_plugipay.py -->``. ``<!-- begin: NAME -->``…``<!-- end: NAME -->``
holds a copy of a Markdown file from ``docs/tutorial/``.

    python scripts/doc_steps.py --write          # refresh the copies in the pages
    python scripts/doc_steps.py --check          # exit 1 if a copy is stale
    python scripts/doc_steps.py --build DIR      # build the tutorial and the how-tos in DIR
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SOURCES = DOCS / "tutorial"
TUTORIAL = DOCS / "tutorial.md"
#: the pages build() runs by default, in this order, on one project
PAGES = (TUTORIAL, DOCS / "how-to" / "async-payments.md", DOCS / "how-to" / "billing.md")
#: the pages holding copies of files in docs/tutorial/
SYNCED = (TUTORIAL, DOCS / "explanation" / "deployment.md")
SANDBOX_URL = "http://127.0.0.1:8787"
SITE_URL = "http://127.0.0.1:8000"
SUPERUSER = {"username": "admin", "email": "admin@example.com", "password": "doc-steps-password"}

FENCE = re.compile(
    r"^(?P<indent>[ ]*)(?P<fence>```+)(?P<lang>[\w+-]*)(?P<info>[^\n]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ ]*$",
    re.MULTILINE | re.DOTALL,
)
TITLE = re.compile(r'title="([^"]+)"')
SOURCE = re.compile(r"<!--\s*source:\s*(\S+)\s*-->\s*$")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
INCLUDED = re.compile(
    r"(<!-- begin: (?P<name>\S+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.DOTALL
)


class StepFailed(Exception):
    """A step of a page failed; the message names the page, the line and what was said."""


@dataclass
class Block:
    line: int
    lang: str
    title: str | None
    body: str
    start: int  # offsets of the body in the page's text
    end: int
    source: str | None = None  # the docs/tutorial/ file this block is a copy of
    section: str = ""


@dataclass
class Step:
    page: str
    line: int
    section: str
    kind: str  # "file" or "command"
    path: str = ""
    append: bool = False
    text: str = ""

    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.section})"


def blocks(text: str) -> list[Block]:
    """The page's fenced code blocks in document order, with their title and section."""
    # Blank the blocks out, offsets kept: a "# comment" in one is no heading.
    prose = FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m[0]), text)
    headings = [(m.start(), m[1]) for m in HEADING.finditer(prose)]
    found = []
    for match in FENCE.finditer(text):
        if match["indent"]:
            continue  # a block nested in a list item is an illustration
        title = TITLE.search(match["info"])
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        source = SOURCE.search(before)
        section = ""
        for offset, heading in headings:
            if offset < match.start():
                section = heading
        found.append(
            Block(
                line=text.count("\n", 0, match.start()) + 1,
                lang=match["lang"],
                title=title[1] if title else None,
                body=match["body"],
                start=match.start("body"),
                end=match.end("body"),
                source=source[1] if source else None,
                section=section,
            )
        )
    return found


def steps(page: Path) -> list[Step]:
    """What a reader does, in order, following ``page``."""
    name = str(page.relative_to(REPO)) if page.is_relative_to(REPO) else page.name
    result = []
    for block in blocks(page.read_text(encoding="utf-8")):
        if block.title:
            path, _, note = block.title.partition(" (")
            if note and note != "at the end)":
                raise StepFailed(f"{name}:{block.line}: unknown note ({note}; use (at the end)")
            result.append(
                Step(
                    name,
                    block.line,
                    block.section,
                    "file",
                    path=path,
                    append=note.startswith("at the end"),
                    text=block.body,
                )
            )
        elif block.lang in ("sh", "console"):
            for line in commands(block):
                result.append(Step(name, block.line, block.section, "command", text=line))
    return result


def commands(block: Block) -> list[str]:
    lines = block.body.splitlines()
    if block.lang == "console":
        lines = [ln[2:] for ln in lines if ln.startswith("$ ")]
    return [ln.split(" #", 1)[0].strip() for ln in lines if ln.strip() and not ln.startswith("#")]


# ── the copies of docs/tutorial/ in the pages ─────────────────────────────────────────────


def synced_text(page: Path) -> str:
    """``page`` with every copy of a docs/tutorial/ file replaced by the file's text."""
    text = page.read_text(encoding="utf-8")
    for block in reversed(blocks(text)):
        if not block.title:
            continue
        path, _, note = block.title.partition(" (")
        if note and not block.source:
            continue  # an addition to a file, not a copy of one
        source = SOURCES / (block.source or path)
        if source.is_file():
            text = text[: block.start] + source.read_text(encoding="utf-8") + text[block.end :]

    def include(match: re.Match) -> str:
        body = (SOURCES / match["name"]).read_text(encoding="utf-8")
        return f"{match[1]}{body.rstrip()}\n{match[4]}"

    return INCLUDED.sub(include, text)


def sync(*, write: bool, pages: Iterable[Path] = SYNCED) -> list[Path]:
    """The pages whose copies differ from their files (rewritten when ``write``)."""
    stale = []
    for page in pages:
        text = synced_text(page)
        if text != page.read_text(encoding="utf-8"):
            stale.append(page)
            if write:
                page.write_text(text, encoding="utf-8")
    return stale


# ── building a project from the pages ──────────────────────────────────────────────────────


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StepFailed(f"exited {process.returncode} before listening:\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise StepFailed(f"nothing listens on port {port} after {timeout:.0f} s:\n{log.read_text()}")


@dataclass
class Build:
    """A reader's project in ``root``, built by this Python from the pages' steps."""

    root: Path
    sandbox_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    password: str = SUPERUSER["password"]
    #: called after ``startproject`` (the stock script adds a Celery app there)
    after_startproject: Callable[[Build], None] | None = None
    #: ``manage.py`` commands this project makes fail on purpose, each with the text its
    #: output must then hold (the stock script's dead broker: the doctor's tasks line)
    expected_failures: dict[str, str] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PLUGIPAY_", "DJANGO_", "CELERY_", "PYTEST_"))
        }
        self.env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def ports(self, text: str) -> str:
        return text.replace(SANDBOX_URL, self.sandbox_url).replace(SITE_URL, self.site_url)

    def call(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """This Python with ``argv`` in the project, its output captured."""
        return subprocess.run(
            [sys.executable, *argv],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run(self, *argv: str, step: Step | None = None) -> str:
        result = self.call(*argv)
        output = result.stdout + result.stderr
        if result.returncode:
            where = f"{step.where()}: " if step else ""
            raise StepFailed(f"{where}`{' '.join(argv)}` exited {result.returncode}:\n{output}")
        return output

    def start(self, name: str, *argv: str) -> Path:
        log = self.root / f"{name}.log"
        with log.open("w") as handle:
            self.processes[name] = subprocess.Popen(
                [sys.executable, *argv],
                cwd=self.root,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.logs[name] = log
        return log

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    # the steps

    def apply(self, step: Step) -> None:
        if step.kind == "file":
            self.write(step)
        else:
            self.command(step)

    def write(self, step: Step) -> None:
        target = self.root / step.path
        text = self.ports(step.text)
        if step.append:
            if not target.is_file():
                raise StepFailed(f"{step.where()}: adds to {step.path}, which does not exist")
            old = target.read_text(encoding="utf-8")
            target.write_text(old.rstrip("\n") + "\n\n\n" + text, encoding="utf-8")
            self.done.append(f"{step.where()}: added to {step.path}")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            self.done.append(f"{step.where()}: wrote {step.path}")

    def command(self, step: Step) -> None:
        argv = shlex.split(self.ports(step.text))
        said = f"{step.where()}: $ {step.text}"
        if argv[:3] == ["python", "-m", "venv"] or argv[0] in (".", "source"):
            self.done.append(f"{said}  (this interpreter's environment stands in)")
            return
        if argv[:2] == ["pip", "install"]:
            self.installed(step, argv[2:])
            self.done.append(f"{said}  (this interpreter's environment has them)")
            return
        if argv[0] == "django-admin":
            self.run("-m", "django", *argv[1:], step=step)
            if argv[1] == "startproject" and self.after_startproject:
                self.done.append(said)  # before what the hook says it did
                self.after_startproject(self)
                return
        elif argv[:2] == ["python", "manage.py"]:
            self.manage(step, argv[2:])
        elif argv[:3] == ["python", "-m", "plugipay_sandbox"]:
            self.done.append(f"{said}  (the project's sandbox, started by manage.py, stands in)")
            return
        elif argv[0] == "pytest":
            self.run("-m", "pytest", "-q", "-p", "no:cacheprovider", *argv[1:], step=step)
        elif argv[0] == "curl":
            self.curl(step, argv[1:])
        else:
            raise StepFailed(f"{step.where()}: no rule to run `{step.text}`")
        self.done.append(said)

    def installed(self, step: Step, requirements: list[str]) -> None:
        """What ``pip install`` names is installed here (a path: the project it holds)."""
        from importlib import metadata

        for requirement in requirements:
            if requirement.startswith("-") or requirement.endswith(".whl"):
                continue
            name = re.split(r"[<>=!~\[ ]", Path(requirement).name)[0]
            try:
                metadata.version(name)
            except metadata.PackageNotFoundError:
                raise StepFailed(f"{step.where()}: {name} is not installed here") from None

    def manage(self, step: Step, argv: list[str]) -> None:
        command = argv[0]
        if command == "createsuperuser":
            self.env.update(
                DJANGO_SUPERUSER_USERNAME=SUPERUSER["username"],
                DJANGO_SUPERUSER_EMAIL=SUPERUSER["email"],
                DJANGO_SUPERUSER_PASSWORD=self.password,
            )
            self.run("manage.py", *argv, "--no-input", step=step)
        elif command == "plugipay_sandbox":
            log = self.start("sandbox", "manage.py", *argv, f"--site-url={self.site_url}")
            wait_for_port(self.sandbox_port, self.processes["sandbox"], log)
        elif command == "runserver":
            address = f"127.0.0.1:{self.web_port}"
            log = self.start("runserver", "manage.py", *argv, "--noreload", address)
            wait_for_port(self.web_port, self.processes["runserver"], log)
        elif command in self.expected_failures:
            result = self.call("manage.py", *argv)
            output, expected = result.stdout + result.stderr, self.expected_failures[command]
            if not result.returncode or expected not in output:
                raise StepFailed(
                    f"{step.where()}: `manage.py {' '.join(argv)}` should fail saying "
                    f"{expected!r}; it exited {result.returncode}:\n{output}"
                )
            self.done.append(f"{step.where()}: manage.py {command} failed as it should: {expected}")
        else:
            self.run("manage.py", *argv, step=step)

    def curl(self, step: Step, argv: list[str]) -> None:
        import requests

        method, data, url, headers = "GET", None, None, {}
        words = iter(argv)
        for word in words:
            if word == "-X":
                method = next(words)
            elif word in ("-H", "--header"):
                name, _, value = next(words).partition(":")
                headers[name.strip()] = value.strip()
            elif word in ("-d", "--data"):
                data, method = next(words), method if method != "GET" else "POST"
                # what curl sends with -d unless told otherwise
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            elif not word.startswith("-"):
                url = word
        if url is None:
            raise StepFailed(f"{step.where()}: no URL in `{step.text}`")
        response = requests.request(method, url, data=data, headers=headers, timeout=120)
        if response.status_code >= 400:
            raise StepFailed(f"{step.where()}: {method} {url} → {response.status_code}")

    def check(self, last: Step) -> None:
        """The project as the section leaves it passes Django's system checks."""
        self.run("manage.py", "check", step=last)
        self.done.append(f"  manage.py check passes at the end of {last.page}: {last.section}")


def build(
    root: Path,
    pages: Iterable[Path] = PAGES,
    *,
    order: Callable[[list[Step]], list[Step]] | None = None,
    project: Build | None = None,
    keep_running: bool = False,
) -> Build:
    """Follow ``pages`` in ``root`` step by step; raise ``StepFailed`` at the first failure.

    ``order`` may rearrange the steps (the tests move one to show the build then fails).
    """
    project = project or Build(root)
    root.mkdir(parents=True, exist_ok=True)
    todo = [step for page in pages for step in steps(page)]
    if order is not None:
        todo = order(todo)
    try:
        wrote = False
        for n, step in enumerate(todo):
            project.apply(step)
            wrote = wrote or step.kind == "file"
            following = todo[n + 1] if n + 1 < len(todo) else None
            ends = following is None or (following.page, following.section) != (
                step.page,
                step.section,
            )
            if ends and wrote and (project.root / "manage.py").is_file():
                project.check(step)
                wrote = False
    finally:
        if not keep_running:
            project.stop()
    return project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="refresh the copies in the pages")
    group.add_argument("--check", action="store_true", help="exit 1 if a copy is stale")
    group.add_argument("--build", metavar="DIR", type=Path, help="build the pages in DIR")
    args = parser.parse_args(argv)
    if args.build:
        try:
            project = build(args.build)
        except StepFailed as error:
            print(f"FAILED at {error}", file=sys.stderr)
            return 1
        print("\n".join(project.done))
        return 0
    stale = sync(write=args.write)
    for page in stale:
        print(f"{page.relative_to(REPO)}: {'rewritten' if args.write else 'stale copies'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
