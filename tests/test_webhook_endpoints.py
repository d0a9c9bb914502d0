"""``manage.py plugipay_webhooks`` against the sandbox: list, create with exactly the handled
events, rotate the secret under continuous delivery (0 refused), enable/disable/delete; and a
disabled endpoint is loud (signal once, doctor line, system check, admin banner)."""

from __future__ import annotations

import io
import os
import threading

import pytest
from django.core.management import CommandError, call_command, load_command_class

from django_plugipay.checks import check_webhook_endpoint
from django_plugipay.client import get_client
from django_plugipay.models import Customer, WebhookEvent
from django_plugipay.services.webhook_endpoints import TEST_EVENT_TYPE, handled_event_types
from django_plugipay.signals import webhook_endpoint_disabled
from django_plugipay.testing import RETRY_SCHEDULE, wait_for
from tests.test_doctor import doctor, line

WRONG_SECRET = "whsec_not_the_endpoints"


def webhooks(*args) -> str:
    out = io.StringIO()
    call_command("plugipay_webhooks", *args, stdout=out)
    return out.getvalue()


def endpoints(sandbox) -> list[dict]:
    return sandbox.state()["endpoints"]


def secret_in(env_file) -> list[str]:
    last = [ln for ln in env_file.read_text().splitlines() if ln.startswith("PLUGIPAY_")][-1]
    return last.split("=", 1)[1].split(",")


def test_handled_events_are_the_specs_and_the_notices():
    types = handled_event_types()
    assert "plugipay.payment.succeeded.v1" in types
    assert "plugipay.webhook_endpoint.disabled.v1" in types
    assert len(types) == len(set(types))


def test_list_marks_this_site(plugipay_sandbox):
    get_client().create_webhook_endpoint(url="https://elsewhere.example/hook")
    output = webhooks("list")
    assert output.count("(this site)") == 1 and "elsewhere.example" in output
    assert "failures: 0" in output
    exact = webhooks("list", "--site-url", "https://elsewhere.example")
    assert [ln for ln in exact.splitlines() if "(this site)" in ln] == []  # path differs


def test_create_with_the_handled_events_and_the_secret_in_a_env_file(plugipay_sandbox, tmp_path):
    env = tmp_path / ".env"
    output = webhooks("create", "--site-url", "https://shop.example", "--env-file", str(env))
    assert "Created whep_" in output and "whsec_" not in output  # written, not printed
    [created] = [e for e in endpoints(plugipay_sandbox) if "shop.example" in e["url"]]
    assert created["url"] == "https://shop.example/plugipay/webhook/"
    assert created["events"] == [*handled_event_types(), TEST_EVENT_TYPE]
    assert secret_in(env)[0].startswith("whsec_")
    with pytest.raises(CommandError, match="registered already"):
        webhooks("create", "--site-url", "https://shop.example")
    printed = webhooks("create", "--site-url", "https://other.example")
    assert "PLUGIPAY_WEBHOOK_SECRET=whsec_" in printed  # printed once when no file is given


def test_create_without_a_site_url_says_what_to_pass(plugipay_sandbox):
    with pytest.raises(CommandError, match="--site-url"):
        webhooks("create")


def test_disable_enable_delete(plugipay_sandbox):
    endpoint_id = endpoints(plugipay_sandbox)[0]["id"]
    assert "disabled" in webhooks("disable")
    assert endpoints(plugipay_sandbox)[0]["active"] is False
    assert "active" in webhooks("enable", "--id", endpoint_id)
    assert endpoints(plugipay_sandbox)[0]["active"] is True
    other = get_client().create_webhook_endpoint(url="https://elsewhere.example/hook")["id"]
    with pytest.raises(CommandError, match="pass --id"):
        webhooks("delete", "--site-url", "https://nowhere.example")
    webhooks("delete", "--id", other)
    assert [e["id"] for e in endpoints(plugipay_sandbox)] == [endpoint_id]


def test_finishing_a_rotation_keeps_the_new_secret_the_env_file_holds(
    plugipay_sandbox, settings, tmp_path
):
    """This process never loaded the file (Django reads no .env) and its settings still list
    the old secret first: ``--finish`` keeps the rotation's new one, and each write says the
    settings' own WEBHOOK_SECRETS shadows the file."""
    old = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    env = tmp_path / ".env"
    err = io.StringIO()
    call_command(
        "plugipay_webhooks", "rotate", "--overlap", "1h", "--env-file", str(env),
        stdout=io.StringIO(), stderr=err,
    )  # fmt: skip
    new, kept = secret_in(env)
    assert new != old and kept == old
    assert "is set in your settings, and it wins over PLUGIPAY_WEBHOOK_SECRET" in err.getvalue()
    webhooks("rotate", "--finish", "--env-file", str(env))
    assert secret_in(env) == [new]
    # a line written by hand, shell style, is read too
    env.write_text(f'export PLUGIPAY_WEBHOOK_SECRET="{new},{old}"\n')
    webhooks("rotate", "--finish", "--env-file", str(env))
    assert secret_in(env) == [new]


