"""The tutorial on a stock ``django-admin startproject`` project, driven over HTTP.

Builds a fresh project with Django's default settings (SQLite in its default transaction mode,
the in-memory test database, threaded ``runserver``, no Celery app) by following the tutorial
and the asynchronous-payments and billing how-tos step by step, in the order the pages give them
(``scripts/doc_steps.py``): each file written and each command run where the text says, the
tutorial's own tests run by its ``pytest`` step, ``manage.py plugipay_sandbox`` and ``manage.py
runserver`` started where the tutorial starts them. Then it drives card payments and one admin
refund through the real pages:

- 20 payments in a row by one buyer, each success page requested the instant the redirect
  arrives, and 20 more from 5 buyers at once (``--sequential``, ``--buyers``, ``--per-buyer``);
- one partial refund through the Django admin's Refund page, as staff.

Mode ``no-celery`` (the tutorial as written) expects the refund to succeed on its own. Mode
``broker-down`` adds a Celery app whose broker is unreachable: the refund must stay
``requested`` with the reason shown, and ``manage.py plugipay_sync`` must then finish it. Mode
``django-tasks`` then configures django-tasks-db (``PLUGIPAY["TASKS"] = "django"``, ``manage.py
db_worker`` running): task work goes through the worker instead of the request.

Both modes assert: no response >= 500 (to the buyers, the staff or the sandbox's webhooks), no
"database is locked" in the server's output, every order paid exactly once (one receipt each),
every success page saying "paid", every webhook answered 2xx. Exit status 0 when every
assertion holds.

``--matrix`` runs the no-celery flow (fewer payments) once per setting a real project adds to its
own settings (``--variants`` picks some, see ``VARIANTS``), each written right after
``startproject``, before the tutorial's first ``migrate``: ``USE_TZ = False`` with ``TIME_ZONE =
"Asia/Jakarta"`` (stored times compared with the sandbox's UTC instants) on SQLite and on
PostgreSQL, ``ATOMIC_REQUESTS`` on SQLite in IMMEDIATE mode and on PostgreSQL (the PostgreSQL
variants need ``--postgres URL`` and are skipped without it), ``ATOMIC_REQUESTS`` on SQLite's
default mode (the tutorial's first ``manage.py check`` must stop with system-check error E050
naming the fix), ``LoginRequiredMiddleware``, ``LANGUAGE_CODE = "id"`` with ``LocaleMiddleware``,
and a custom user model (UUID primary key, e-mail login). The variants skip the pages' ``pytest``
steps: the pages' tests create users the default model's way, and the modes run them.

Run it with the repository's virtualenv: ``.venv/bin/python scripts/stock_project.py``
(``make stock``; ``make stock-matrix``). Only the standard library and ``requests`` (and
``psycopg`` for the PostgreSQL variants).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import doc_steps  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROJECT = "mysite"
PASSWORD = "stock-project-password"
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
DEAD_BROKER = "redis://127.0.0.1:1/0"

# What the broker-down mode adds to the project: Celery's own Django recipe, unchanged.
CELERY_MODULE = f'''import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{PROJECT}.settings")

app = Celery("{PROJECT}")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
'''
CELERY_INIT = 'from .celery import app as celery_app\n\n__all__ = ("celery_app",)\n'

# --log-retries: show django_plugipay.db's "retrying …" lines (INFO) in runserver's output.
RETRY_LOGGING = """
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_plugipay.db": {"handlers": ["console"], "level": "INFO"}},
}
"""
RETRY = re.compile(r"^retrying \S+ after a transient database error", re.MULTILINE)

# The uuid-user variant's app: the test suite's own custom user model (a UUID primary key, the
# e-mail address as the login) and its migration, as the project's app "accounts".
USER_APP = REPO / "tests" / "uuid_users"


@dataclass(frozen=True)
class Variant:
    """One line (or a few) a real project has in its own settings."""

    name: str
    settings: str
    #: (path in the project, a file or folder of this repository to copy there)
    files: tuple[tuple[str, Path], ...] = ()
    postgres: bool = False
    atomic_requests: bool = False  # on the PostgreSQL database
    custom_user: bool = False
    #: the system check that must stop this project at start-up (id, text of its fix)
    start_up_error: tuple[str, str] | None = None
    zone: str | None = None


VARIANTS = {
    v.name: v
    for v in (
        Variant(
            "use-tz-false", 'USE_TZ = False\nTIME_ZONE = "Asia/Jakarta"\n', zone="Asia/Jakarta"
        ),
        Variant(
            "atomic-requests-immediate",
            'DATABASES["default"]["ATOMIC_REQUESTS"] = True\n'
            'DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}\n',
        ),
        Variant(
            "atomic-requests-sqlite-default",
            'DATABASES["default"]["ATOMIC_REQUESTS"] = True\n',
            start_up_error=(
                "django_plugipay.E050",
                'Add "OPTIONS": {"transaction_mode": "IMMEDIATE"} to DATABASES[\'default\']',
            ),
        ),
        Variant("atomic-requests-postgres", "", postgres=True, atomic_requests=True),
        Variant(
            "use-tz-false-postgres",
            'USE_TZ = False\nTIME_ZONE = "Asia/Jakarta"\n',
            postgres=True,
            zone="Asia/Jakarta",
        ),
        Variant(
            "login-required",
            'MIDDLEWARE += ["django.contrib.auth.middleware.LoginRequiredMiddleware"]\n',
        ),
        Variant(
            "language-id",
            'LANGUAGE_CODE = "id"\n'
            "MIDDLEWARE.insert(\n"
            '    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"),\n'
            '    "django.middleware.locale.LocaleMiddleware",\n'
            ")\n",
        ),
        Variant(
            "uuid-user",
            'INSTALLED_APPS += ["accounts"]\nAUTH_USER_MODEL = "accounts.User"\n',
            files=(("accounts", USER_APP),),  # with its migration, before the first `migrate`
            custom_user=True,
        ),
    )
}

LOCKED = re.compile(r"database (table )?is locked", re.IGNORECASE)
REQUEST_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')
RECEIPT = re.compile(r"^Subject: Receipt for order #(\d+)", re.MULTILINE)


def say(text: str = "") -> None:
    print(text, flush=True)


# ── the project ────────────────────────────────────────────────────────────────────────


class Project:
    """A ``startproject`` project in a temporary directory, run with this Python."""

    def __init__(
        self,
        root: Path,
        sandbox_port: int,
        web_port: int,
        *,
        celery: bool,
        log_retries: bool,
        variant: Variant | None = None,
        database_url: str | None = None,
    ) -> None:
        self.root = root
        self.sandbox_port, self.web_port = sandbox_port, web_port
        self.celery, self.log_retries = celery, log_retries
        self.variant, self.database_url = variant, database_url
        self.build = doc_steps.Build(
            root,
            sandbox_port=sandbox_port,
            web_port=web_port,
            password=PASSWORD,
            after_startproject=self.after_startproject,
            # the dead broker is the point of this mode: the doctor's tasks line names it
            expected_failures={"plugipay_doctor": "[FAIL] tasks: the Celery broker"}
            if celery
            else {},
        )
        self.env = self.build.env

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def database(self) -> Path:
        return self.root / "db.sqlite3"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = self.build.call(*args, timeout=300)
        if check and result.returncode:
            raise SystemExit(
                f"`{' '.join(args)}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("manage.py", *args, check=check)

    def create(self) -> doc_steps.StepFailed | None:
        """The tutorial and the how-tos, step by step in their order, with the sandbox and
        runserver left running (``self.build.done`` says what was done); returns the step that
        failed, everything stopped, or None."""
        for step in doc_steps.steps(doc_steps.TUTORIAL):
            if step.path == f"{PROJECT}/settings.py":
                # Django's defaults are the point: nothing may change the database's
                # transaction mode, its timeout or the test database.
                for word in ("DATABASES", "transaction_mode", "IMMEDIATE", "TEST"):
                    assert word not in step.text, f"the tutorial's settings addition sets {word}"
        try:
            doc_steps.build(
                self.root,
                project=self.build,
                keep_running=True,
                order=self.without_tests if self.variant else None,
            )
        except doc_steps.StepFailed as error:
            self.stop()
            return error
        return None

    def without_tests(self, steps: list[doc_steps.Step]) -> list[doc_steps.Step]:
        """The pages' steps but their ``pytest`` runs (a variant's settings are not the ones
        the pages' tests are written for: their users are the default model's)."""
        tests = [s for s in steps if s.kind == "command" and s.text.split()[0] == "pytest"]
        where = ", ".join(s.where() for s in tests)
        self.build.done.append(f"  left out, as a variant: the pages' `pytest` steps ({where})")
        return [s for s in steps if s not in tests]

    def after_startproject(self, build: doc_steps.Build) -> None:
        settings = self.root / PROJECT / "settings.py"
        if self.celery:
            (self.root / PROJECT / "celery.py").write_text(CELERY_MODULE)
            (self.root / PROJECT / "__init__.py").write_text(CELERY_INIT)
            with settings.open("a") as handle:
                handle.write(f'\nCELERY_BROKER_URL = "{DEAD_BROKER}"  # nothing listens here\n')
            build.done.append(f"  a Celery app (mysite/celery.py), CELERY_BROKER_URL={DEAD_BROKER}")
        if self.log_retries:
            with settings.open("a") as handle:
                handle.write(RETRY_LOGGING)
            build.done.append("  LOGGING: django_plugipay.db at INFO (--log-retries)")
        if self.variant is not None:
            build.done.extend(f"  {line}" for line in self.apply_variant(settings))

    def apply_variant(self, settings: Path) -> list[str]:
        """Write the variant's files and append its settings (and the PostgreSQL database)."""
        variant, done = self.variant, []
        assert variant is not None
        for name, source in variant.files:
            if source.is_dir():
                shutil.copytree(source, self.root / name, ignore=shutil.ignore_patterns("__py*"))
            else:
                shutil.copyfile(source, self.root / name)
            done.append(f"copied {source.relative_to(REPO)} to {name}")
        addition = variant.settings
        if self.database_url:
            parts = urlsplit(self.database_url)
            addition += (
                "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', "
                f"'NAME': {parts.path.lstrip('/')!r}, 'USER': {parts.username or ''!r}, "
                f"'PASSWORD': {parts.password or ''!r}, 'HOST': {parts.hostname or ''!r}, "
                f"'PORT': {str(parts.port or '')!r}, "
                f"'ATOMIC_REQUESTS': {variant.atomic_requests}}}}}\n"
            )
        with settings.open("a") as handle:
            handle.write(f"\n# --variant {variant.name}\n{addition}")
        done.extend(f"settings: {line}" for line in addition.splitlines())
        return done

    def login(self, name: str) -> str:
        """What ``name`` types into the login form's first field (``createsuperuser`` made
        "admin" from the pages' username and e-mail address, whichever the model logs in with)."""
        return f"{name}@example.com" if self.variant and self.variant.custom_user else name

    def use_django_tasks(self) -> str:
        """``TASKS = "django"`` on django-tasks-db, added after the docs' steps (their tests run
        in-process, as written); runserver restarted on it and a ``db_worker`` started."""
        import django

        apps = (
            ["django_tasks_db"] if django.VERSION >= (6,) else ["django_tasks", "django_tasks_db"]
        )
        with (self.root / PROJECT / "settings.py").open("a") as handle:
            handle.write(
                f"\nINSTALLED_APPS += {apps!r}\n"
                'TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}\n'
                'PLUGIPAY["TASKS"] = "django"\n'
            )
        self.manage("migrate", "-v", "0")
        runserver = self.build.processes["runserver"]
        os.killpg(runserver.pid, signal.SIGTERM)
        runserver.wait(timeout=20)
        address = f"127.0.0.1:{self.web_port}"
        log = self.build.start("runserver", "manage.py", "runserver", "--noreload", address)
        doc_steps.wait_for_port(self.web_port, self.build.processes["runserver"], log)
        self.build.start("db_worker", "manage.py", "db_worker", "--no-reload", "--interval", "0.2")
        return 'TASKS = "django" on django-tasks-db, `manage.py db_worker` running'

    def stop(self) -> None:
        self.build.stop()

    def flush_deliveries(self) -> int:
        """Have the sandbox send every webhook due now and wait for those in flight."""
        flushed = requests.post(f"{self.sandbox_url}/_sandbox/deliveries/flush", timeout=120)
        return flushed.json()["data"]["sent"]

    def query(self, sql: str, *params) -> list[tuple]:
        """Read the project's database (read-only, a short busy wait like Django's own)."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as db:
                return db.execute(sql.replace("?", "%s"), params).fetchall()
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, params).fetchall()


@contextmanager
def fresh_postgres_database(url: str, name: str):
    """A new, empty database on ``url``'s server for one project; dropped afterwards."""
    import psycopg

    parts = urlsplit(url)
    database = f"{parts.path.lstrip('/') or 'plugipay'}_{name}".replace("-", "_")
    server = parts._replace(path="/postgres").geturl()

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    drop()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield parts._replace(path=f"/{database}").geturl()
    finally:
        drop()


