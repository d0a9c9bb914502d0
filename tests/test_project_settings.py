"""A real project's own settings: USE_TZ = False in any TIME_ZONE, ATOMIC_REQUESTS, a custom
user model with a UUID primary key and e-mail login."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import zoneinfo
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import checks
from django.utils import timezone
from django.utils.formats import date_format

from django_plugipay import datetimes, services
from django_plugipay.admin.display import instructions_html
from django_plugipay.checks import check_database, check_webhook_reachable
from django_plugipay.models import CheckoutSession, WebhookEvent
from tests.test_doctor import doctor, line
from tests.test_end_to_end import start
from tests.test_webhook_view import completed, post


def local(instant: str, zone: str) -> dt.datetime:
    """Plugipay's UTC instant as the naive wall-clock time of ``zone``."""
    moment = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)


@pytest.mark.parametrize("zone", ["Asia/Jakarta", "America/Sao_Paulo"])
def test_without_use_tz_every_time_is_the_local_time_of_plugipays_instant(
    plugipay_sandbox, settings, zone, admin_client
):
    settings.USE_TZ, settings.TIME_ZONE = False, zone
    session = start()
    plugipay_sandbox.pay(session)
    session.refresh_from_db()
    remote = plugipay_sandbox.state()
    [remote_session] = [s for s in remote["sessions"] if s["id"] == session.plugipay_id]
    [remote_payment] = [p for p in remote["payments"] if p["id"] == session.payment.plugipay_id]
    assert session.status == "completed"
    assert session.expires_at == local(remote_session["expiresAt"], zone)
    assert session.completed_at == local(remote_session["completedAt"], zone)
    for event in WebhookEvent.objects.all():
        [sent] = [e for e in plugipay_sandbox.events() if e["id"] == event.event_id]
        assert event.occurred_at == local(sent["occurredAt"], zone)
    # Times the app stamps itself are this project's local times too (what now() returns).
    assert abs(session.synced_at - timezone.now()) < dt.timedelta(minutes=1)
    assert session.payment.status == "succeeded"
    assert session.payment.paid_at == local(remote_payment["paidAt"], zone)
    # Reconciliation keeps its cursor in the same convention (it compares and sends it).
    assert services.reconcile().events_failed == 0
    assert services.reconcile().events_failed == 0
    # The admin shows these times (and the activity list) as they are: local times.
    page = admin_client.get(f"/admin/django_plugipay/checkoutsession/{session.pk}/change/")
    assert page.status_code == 200 and "plugipay-activity" in page.content.decode()
    assert date_format(session.completed_at, "DATETIME_FORMAT") in page.content.decode()


def test_without_use_tz_pending_instructions_show_the_local_time(plugipay_sandbox, settings):
    settings.USE_TZ, settings.TIME_ZONE = False, "Asia/Jakarta"
    session = start()
    plugipay_sandbox.start_async(session, "va")
    session = CheckoutSession.objects.get(pk=session.pk)
    expires = session.instructions.expires_at
    remote = plugipay_sandbox.state()
    [payment] = [p for p in remote["payments"] if p["checkoutSessionId"] == session.plugipay_id]
    instant = payment["instructions"]["expiresAt"]
    assert expires == local(instant, "Asia/Jakarta")
    shown = instructions_html(session.instructions)
    assert date_format(local(instant, "Asia/Jakarta"), "DATETIME_FORMAT") in shown
    assert date_format(local(instant, "UTC"), "DATETIME_FORMAT") not in shown


# ── the webhook behind a project's middleware ─────────────────────────────────────────

LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"
LOGIN_EVERYWHERE = "tests.middleware.LoginEverywhereMiddleware"


@pytest.mark.django_db
def test_login_required_middleware_lets_webhooks_in(client, settings, caplog):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED]
    assert client.get("/plugipay/billing/portal/").status_code == 302  # it is in force
    response = post(client, completed())
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.get().status == "processed"
    caplog.clear()
    assert check_webhook_reachable() == []
    assert caplog.records == []  # the probe's expected 401 is not logged at start-up


@pytest.mark.django_db(transaction=True)
def test_atomic_requests_leave_the_webhook_its_own_transactions(client, settings):
    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    try:
        assert post(client, completed()).status_code == 200
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    assert CheckoutSession.objects.get().status == "completed"


def test_a_webhook_behind_a_login_is_a_check_warning(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_EVERYWHERE]
    [warning] = check_webhook_reachable()
    assert warning.id == "django_plugipay.W050"
    assert "answered 302 to /accounts/login/ — is the webhook URL behind a login?" in warning.msg
    assert "Exempt the webhook path" in warning.hint


