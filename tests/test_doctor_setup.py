"""``plugipay_doctor`` on a misconfigured project: one test per mistake, each asserting the exact
fix it names; lines are printed as each check finishes, and a check that crashes is a line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_plugipay.checks import check_settings
from django_plugipay.management.commands import plugipay_doctor
from tests.test_doctor import closed_port, doctor, line

REPO = Path(__file__).resolve().parents[1]


def fix_of(report: str) -> str:
    return report.split("fix: ", 1)[1].strip()


def errors(check_id: str) -> list:
    return [m for m in check_settings() if m.id == check_id]


def test_base_url_without_a_scheme(plugipay_sandbox, settings):
    bare = plugipay_sandbox.base_url.removeprefix("http://")
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": bare}
    status, output = doctor()
    report = line(output, "credentials")
    assert status != 0 and report.startswith("[FAIL]") and "Traceback" not in output
    assert fix_of(report) == f"set PLUGIPAY['BASE_URL'] to '{plugipay_sandbox.base_url}'"
    [error] = errors("django_plugipay.E051")
    assert error.hint == f"Set PLUGIPAY['BASE_URL'] to '{plugipay_sandbox.base_url}'."


def test_base_url_with_the_api_prefix(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": plugipay_sandbox.base_url + "/api/v1"}
    status, output = doctor()
    report = line(output, "credentials")
    assert status != 0 and report.startswith("[FAIL]")
    assert fix_of(report) == (
        f"set PLUGIPAY['BASE_URL'] to '{plugipay_sandbox.base_url}' (API_PREFIX adds /api/v1)"
    )
    [error] = errors("django_plugipay.E052")
    assert "/api/v1/api/v1/events" in error.msg


def test_a_port_where_nothing_listens_while_the_sandbox_runs_on_another(
    plugipay_sandbox, settings, monkeypatch
):
    monkeypatch.setattr(plugipay_doctor, "SANDBOX_URL", plugipay_sandbox.base_url)
    port = closed_port()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": f"http://127.0.0.1:{port}"}
    status, output = doctor()
    report = line(output, "credentials")
    assert status != 0 and report.startswith("[FAIL]") and "is it running?" not in report
    assert fix_of(report) == (
        f"nothing listens on port {port}; a Plugipay sandbox answers at "
        f"{plugipay_sandbox.base_url}: set PLUGIPAY['BASE_URL'] to '{plugipay_sandbox.base_url}'"
    )


def test_a_port_where_nothing_listens_and_no_sandbox_runs(settings, monkeypatch):
    monkeypatch.setattr(plugipay_doctor, "SANDBOX_URL", f"http://127.0.0.1:{closed_port()}")
    port = closed_port()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": f"http://127.0.0.1:{port}"}
    status, output = doctor()
    assert fix_of(line(output, "credentials")) == (
        f"nothing listens on port {port}: start the sandbox there (`python manage.py "
        "plugipay_sandbox` listens on BASE_URL's port), or correct the port in "
        "PLUGIPAY['BASE_URL']"
    )


def test_a_port_where_something_else_listens(plugipay_sandbox, live_server, settings, monkeypatch):
    monkeypatch.setattr(plugipay_doctor, "SANDBOX_URL", plugipay_sandbox.base_url)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": live_server.url}  # this Django site
    status, output = doctor()
    report = line(output, "credentials")
    assert status != 0 and f"something other than Plugipay answers at {live_server.url}" in report
    assert fix_of(report) == (
        f"the port is wrong: a Plugipay sandbox answers at {plugipay_sandbox.base_url}: "
        f"set PLUGIPAY['BASE_URL'] to '{plugipay_sandbox.base_url}'"
    )


def test_a_wrong_secret_does_not_send_the_user_to_the_doctor(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SECRET": "sk_test_wrong"}
    status, output = doctor()
    report = line(output, "credentials")
    assert status != 0 and "['SECRET']" in fix_of(report)
    assert "plugipay_doctor" not in output


def test_a_check_that_crashes_is_its_own_line_and_the_rest_go_on(plugipay_sandbox, monkeypatch):
    def crash(self):
        raise RuntimeError("the clock is made of cheese")

    monkeypatch.setattr(plugipay_doctor.Doctor, "clock", plugipay_doctor._guarded("clock")(crash))
    status, output = doctor()
    report = line(output, "clock")
    assert status != 0 and report.startswith("[FAIL] clock: crashed: RuntimeError: the clock")
    assert "--traceback" in fix_of(report)
    assert line(output, "test event").startswith("[ok]")


def test_lines_are_printed_as_each_check_finishes(plugipay_sandbox):
    plugipay_sandbox.hold()  # the test event never arrives: its line waits --wait seconds

    class Stamped(io.StringIO):
        def __init__(self):
            super().__init__()
            self.at: list[tuple[float, str]] = []

        def write(self, text):
            self.at.append((time.monotonic(), text))
            return super().write(text)

    out = Stamped()
    with pytest.raises(CommandError):
        call_command("plugipay_doctor", "--wait", "1.5", stdout=out)
    [credentials] = [t for t, text in out.at if "credentials:" in text]
    [test_event] = [t for t, text in out.at if "test event:" in text]
    assert test_event - credentials >= 1.4


def test_before_migrate_it_says_run_migrate(plugipay_sandbox, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "PLUGIPAY_BASE_URL": plugipay_sandbox.base_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "plugipay_doctor", "--wait", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    report = line(result.stdout, "database")
    assert report.startswith("[FAIL]") and fix_of(report) == "run `python manage.py migrate`"
    assert line(result.stdout, "credentials").startswith("[ok]")
    assert line(result.stdout, "test event").startswith("[skip]")


@pytest.mark.parametrize(
    ("delivery", "said"),
    [
        (
            {"responseCode": 302, "location": "/accounts/login/?next=/plugipay/webhook/"},
            "answered 302 to /accounts/login/ — is the webhook URL behind a login?",
        ),
        (
            {"responseCode": 301},
            "answered 301, a redirect (to a login page, to https, to a language prefix?)",
        ),
        (
            {
                "responseCode": 301,
                "attemptLog": [{"responseCode": 301, "redirectTo": "https://shop.example/x/"}],
            },
            "answered 301 to https://shop.example/x/ — Plugipay does not follow redirects",
        ),
    ],
)
def test_a_delivery_answered_with_a_redirect(delivery, said):
    """What Plugipay (or a sandbox that does not follow redirects) reports for the test event."""
    doctor = plugipay_doctor.Doctor(url=None, wait=1)
    doctor.endpoint = {"id": "we_1", "url": "https://shop.example/plugipay/webhook/"}
    report = doctor._explain("evt_1", delivery)
    assert report.ok is False and said in report.detail
    assert report.fix.startswith("Exempt the webhook path (plugipay:webhook)")