def free_ports(first: int, last: int, count: int) -> list[int]:
    found = []
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise SystemExit(f"fewer than {count} free ports in {first}-{last}")


def poll(condition, timeout: float, interval: float = 0.2):
    """Call ``condition`` until it returns something truthy or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# ── the people ─────────────────────────────────────────────────────────────────────────


@dataclass
class Traffic:
    """Every HTTP response the script saw, and the payments it made."""

    responses: list[tuple[str, str, int, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    flows: list[float] = field(default_factory=list)  # seconds from "Buy" to the thanks page
    paid_pages: int = 0
    pending_pages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, response: requests.Response) -> requests.Response:
        url = response.url.split("?")[0]
        with self.lock:
            self.responses.append(
                (
                    response.request.method,
                    url,
                    response.status_code,
                    response.elapsed.total_seconds(),
                )
            )
        return response

    def server_errors(self) -> list[tuple[str, str, int, float]]:
        return [r for r in self.responses if r[2] >= 500]

    def step_times(self, responses: list[tuple[str, str, int, float]]) -> dict[str, str]:
        """Median / p95 / max milliseconds of each step of a payment."""
        steps = {
            "buy": r"POST .*/buy/",
            "hosted page": r"GET .*/c/cs_\w+$",
            "pay": r"POST .*/c/cs_\w+/pay$",
            "thanks": r"GET .*/thanks/$",
        }
        times = {}
        for step, pattern in steps.items():
            found = sorted(t for m, u, _, t in responses if re.match(pattern, f"{m} {u}"))
            if found:
                p95 = found[int(0.95 * (len(found) - 1))]
                times[step] = " / ".join(
                    str(round(1000 * v)) for v in (statistics.median(found), p95, found[-1])
                )
        return times


class Browser:
    """One person's cookie jar, logged in through the project's own login page."""

    def __init__(self, project: Project, traffic: Traffic, username: str) -> None:
        self.project, self.traffic, self.username = project, traffic, username
        self.http = requests.Session()

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.traffic.record(self.http.get(url, timeout=60, allow_redirects=False, **kwargs))

    def post(self, url: str, data: dict, **kwargs) -> requests.Response:
        if url.startswith(self.project.site_url):
            data = {"csrfmiddlewaretoken": self.http.cookies.get("csrftoken", ""), **data}
        return self.traffic.record(
            self.http.post(url, data=data, timeout=60, allow_redirects=False, **kwargs)
        )

    def log_in(self, login_path: str) -> None:
        url = self.project.site_url + login_path
        self.get(url)
        response = self.post(url, {"username": self.username, "password": PASSWORD})
        if response.status_code != 302:
            raise SystemExit(
                f"{self.username} could not log in at {login_path}: {response.status_code}"
            )

    def buy(self, item: str = "batik") -> None:
        """Buy → hosted checkout → pay with 4242 → the thanks page, at once."""
        started = time.monotonic()
        try:
            response = self.post(f"{self.project.site_url}/buy/{item}/", {})
            hosted = response.headers.get("Location", "")
            if response.status_code != 302 or not hosted.startswith(self.project.sandbox_url):
                raise RuntimeError(f"buy answered {response.status_code} {hosted!r}")
            self.get(hosted)
            response = self.post(f"{hosted}/pay", CARD)
            thanks = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or "session_id=" not in thanks:
                raise RuntimeError(f"the hosted page answered {response.status_code} {thanks!r}")
            page = self.get(thanks)
            if page.status_code != 200:
                raise RuntimeError(f"the thanks page answered {page.status_code}")
        except (RuntimeError, requests.RequestException) as exc:
            with self.traffic.lock:
                self.traffic.errors.append(f"{self.username}: {exc}")
            return
        with self.traffic.lock:
            self.traffic.flows.append(time.monotonic() - started)
            if " is paid</h1>" in page.text:
                self.traffic.paid_pages += 1
            else:
                self.traffic.pending_pages.append(thanks)


# ── one run ────────────────────────────────────────────────────────────────────────────


@dataclass
class Result:
    mode: str
    figures: dict = field(default_factory=dict)
    checks: list[tuple[str, object, bool]] = field(default_factory=list)

    def check(self, name: str, value: object, ok: bool) -> None:
        self.checks.append((name, value, ok))
        say(f"  [{'ok' if ok else 'FAIL'}] {name}: {value}")

    @property
    def ok(self) -> bool:
        return all(ok for _, _, ok in self.checks)


def run_mode(
    mode: str,
    args: argparse.Namespace,
    workdir: Path,
    variant: Variant | None = None,
    database_url: str | None = None,
) -> Result:
    name = variant.name if variant else mode
    result = Result(name)
    celery = mode == "broker-down"
    sandbox_port, web_port = free_ports(args.first_port, args.last_port, 2)
    project = Project(
        workdir / name,
        sandbox_port,
        web_port,
        celery=celery,
        log_retries=args.log_retries,
        variant=variant,
        database_url=database_url,
    )
    started = time.monotonic()

    def lap(name: str, since: float) -> float:
        result.figures[name] = round(time.monotonic() - since, 2)
        return time.monotonic()

    say(f"\n=== {'variant' if variant else 'mode'} {name}: project in {project.root}")
    t = time.monotonic()
    failed = project.create()
    for line in project.build.done:
        say(f"  {line}")
    if variant and variant.start_up_error:
        return expect_start_up_error(project, variant, failed, result)
    if failed:
        raise SystemExit(f"following the docs failed at {failed}")
    if mode == "django-tasks":
        say(f"  {project.use_django_tasks()}")
    t = lap("docs_steps_s", t)
    checks = project.manage("check", check=False)
    check_output = (checks.stdout + checks.stderr).strip()
    say("  manage.py check says:\n    " + "\n    ".join(check_output.splitlines()))
    if mode == "django-tasks":
        result.check("check: task work goes to django.tasks (I031)", "I031", "I031" in check_output)
    buyers = [f"buyer{n}" for n in range(1 + args.buyers)]
    # The buyers (the tutorial's createsuperuser made the staff user), by the project's user
    # model: its login field is the username or, for an e-mail login, the e-mail address.
    accounts = [(project.login(name), f"{name}@example.com") for name in buyers]
    project.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"for login, email in {accounts!r}:\n"
        "    User.objects.create_user(\n"
        "        **{User.get_email_field_name(): email, User.USERNAME_FIELD: login},\n"
        f"        password={PASSWORD!r},\n"
        "    )",
    )
    t = lap("setup_s", t)

    traffic = Traffic()
    sandbox_log, server_log = project.build.logs["sandbox"], project.build.logs["runserver"]
    try:
        if variant is None:  # the variants do not run the pages' tests (Project.without_tests)
            run_tutorial_tests(project, args.test_runs if mode in args.test_modes else 1, result)
            t = lap("tutorial_test_s", t)
        say(f"  sandbox on {project.sandbox_url}, runserver on {project.site_url}")
        doctor = project.manage("plugipay_doctor", check=False)
        for line in doctor.stdout.strip().splitlines() or doctor.stderr.strip().splitlines():
            say(f"    doctor: {line}")
        failing = [line for line in doctor.stdout.splitlines() if line.startswith("[FAIL]")]
        if celery:  # the broker is down on purpose: the tasks line says so, and no other fails
            named = (
                doctor.returncode == 1
                and len(failing) == 1
                and failing[0].startswith("[FAIL] tasks: the Celery broker")
                and "cannot be reached" in failing[0]
            )
            result.check("manage.py plugipay_doctor names the dead broker", failing, named)
        else:
            result.check(
                "manage.py plugipay_doctor", f"exit {doctor.returncode}", not doctor.returncode
            )
        drive_payments(project, traffic, buyers, args, result, lap)
        t = time.monotonic()
        refund_through_admin(project, traffic, result, celery=celery)
        lap("refund_s", t)
        if variant and variant.zone:
            compare_local_times(project, result, variant.zone)
        # the refund's webhooks, before the servers stop (one cut off is a failed delivery)
        project.flush_deliveries()
        if mode == "django-tasks":
            ran = project.query(
                "SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status = ?",
                "SUCCESSFUL",
            )[0][0]
            result.figures["db_worker_tasks"] = ran
            result.check("tasks run by the db_worker", ran, ran > 0)
    finally:
        project.stop()
    result.figures["total_s"] = round(time.monotonic() - started, 1)
    report_logs(project, traffic, server_log, sandbox_log, result)
    report_orders(project, result, server_log)
    if result.ok and not args.keep:
        shutil.rmtree(project.root, ignore_errors=True)
    else:
        say(f"  project and logs kept in {project.root}")
    return result


def run_tutorial_tests(project: Project, runs: int, result: Result) -> None:
    """The docs' own `pytest` steps ran once; run the tutorial's tests ``runs - 1`` more times."""
    passes = 1
    for run in range(1, runs):
        test = project.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "shop", check=False)
        tail = (test.stdout + test.stderr).strip().splitlines()
        summary = tail[-1] if tail else "(no output)"
        say(f"  tutorial test run {run + 1}: {summary}")
        if test.returncode == 0:
            passes += 1
        else:
            for line in dict.fromkeys(ln for ln in tail if ln.startswith(("E  ", "FAILED"))):
                say(f"    {line[:200]}")
    result.figures["tutorial_test_passes"] = f"{passes}/{runs}"
    result.check("tutorial test passes", f"{passes}/{runs}", passes == runs)


def expect_start_up_error(
    project: Project, variant: Variant, failed: doc_steps.StepFailed | None, result: Result
) -> Result:
    """Following the docs must stop at the project's first system check, with the variant's
    error and its fix."""
    assert variant.start_up_error is not None
    check_id, fix = variant.start_up_error
    project.stop()
    said = str(failed or "")
    say("  the docs stopped at:\n    " + "\n    ".join(said.splitlines()))
    result.check(
        f"start-up stops with {check_id} naming the fix",
        said.splitlines()[0] if failed else "the docs were followed to the end",
        failed is not None and check_id in said and fix in said,
    )
    if result.ok:
        shutil.rmtree(project.root, ignore_errors=True)
    return result


def compare_local_times(project: Project, result: Result, zone: str) -> None:
    """Every payment's paid_at is the local time in ``zone`` of the sandbox's UTC instant."""
    from zoneinfo import ZoneInfo

    remote = requests.get(f"{project.sandbox_url}/_sandbox/state", timeout=30).json()["data"]
    instants = {p["id"]: p.get("paidAt") for p in remote["payments"]}
    rows = project.query("SELECT plugipay_id, paid_at FROM django_plugipay_payment")
    wrong = []
    for plugipay_id, stored in rows:
        instant = dt.datetime.fromisoformat(instants[plugipay_id].replace("Z", "+00:00"))
        local = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        if isinstance(stored, str):
            stored = dt.datetime.fromisoformat(stored)
        if stored.tzinfo is not None:  # PostgreSQL's timestamptz read back aware
            stored = stored.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        if stored != local:
            wrong.append(f"{plugipay_id}: {stored} != {local}")
    result.check(
        f"payments' paid_at stored as {zone} local times of Plugipay's instants",
        f"{len(rows) - len(wrong)}/{len(rows)}" + (f"; {wrong[0]}" if wrong else ""),
        bool(rows) and not wrong,
    )


def drive_payments(project, traffic, buyers, args, result, lap) -> None:
    first = Browser(project, traffic, project.login(buyers[0]))
    first.log_in("/accounts/login/")
    t = time.monotonic()
    for _ in range(args.sequential):
        first.buy()
    t = lap("sequential_s", t)
    in_a_row = len(traffic.responses)
    crowd = [Browser(project, traffic, project.login(name)) for name in buyers[1:]]
    for browser in crowd:
        browser.log_in("/accounts/login/")

    def shop(browser: Browser) -> None:
        for n in range(args.per_buyer):
            browser.buy("kopi" if n % 2 else "batik")

    t = time.monotonic()
    with ThreadPoolExecutor(len(crowd)) as pool:
        list(pool.map(shop, crowd))
    lap("concurrent_s", t)
    result.figures["deliveries_flushed"] = project.flush_deliveries()
    # Deliveries answered >= 500 are retried on the sandbox's schedule: give them the time.
    poll(
        lambda: not project.query("SELECT 1 FROM shop_order WHERE status != 'paid' LIMIT 1"),
        timeout=20,
    )
    attempted = args.sequential + len(crowd) * args.per_buyer
    result.figures.update(sequential=args.sequential, buyers=len(crowd), per_buyer=args.per_buyer)
    flows = sorted(traffic.flows)
    result.figures["step_ms"] = traffic.step_times(traffic.responses[:in_a_row])
    result.figures["step_ms_concurrent"] = traffic.step_times(traffic.responses[in_a_row:])
    say("  median / p95 / max ms per step, in a row: " + json.dumps(result.figures["step_ms"]))
    say("  … and with concurrent buyers: " + json.dumps(result.figures["step_ms_concurrent"]))
    result.figures.update(
        payments_attempted=attempted,
        payments_completed=len(flows),
        paid_pages=traffic.paid_pages,
        flow_median_ms=round(statistics.median(flows) * 1000) if flows else None,
        flow_p95_ms=round(flows[int(0.95 * (len(flows) - 1))] * 1000) if flows else None,
        flow_max_ms=round(flows[-1] * 1000) if flows else None,
    )
    result.check(
        "payments completed (buy → hosted page → thanks)",
        f"{len(flows)}/{attempted}",
        len(flows) == attempted,
    )
    for error in traffic.errors[:5]:
        say(f"    {error}")
    result.check(
        "thanks pages saying paid",
        f"{traffic.paid_pages}/{len(flows)} shown ({attempted} payments attempted)",
        traffic.paid_pages == len(flows) == attempted,
    )
    for url in traffic.pending_pages[:5]:
        say(f"    said pending: {url}")


def refund_through_admin(
    project: Project, traffic: Traffic, result: Result, *, celery: bool
) -> None:
    rows = project.query(
        "SELECT p.id, o.id, p.amount FROM shop_order o "
        "JOIN django_plugipay_payment p ON p.checkout_session_id = o.checkout_session_id "
        "WHERE p.status = 'succeeded' ORDER BY o.id LIMIT 1"
    )
    if not rows:
        result.check("a paid order to refund", "none", False)
        return
    payment_id, order_id, amount = rows[0]
    staff = Browser(project, traffic, project.login("admin"))
    staff.log_in("/admin/login/")
    page_url = f"{project.site_url}/admin/django_plugipay/payment/{payment_id}/refund/"
    page = staff.get(page_url)
    partial = amount // 2
    response = staff.post(
        page_url,
        {
            "post": "yes",
            "amount": str(partial),
            "reason": "requested_by_customer",
            "description": "",
        },
    )
    landing = (
        staff.get(project.site_url + response.headers["Location"])
        if response.is_redirect
        else response
    )
    messages = (
        [
            re.sub(r"<[^>]+>|\s+", " ", m).strip()
            for m in re.findall(r'<ul class="messagelist">(.*?)</ul>', landing.text, re.DOTALL)
        ]
        if response.is_redirect
        else []
    )
    result.check(
        f"admin Refund page for order #{order_id} (GET, confirm POST)",
        f"{page.status_code}, {response.status_code}",
        page.status_code == 200 and response.status_code == 302,
    )
    say("    admin says: " + (" | ".join(messages) or "(no message)"))
    result.figures["admin_message"] = " | ".join(messages)

    def refund() -> tuple | None:
        found = project.query(
            "SELECT status, amount, plugipay_id, failure_message FROM django_plugipay_refund "
            "WHERE payment_id = ? ORDER BY id DESC LIMIT 1",
            payment_id,
        )
        return found[0] if found else None

    if not celery:
        row = poll(lambda: (r := refund()) and r[0] in ("succeeded", "failed") and r, timeout=20)
        row = row or refund()
        result.figures["refund"] = row[0] if row else None
        result.check("refund succeeded (no Celery app)", row, bool(row) and row[0] == "succeeded")
        return
    row = refund()
    result.figures["refund_while_broker_down"] = row[0] if row else None
    result.check(
        "refund requested while the broker is down", row, bool(row) and row[0] == "requested"
    )
    shown = " ".join(messages + [str(row[3] if row else "")])
    result.check(
        "the reason is shown to staff",
        bool(re.search(r"broker|celery|queue|plugipay_sync|connect", shown, re.IGNORECASE)),
        bool(re.search(r"broker|celery|queue|plugipay_sync|connect", shown, re.IGNORECASE)),
    )
    t = time.monotonic()
    sync = project.manage("plugipay_sync", check=False)
    say("    plugipay_sync: " + " | ".join(sync.stdout.strip().splitlines()[-2:]))
    row = poll(lambda: (r := refund()) and r[0] in ("succeeded", "failed") and r, timeout=20)
    row = row or refund()
    result.figures["plugipay_sync_s"] = round(time.monotonic() - t, 2)
    result.figures["refund"] = row[0] if row else None
    result.check(
        "refund succeeded after manage.py plugipay_sync",
        f"exit {sync.returncode}, {row}",
        sync.returncode == 0 and bool(row) and row[0] == "succeeded",
    )


def report_logs(project, traffic, server_log: Path, sandbox_log: Path, result: Result) -> None:
    log = server_log.read_text(errors="replace")
    served = Counter(int(m[2]) for m in REQUEST_LINE.findall(log))
    logged_5xx = [f"{m[0]} {m[1]} {m[2]}" for m in REQUEST_LINE.findall(log) if int(m[2]) >= 500]
    seen_5xx = traffic.server_errors()
    # runserver logs the buyers', staff's and webhooks' requests; add what the sandbox answered.
    sandbox_5xx = [r for r in seen_5xx if not r[1].startswith(project.site_url)]
    locked = locked_count(log)
    if project.log_retries:
        result.figures["transaction_retries"] = len(RETRY.findall(log))
        say(f"    transactions retried after a transient database error: {len(RETRY.findall(log))}")
    result.figures.update(
        requests_served=sum(served.values()),
        requests_by_status=dict(sorted(served.items())),
        webhooks_served=len(re.findall(r'"POST /plugipay/webhook/ ', log)),
        responses_5xx=len(logged_5xx) + len(sandbox_5xx),
        database_locked=locked,
    )
    result.check("responses >= 500 seen by buyers and staff", len(seen_5xx), not seen_5xx)
    result.check(
        "responses >= 500 in the runserver log (incl. webhooks)", len(logged_5xx), not logged_5xx
    )
    for line in Counter(logged_5xx).most_common(5):
        say(f"    {line[1]}× {line[0]}")
    result.check('"database is locked" in the runserver log', locked, locked == 0)
    refused = webhooks_not_2xx(log)
    result.check("webhook deliveries answered other than 2xx", len(refused), not refused)
    for line in Counter(refused).most_common(3):
        say(f"    {line[1]}× {line[0]}")
    reports = error_reports(log)
    result.figures["tracebacks"] = log.count("Traceback (most recent call last):")
    if reports:
        say(f"    {len(reports)} error reports in the runserver log:")
        for (path, error), count in Counter((r[0], r[1]) for r in reports).most_common(8):
            say(f"      {count}× {path}: {error[:150]}")
        path, error, frames = reports[0]
        say(f"    the first, {path}, through django_plugipay and the shop:")
        for frame in frames[-8:]:
            say(f"      {frame[:200]}")
    sandbox = sandbox_log.read_text(errors="replace")
    failed = re.findall(r"^.*delivery \S+ of \S+ .* failed: .*$", sandbox, re.MULTILINE)
    result.figures["failed_deliveries"] = len(failed)
    result.check("failed webhook deliveries on the sandbox's console", len(failed), not failed)
    for line in failed[:5]:
        say(f"    sandbox: {line[:240]}")


def webhooks_not_2xx(log: str) -> list[str]:
    """The webhook's answers in a server's output that were not 2xx (a redirect to a login
    page, a 4xx, a 5xx): each one is a delivery Plugipay counts as failed."""
    return [
        f"{m[0]} {m[1]} {m[2]}"
        for m in REQUEST_LINE.findall(log)
        if m[1].startswith("/plugipay/webhook/") and not m[2].startswith("2")
    ]


def locked_count(log: str) -> int:
    """How often "database (table) is locked" occurs in a server's output, not counting the
    system checks' own advice about it (printed at startup)."""
    checks = re.compile(
        r"^System check identified some issues:$.*?^System check identified", re.M | re.S
    )
    return len(LOCKED.findall(checks.sub("", log)))