def test_rotation_under_continuous_delivery_refuses_nothing(plugipay_sandbox, settings, tmp_path):
    old = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    stop = threading.Event()
    client = get_client()

    errors = []

    def deliver_continuously():
        i = 0
        while not stop.is_set():
            try:
                client.create_customer({"email": f"rot{i}@example.com"})
            except Exception as exc:  # the test fails on it below
                errors.append(exc)
                return
            i += 1

    def received() -> int:
        return WebhookEvent.objects.filter(kind="customer.created").count()

    sender = threading.Thread(target=deliver_continuously, daemon=True)
    sender.start()
    try:
        wait_for(lambda: received() >= 3 or errors, message="deliveries before the rotation")
        assert errors == []
        env = tmp_path / ".env"
        webhooks("rotate", "--overlap", "1h", "--env-file", str(env))
        new, kept = secret_in(env)
        assert new != old and kept == old
        start = received()
        wait_for(lambda: received() >= start + 3, message="deliveries signed with both")
        # Deployed: the site accepts both (new first), as the .env line says.
        settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": [new, old]}
        start = received()
        wait_for(lambda: received() >= start + 3, message="deliveries after the deploy")
        plugipay_sandbox.advance(3601)  # the overlap ends: Plugipay signs with the new only
        webhooks("rotate", "--finish", "--env-file", str(env))
        assert secret_in(env) == [new]
        settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": [new]}
        start = received()
        wait_for(lambda: received() >= start + 3, message="deliveries after the overlap")
    finally:
        stop.set()
        sender.join(timeout=30)
    plugipay_sandbox.flush()
    deliveries = plugipay_sandbox.state()["deliveries"]
    attempts = [a for d in deliveries for a in d["attemptLog"]]
    assert len(deliveries) >= 12
    assert [a for a in attempts if a["responseCode"] != 200] == []  # 0 refused
    assert {d["status"] for d in deliveries} == {"succeeded"}


def test_a_disabled_endpoint_is_loud(plugipay_sandbox, settings, client, admin_user):
    sent = []

    def record(sender, instance, event, endpoint, **kwargs):
        sent.append(endpoint["id"])

    webhook_endpoint_disabled.connect(record)
    try:
        right = settings.PLUGIPAY["WEBHOOK_SECRETS"]
        settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": [WRONG_SECRET]}
        api = get_client()
        for i in range(4):  # 4 deliveries × (1 attempt + 4 retries) = 20 failures
            api.create_customer({"email": f"fail{i}@example.com"})
        plugipay_sandbox.flush()
        for seconds in RETRY_SCHEDULE:
            plugipay_sandbox.advance(seconds)
            plugipay_sandbox.flush()
        # 20 failures spanning the compressed schedule's 24 hours: disabled.
        [endpoint] = endpoints(plugipay_sandbox)
        assert endpoint["consecutiveFailures"] == 20 and endpoint["status"] == "errored"
        settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": right}

        # The disabled endpoint hears nothing; reconciliation brings the news and the data.
        call_command("plugipay_sync", verbosity=0)
        assert sent == [endpoint["id"]]
        assert Customer.objects.filter(email__startswith="fail").count() == 4  # mirror right
        call_command("plugipay_sync", verbosity=0)
        assert sent == [endpoint["id"]]  # once

        code, output = doctor()
        assert code == 1 and "[FAIL] disabled endpoint" in line(output, "disabled endpoint")
        assert "plugipay_webhooks enable" in line(output, "disabled endpoint")
        assert "last ran" in line(output, "reconciliation")
        assert [m.id for m in check_webhook_endpoint(databases=["default"])] == [
            "django_plugipay.W032"
        ]
        assert check_webhook_endpoint() == []  # no database asked for: cannot know
        client.force_login(admin_user)
        page = client.get("/admin/django_plugipay/").content.decode()
        assert 'id="plugipay-endpoint-disabled"' in page and endpoint["url"] in page

        webhooks("enable")
        api.create_customer({"email": "back@example.com"})
        plugipay_sandbox.flush()
        assert WebhookEvent.objects.endpoint_disabled() is None  # deliveries resumed
        page = client.get("/admin/django_plugipay/").content.decode()
        assert "plugipay-endpoint-disabled" not in page
    finally:
        webhook_endpoint_disabled.disconnect(record)


def test_the_environment_secret_is_a_comma_separated_list(settings, monkeypatch):
    from django_plugipay.conf import app_settings

    settings.PLUGIPAY = {k: v for k, v in settings.PLUGIPAY.items() if k != "WEBHOOK_SECRETS"}
    monkeypatch.setenv("PLUGIPAY_WEBHOOK_SECRET", "whsec_new, whsec_old")
    assert app_settings.WEBHOOK_SECRETS == ["whsec_new", "whsec_old"]
    monkeypatch.setenv("PLUGIPAY_WEBHOOK_SECRET", "whsec_one")
    assert app_settings.WEBHOOK_SECRETS == ["whsec_one"]


