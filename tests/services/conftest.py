"""Fixtures for the service-backed suite: PostgreSQL, a real Celery worker on Redis, Chromium."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from django_plugipay.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/services/" in str(item.fspath):
            item.add_marker(pytest.mark.services)
            # real workers apply the events and send the refunds: the sandbox fixture keeps
            # the project's task settings (tests/celery.py's app) instead of working inline
            item.add_marker(pytest.mark.plugipay_worker)


def missing(reason: str) -> None:
    """Skip a test whose service is missing, or fail it where the services are required
    (``make test-services`` sets PLUGIPAY_REQUIRE_SERVICES: a skip there would hide a gap)."""
    if os.environ.get("PLUGIPAY_REQUIRE_SERVICES"):
        pytest.fail(f"{reason} (PLUGIPAY_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


@pytest.fixture
def postgres(transactional_db):
    if connection.vendor != "postgresql":
        missing("needs PostgreSQL: run `make test-services`")


class ProcessGroup:
    """A worker process started in its own process group (``self.proc``), stopped with it."""

    proc: subprocess.Popen | None = None

    def kill(self):
        """SIGKILL the worker and its pool children, as a crashed machine would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class Worker(ProcessGroup):
    """A `celery worker` subprocess on Redis, sharing the suite's PostgreSQL test database."""

    def __init__(self, env, log_path, extra_args=()):
        self.env, self.log_path, self.proc = env, log_path, None
        self.extra_args = list(extra_args)
        self.name = f"plugipay-test-{os.getpid()}@{socket.gethostname()}"

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery",
                "worker",
                "-l",
                "info",
                "-c",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                self.name,
                *self.extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.ready, timeout=120, interval=0.2, message="the Celery worker to start")

    def ready(self) -> bool:
        """The worker answers a ping on the broker (its own report, not its log wording)."""
        from tests.celery import app

        return bool(app.control.ping(destination=[self.name], timeout=0.5))

    def beats(self, count, timeout=30):
        """Wait until the worker ran ``count`` more scheduled ``run_deliveries`` tasks."""

        def ran():
            text = self.log_path.read_text(errors="replace")
            return text.count("Task django_plugipay.run_deliveries[")

        target = ran() + count
        wait_for(lambda: ran() >= target, timeout=timeout, message=f"{count} beats")
        return count


def worker_env(sandbox, signal_log, queue, broker=BROKER, **extra):
    """The environment of a worker joining this test's database, sandbox and signal log."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": broker,
        "PLUGIPAY_BASE_URL": sandbox.base_url,
        "PLUGIPAY_TEST_DB_NAME": connection.settings_dict["NAME"],
        "PLUGIPAY_MAX_RETRIES": "0",
        "PLUGIPAY_TIMEOUT": "3",
        "PLUGIPAY_SIGNAL_LOG": str(signal_log.path),
        "PLUGIPAY_TEST_QUEUE": queue,
        **extra,
    }


@pytest.fixture
def celery_worker(postgres, plugipay_sandbox, signal_log, tmp_path):
    """A worker sharing this test's database and sandbox; its committed signals reach
    ``signal_log`` through the file the recorder names.

    The worker consumes this session's queue only (``tests/celery.py``), so two copies of the
    suite can share one Redis database.
    """
    import redis

    if not os.environ.get("CELERY_BROKER_URL"):
        missing("needs CELERY_BROKER_URL: run `make test-services`")
    from tests.celery import app

    queue = app.conf.task_default_queue
    broker = redis.Redis.from_url(BROKER)
    broker.delete(queue)
    worker = Worker(worker_env(plugipay_sandbox, signal_log, queue), tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()
    broker.delete(queue)


@pytest.fixture
def celery_beat_worker(postgres, plugipay_sandbox, signal_log, tmp_path):
    """A worker with beat embedded (``-B``), running ``django_plugipay.run_deliveries`` every
    second as the documented schedule does (every minute) in production."""
    import redis

    if not os.environ.get("CELERY_BROKER_URL"):
        missing("needs CELERY_BROKER_URL: run `make test-services`")
    from tests.celery import app

    queue = app.conf.task_default_queue
    broker = redis.Redis.from_url(BROKER)
    broker.delete(queue)
    env = {**worker_env(plugipay_sandbox, signal_log, queue), "PLUGIPAY_TEST_BEAT": "1"}
    beat = ["-B", "-s", str(tmp_path / "beat-schedule")]
    worker = Worker(env, tmp_path / "worker.log", extra_args=beat)
    worker.start()
    yield worker
    worker.stop()
    broker.delete(queue)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        missing("needs Debian's chromium package (`apt-get install chromium`)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in these tests
    # are ordinary synchronous calls between page actions.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    """Open a page in a fresh browser context; every context is closed after the test."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page(viewport={"width": 1280, "height": 900})


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