def error_reports(log: str) -> list[tuple[str, str, list[str]]]:
    """Django's "Internal Server Error" reports: the path (its digits as N), the exception
    and the frames (file, line, code) in django_plugipay or the shop, outermost first."""
    reports = []
    for block in log.split("Internal Server Error: ")[1:]:
        end = REQUEST_LINE.search(block)
        lines = block[: end.start() if end else None].splitlines()
        errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception)\b", ln)]
        frames = []
        for n, line in enumerate(lines):
            found = re.match(r'\s*File "(.+)", line (\d+), in (\S+)', line)
            if found and re.search(r"django_plugipay/|shop/", found[1]):
                code = lines[n + 1].strip() if n + 1 < len(lines) else ""
                where = re.sub(r".*/(django_plugipay|shop)/", r"\1/", found[1])
                frames.append(f"{where}:{found[2]} {found[3]}: {code}")
        path = re.sub(r"\d+", "N", lines[0].split("?")[0]) if lines else "?"
        reports.append((path, errors[-1] if errors else "?", frames))
    return reports


def report_orders(project: Project, result: Result, server_log: Path) -> None:
    orders = project.query("SELECT id, status FROM shop_order")
    # Receipts are console emails: from runserver, or from the db_worker that ran them.
    logs = [
        server_log,
        *([project.build.logs["db_worker"]] if "db_worker" in project.build.logs else []),
    ]
    text = "".join(log.read_text(errors="replace") for log in logs)
    receipts = Counter(int(n) for n in RECEIPT.findall(text))
    succeeded = dict(
        project.query(
            "SELECT o.id, COUNT(p.id) FROM shop_order o LEFT JOIN django_plugipay_payment p "
            "ON p.checkout_session_id = o.checkout_session_id AND p.status = 'succeeded' "
            "GROUP BY o.id"
        )
    )
    failed_events = project.query(
        "SELECT COUNT(*) FROM django_plugipay_webhookevent WHERE status = 'failed'"
    )[0][0]
    paid = sum(status == "paid" for _, status in orders)
    once = sum(receipts[pk] == 1 for pk, _ in orders)
    result.figures.update(
        orders=len(orders),
        orders_paid=paid,
        orders_paid_once=once,
        receipts=sum(receipts.values()),
        failed_webhook_events=failed_events,
    )
    result.check("orders paid", f"{paid}/{len(orders)}", paid == len(orders) > 0)
    result.check(
        "orders with exactly one receipt (receiver ran once)",
        f"{once}/{len(orders)}; receipts sent {sum(receipts.values())}",
        once == len(orders) and sum(receipts.values()) == len(orders),
    )
    wrong = {pk: n for pk, n in succeeded.items() if n != 1}
    result.check(
        "orders with exactly one succeeded payment",
        f"{len(orders) - len(wrong)}/{len(orders)}",
        not wrong,
    )
    result.check("webhook events left failed", failed_events, failed_events == 0)