def test_a_webhook_redirected_elsewhere_is_named_too(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.MIDDLEWARE = ["tests.middleware.InsecureRequestsMiddleware", *settings.MIDDLEWARE]
    [warning] = check_webhook_reachable()
    assert re.search(r"answered 301 to https://[\w.]+/plugipay/webhook/ ", warning.msg)
    assert "does not follow redirects" in warning.msg


def test_the_doctor_names_the_login_in_front_of_the_webhook(plugipay_sandbox, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_EVERYWHERE]
    status, output = doctor()
    report = line(output, "webhook URL")
    assert status != 0 and report.startswith("[FAIL]")
    assert "answered 302 to /accounts/login/ — is the webhook URL behind a login?" in report
    assert "fix: Exempt the webhook path" in report


# ── ATOMIC_REQUESTS ─────────────────────────────────────────────────────────────────


def sqlite(**config):
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3", **config}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")  # only read by the check
def test_atomic_requests_on_sqlites_default_mode_is_an_error_naming_the_fix(settings):
    settings.DATABASES = {"default": sqlite(ATOMIC_REQUESTS=True)}
    [error] = check_database()
    assert error.id == "django_plugipay.E050" and error.level == checks.ERROR
    assert error.hint.startswith(
        """Add "OPTIONS": {"transaction_mode": "IMMEDIATE"} to DATABASES['default']"""
    )
    settings.DATABASES = {
        "default": sqlite(ATOMIC_REQUESTS=True, OPTIONS={"transaction_mode": "IMMEDIATE"})
    }
    assert check_database() == []
    settings.DATABASES = {"default": sqlite()}
    assert [m.id for m in check_database()] == ["django_plugipay.W004"]


# ── a custom user model ─────────────────────────────────────────────────────────────


def test_a_custom_user_model_with_a_uuid_key_and_email_login():
    """tests/test_uuid_users.py under settings whose AUTH_USER_MODEL is swapped (a test
    database is made per user model, so it runs in a process of its own)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "--ds=tests.settings_uuid_users",
            str(Path(__file__).with_name("test_uuid_users.py")),
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]  # not all skipped: the model is swapped


def subprocess_env() -> dict[str, str]:
    """This environment for a pytest of its own: on PostgreSQL its test database is named
    apart, so neither run drops the other's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if env.get("DATABASE_URL"):
        parts = urlsplit(env["DATABASE_URL"])
        env["DATABASE_URL"] = parts._replace(path=parts.path.rstrip("/") + "_uuid_users").geturl()
    return env


def test_times_sent_to_plugipay_are_utc_whatever_the_convention(settings):
    """A naive time (the project's own, USE_TZ = False) is local to TIME_ZONE: a pause's
    resumeAt or reconcile's occurredAfter reach Plugipay as the right UTC instant."""
    settings.USE_TZ, settings.TIME_ZONE = False, "Asia/Jakarta"
    assert datetimes.to_api(dt.datetime(2026, 12, 5, 7, 0)) == "2026-12-05T00:00:00Z"
    assert datetimes.parse("2026-12-05T00:00:00Z") == dt.datetime(2026, 12, 5, 7, 0)
    assert datetimes.parse("2026-12-05T00:00:00") == dt.datetime(2026, 12, 5, 7, 0)
    assert datetimes.parse("yesterday") is None and datetimes.parse(None) is None
    settings.USE_TZ = True
    aware = datetimes.parse("2026-12-05T00:00:00Z")
    assert aware == dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc)
    assert datetimes.to_api(aware) == "2026-12-05T00:00:00Z"


@pytest.mark.django_db
def test_without_use_tz_the_payment_of_a_session_or_an_invoice_keeps_its_time(client, settings):
    """The Payment a completed session or a paid invoice makes carries that row's time as the
    same instant (not its local wall-clock time read as UTC)."""
    from django_plugipay.models import Payment
    from django_plugipay.testing import build_event
    from tests.test_specs import VALID
    from tests.test_specs import post as post_event

    settings.USE_TZ, settings.TIME_ZONE = False, "Asia/Jakarta"
    for name in ("customer", "checkout_session", "plan", "price", "subscription", "invoice"):
        response = post_event(client, build_event(f"{name}.updated", VALID[name]))
        assert response.status_code == 200, (name, response.content)
    seven_am = local("2026-01-01T00:00:00Z", "Asia/Jakarta")
    assert VALID["checkout_session"]["completedAt"] == VALID["invoice"]["paidAt"]
    assert Payment.objects.get(plugipay_id="pay_v").paid_at == seven_am
    assert Payment.objects.get(plugipay_id="pay_inv_v").paid_at == seven_am


def test_without_use_tz_a_resubmitted_confirmation_names_the_local_time(
    plugipay_sandbox, settings, admin_client
):
    from tests.test_async_payments import start as start_async

    settings.USE_TZ, settings.TIME_ZONE = False, "Asia/Jakarta"
    session = start_async()
    plugipay_sandbox.claim(session)
    url = f"/admin/django_plugipay/checkoutsession/{session.pk}/confirm/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    again = admin_client.post(url, {"post": "yes"}, follow=True)
    session.refresh_from_db()
    assert timezone.is_naive(session.confirmed_at)
    when = date_format(session.confirmed_at, "DATETIME_FORMAT")
    assert f"was already confirmed ({when})" in again.content.decode()