@pytest.fixture
def startup_endpoint_restored(plugipay_sandbox):
    """Put the sandbox's start-up endpoint back after a test that deletes it, whether or not
    a reset does, so the rest of the session still receives webhooks."""
    yield
    from plugipay_sandbox.state import webhooks as family

    store = plugipay_sandbox.server.store
    with store.lock, store.scope(None):
        family._start(store)


def test_the_doctors_test_event_reaches_an_endpoint_made_by_create(
    startup_endpoint_restored, plugipay_sandbox, settings, live_server
):
    """An endpoint registered with ``plugipay_webhooks create`` is subscribed to the doctor's
    test event too, so the doctor's "test event" line passes through it alone."""
    [startup] = endpoints(plugipay_sandbox)
    webhooks("delete", "--id", startup["id"])
    printed = webhooks("create", "--site-url", live_server.url)
    secret = printed.split("PLUGIPAY_WEBHOOK_SECRET=", 1)[1].split()[0]
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": [secret]}
    _code, output = doctor()
    assert line(output, "test event").startswith("[ok]"), line(output, "test event")


def test_the_doctor_names_an_endpoint_not_subscribed_to_its_test_event(
    plugipay_sandbox, live_server
):
    """An endpoint subscribed to other events only never gets the test event: the doctor
    says so and how to subscribe it, instead of blaming the site's address."""
    [startup] = endpoints(plugipay_sandbox)
    get_client().update_webhook_endpoint(startup["id"], events=handled_event_types())
    _code, output = doctor("--wait", "1")
    assert "is not subscribed to plugipay.doctor.ping.v1" in line(output, "test event")
    assert "plugipay_webhooks create" in output


def test_create_beside_another_endpoint_of_this_site_keeps_its_secret(
    plugipay_sandbox, settings, tmp_path
):
    """With another endpoint of this site still active (the sandbox's local URL beside
    --site-url), ``create`` writes the new secret first and keeps the ones accepted now, so
    that endpoint's deliveries still verify."""
    old = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    env = tmp_path / ".env"
    output = webhooks("create", "--site-url", "https://shop.example", "--env-file", str(env))
    assert secret_in(env)[0].startswith("whsec_") and secret_in(env)[1:] == [old]
    assert "stays active" in output


def test_rotate_keeps_the_old_secret_the_env_file_holds(plugipay_sandbox, settings, tmp_path):
    """``rotate --env-file`` writes ``new,old`` with the old secret read from the file when
    the settings have none (the command's shell need not have loaded the file), as
    ``--finish`` reads it."""
    old = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    env = tmp_path / ".env"
    env.write_text(f"PLUGIPAY_WEBHOOK_SECRET={old}\n")
    settings.PLUGIPAY = {k: v for k, v in settings.PLUGIPAY.items() if k != "WEBHOOK_SECRETS"}
    os.environ.pop("PLUGIPAY_WEBHOOK_SECRET", None)
    webhooks("rotate", "--overlap", "1h", "--env-file", str(env))
    assert secret_in(env)[1:] == [old], secret_in(env)


@pytest.mark.parametrize(
    ("overlap", "said"), [("abc", "is not a duration"), ("30d", "longer than 7d")]
)
def test_an_overlap_it_cannot_use_is_a_usage_error(overlap, said, capsys):
    """A mistyped ``--overlap``, or one longer than Plugipay's 7 days, is a usage error
    naming the option (exit status 2), before Plugipay is asked; not a traceback."""
    command = load_command_class("django_plugipay", "plugipay_webhooks")
    with pytest.raises(SystemExit) as exit_status:
        command.run_from_argv(["manage.py", "plugipay_webhooks", "rotate", "--overlap", overlap])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and "--overlap" in err and said in err


def test_a_reset_brings_back_a_deleted_start_up_endpoint(
    startup_endpoint_restored, plugipay_sandbox
):
    """A test that deletes the sandbox's start-up endpoint leaves the next test (after the
    fixture's reset) with it back, as sandbox.md says a reset does."""
    [startup] = endpoints(plugipay_sandbox)
    webhooks("delete", "--id", startup["id"])
    plugipay_sandbox.reset()
    assert [e["url"] for e in endpoints(plugipay_sandbox)] == [startup["url"]]


def test_a_reset_subscribes_the_start_up_endpoint_to_every_event_again(plugipay_sandbox):
    """A test that narrows the start-up endpoint's events leaves the next test (after the
    fixture's reset) with the endpoint subscribed to every event, as it started."""
    [startup] = endpoints(plugipay_sandbox)
    get_client().update_webhook_endpoint(startup["id"], events=handled_event_types())
    plugipay_sandbox.reset()
    assert [e["events"] for e in endpoints(plugipay_sandbox)] == [["*"]]