def figures_markdown(results: list[Result]) -> str:
    """The figures as the Markdown table the tutorial includes."""
    import django

    columns = {
        "no-celery": "No Celery app",
        "broker-down": "Celery app, broker down",
        "django-tasks": "django.tasks, db_worker",
    }

    def steps(name: str) -> str:
        return lambda f: f"{f['step_ms'][name]} ms; at once: {f['step_ms_concurrent'][name]} ms"

    rows = [
        ("the tutorial's test, runs passed", lambda f: f.get("tutorial_test_passes", "not run")),
        (
            "card payments completed",
            lambda f: (
                f"{f['payments_completed']}/{f['payments_attempted']}: {f['sequential']} in a row "
                f"in {f['sequential_s']} s, {f['buyers']} buyers × {f['per_buyer']} at once in "
                f"{f['concurrent_s']} s"
            ),
        ),
        ('thanks pages saying "paid"', lambda f: f"{f['paid_pages']}/{f['payments_completed']}"),
        (
            "responses ≥ 500 (to buyers, staff and webhooks)",
            lambda f: f"{f['responses_5xx']} of {f['requests_served']}",
        ),
        ('"database is locked" in the server\'s output', lambda f: f["database_locked"]),
        (
            "orders paid, each exactly once (one receipt)",
            lambda f: f"{f['orders_paid_once']}/{f['orders']}",
        ),
        ("webhooks delivered", lambda f: f["webhooks_served"]),
        ("Buy (customer, checkout session), median / p95 / max: in a row", steps("buy")),
        ("thanks page (with its sync), median / p95 / max: in a row", steps("thanks")),
        (
            "the admin refund",
            lambda f: (
                f"{f['refund_while_broker_down']} with the reason shown, then {f['refund']} "
                "after `manage.py plugipay_sync`"
                if "refund_while_broker_down" in f
                else f"{f['refund']}, sent in the request"
            ),
        ),
        ("the whole run, from `startproject`", lambda f: f"{f['total_s']} s"),
    ]
    head = "| | " + " | ".join(columns[r.mode] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for label, value in rows:
        cells = []
        for result in results:
            try:
                cells.append(str(value(result.figures)))
            except KeyError:
                cells.append("–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    when = time.strftime("%Y-%m-%d", time.gmtime())
    version = ".".join(map(str, sys.version_info[:2]))
    lines.append("")
    lines.append(
        f"`scripts/stock_project.py` on {when}: Python {version}, Django {django.get_version()}, "
        f"{os.cpu_count()} cores shared with other work (load average {os.getloadavg()[0]:.1f} "
        "at the end); the durations vary with that load."
    )
    return "\n".join(lines) + "\n"


# ── main ───────────────────────────────────────────────────────────────────────────────


#: payments per run: the modes' defaults, and the matrix's (one short run per variant)
MODE_COUNTS = {"sequential": 20, "buyers": 5, "per_buyer": 4}
MATRIX_COUNTS = {"sequential": 3, "buyers": 2, "per_buyer": 1}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode", choices=("no-celery", "broker-down", "django-tasks", "both", "all"), default="all"
    )
    parser.add_argument(
        "--ports",
        default=os.environ.get("STOCK_PORTS", "18100-18199"),
        help="range of loopback ports to use (default %(default)s)",
    )
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="run the no-celery flow once per project-settings variant instead of the modes "
        f"(fewer payments each: {MATRIX_COUNTS['sequential']} in a row, "
        f"{MATRIX_COUNTS['buyers']} buyers × {MATRIX_COUNTS['per_buyer']} at once, unless given)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="with --matrix: the variants to run, comma-separated (default: all)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("STOCK_POSTGRES_URL"),
        help="with --matrix: a PostgreSQL server URL for the PostgreSQL variants (a fresh "
        "database named after it is created and dropped for each); without it they are skipped",
    )
    parser.add_argument("--sequential", type=int, help="payments in a row (default 20)")
    parser.add_argument("--buyers", type=int, help="concurrent buyers (default 5)")
    parser.add_argument("--per-buyer", type=int, help="payments per concurrent buyer (default 4)")
    parser.add_argument("--test-runs", type=int, default=2, help="runs of the tutorial's test")
    parser.add_argument(
        "--test-modes",
        default="no-celery",
        help="modes that run the tutorial's test (comma-separated)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--figures-md",
        type=Path,
        help="write the figures as a Markdown table (docs/tutorial/stock_project_figures.md; "
        "the pages that show it are refreshed)",
    )
    parser.add_argument(
        "--log-retries",
        action="store_true",
        help="also add LOGGING that shows (and counts) django-plugipay's transaction retries",
    )
    parser.add_argument("--keep", action="store_true", help="keep the projects and their logs")
    args = parser.parse_args(argv)
    for name, count in (MATRIX_COUNTS if args.matrix else MODE_COUNTS).items():
        if getattr(args, name) is None:
            setattr(args, name, count)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    args.first_port, args.last_port = (int(p) for p in args.ports.split("-"))
    args.test_modes = args.test_modes.split(",")
    return args


def run_matrix(args: argparse.Namespace, workdir: Path) -> list[Result]:
    results = []
    for name in args.variants:
        variant = VARIANTS[name]
        if not variant.postgres:
            results.append(run_mode("no-celery", args, workdir, variant))
        elif args.postgres:
            with fresh_postgres_database(args.postgres, f"stock_{os.getpid()}") as url:
                results.append(run_mode("no-celery", args, workdir, variant, url))
        else:
            say(f"\n=== variant {name}: skipped (no --postgres URL)")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    groups = {
        "both": ["no-celery", "broker-down"],
        "all": ["no-celery", "broker-down", "django-tasks"],
    }
    modes = groups.get(args.mode, [args.mode])
    workdir = Path(tempfile.mkdtemp(prefix="plugipay-stock-"))
    results = (
        run_matrix(args, workdir)
        if args.matrix
        else [run_mode(mode, args, workdir) for mode in modes]
    )
    say("\n=== figures")
    for result in results:
        say(f"{result.mode}: " + json.dumps(result.figures))
    if args.json:
        args.json.write_text(json.dumps({r.mode: r.figures for r in results}, indent=2) + "\n")
    if args.figures_md and not args.matrix:
        args.figures_md.write_text(figures_markdown(results))
        doc_steps.sync(write=True)  # the pages that show docs/tutorial/stock_project_figures.md
    failed = [(r.mode, name, value) for r in results for name, value, ok in r.checks if not ok]
    say("\n=== " + ("every check passed" if not failed else f"{len(failed)} checks FAILED:"))
    for mode, name, value in failed:
        say(f"  {mode}: {name}: {value}")
    if not failed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
