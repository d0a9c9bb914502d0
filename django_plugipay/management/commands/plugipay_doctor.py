"""``manage.py plugipay_doctor``: check the whole Plugipay setup, one line each, with the fix."""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import functools
import hmac
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.core.management.base import BaseCommand, CommandError, no_translations
from django.db import DatabaseError, connections, router
from django.db.migrations.executor import MigrationExecutor
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.timesince import timesince
from kombu.utils.url import maybe_sanitize_url

from django_plugipay import accounts
from django_plugipay.checks import (
    REDIRECT_HINT,
    base_url_problem,
    redirect_problem,
    setting_name,
    webhook_redirect,
)
from django_plugipay.client import DOCTOR_ADVICE, SANDBOX_ADVICE, PlugipayClient
from django_plugipay.conf import DEFAULT_ACCOUNT, app_settings
from django_plugipay.exceptions import APIError, PlugipayError
from django_plugipay.models import WebhookEvent
from django_plugipay.services import _queue
from django_plugipay.services.accounts import client_for
from django_plugipay.services.deliveries import delivery_health
from django_plugipay.services.events import event_health
from django_plugipay.services.payouts import left_unanswered
from django_plugipay.services.reconcile import held_at, last_reconciled
from django_plugipay.services.refunds import refunds_not_submitted
from django_plugipay.services.webhook_endpoints import TEST_EVENT_TYPE, is_this_site
from django_plugipay.webhooks import parse_event

RECONCILE_STALE = dt.timedelta(days=1)
#: where ``manage.py plugipay_sandbox`` listens unless told otherwise (the tutorial's address)
SANDBOX_URL = "http://127.0.0.1:8787"
CLOCK_SKEW_LIMIT = 30  # seconds; Plugipay refuses requests and webhooks beyond 300
#: the lines about the default account's Plugipay setup (named with the account once there
#: are several)
REMOTE_CHECKS = ("credentials", "clock", "webhook URL", "webhook endpoint", "test event")
POLL_INTERVAL = 0.2
#: seconds the tasks line waits for Celery workers to answer
WORKER_WAIT = 1.0
#: seconds the tasks line waits for the broker and the workers in all (a broker that accepts
#: the connection and never answers would otherwise hold the doctor)
BROKER_WAIT = 6.0
#: the task a queued webhook sends (its route names the queue a worker must consume)
PENDING_TASK = "django_plugipay.process_pending_events"


@dataclass
class Line:
    name: str
    ok: bool | None  # None: skipped
    detail: str
    fix: str = ""


class Command(BaseCommand):
    help = (
        "Check the Plugipay setup: credentials, clock, the webhook endpoint registered for this "
        "site and one test event delivered end to end. Exits non-zero when something is wrong."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--url",
            help="this site's public webhook URL as registered at Plugipay (default: any "
            "endpoint whose path is this project's webhook path, on a host in ALLOWED_HOSTS)",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=15.0,
            help="seconds to wait for the test event to arrive (default %(default)s)",
        )

    @no_translations  # a developer's report: English whatever LANGUAGE_CODE says
    def handle(self, *args, url=None, wait=15.0, **options) -> None:
        lines, failed = [], []
        for line in Doctor(url=url, wait=wait).run():  # each line as soon as it is known
            self._write(line)
            self.stdout.flush()
            lines.append(line)
            if line.ok is False:
                failed.append(line)
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(lines)} checks failed: "
                + ", ".join(line.name for line in failed)
            )
        self.stdout.write(self.style.SUCCESS("Everything checked is ok."))

    def _write(self, line: Line) -> None:
        if line.ok is None:
            self.stdout.write(f"[skip] {line.name}: {line.detail}")
        elif line.ok:
            self.stdout.write(self.style.SUCCESS("[ok]   ") + f"{line.name}: {line.detail}")
        else:
            self.stdout.write(self.style.ERROR("[FAIL] ") + f"{line.name}: {line.detail}")
            if line.fix:
                self.stdout.write(f"       fix: {line.fix}")


def _guarded(name: str) -> Callable[[Callable[..., Line]], Callable[..., Line]]:
    """A check that raises is reported as its own failed line (the exception's last line),
    and the doctor goes on with the next."""

    def decorate(check: Callable[..., Line]) -> Callable[..., Line]:
        @functools.wraps(check)
        def guarded(self: Doctor) -> Line:
            try:
                return check(self)
            except Exception as exc:
                last = traceback.format_exception_only(type(exc), exc)[-1].strip()
                return Line(name, False, f"crashed: {last}", _crash_fix(exc))

        return guarded

    return decorate


def _within(seconds: float, check: Callable[[], Line], late: Line) -> Line:
    """``check()``'s line, or ``late`` when it has not answered within ``seconds``: it runs in
    a daemon thread, left behind (the command ends without it). What it raises is raised."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((check(), None))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread
            outcome.append((None, exc))

    thread = threading.Thread(target=run, name="plugipay-doctor-check", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        return late
    line, exc = outcome[0]
    if exc is not None:
        raise exc
    return line


def _crash_fix(exc: Exception) -> str:
    if isinstance(exc, DatabaseError) and re.search(
        r"no such table|does not exist|doesn't exist", str(exc), re.IGNORECASE
    ):
        return "run `python manage.py migrate`"
    return "re-run with --traceback for the whole traceback, and report it if it is ours"


class Doctor:
    """The checks, in order; each later check is skipped when what it needs failed."""

    def __init__(self, *, url: str | None, wait: float) -> None:
        self.url, self.wait = url, wait
        self.client: PlugipayClient | None = None
        self.endpoint: dict | None = None

    def run(self):
        database = self.database()
        yield database
        aliases = [alias for alias in app_settings.ACCOUNTS if alias != DEFAULT_ACCOUNT]
        for line in self.remote(database):
            if aliases and line.name in REMOTE_CHECKS:  # several accounts: say whose line it is
                line.name = f"{line.name} [{DEFAULT_ACCOUNT}]"
            yield line
        for alias in aliases:
            yield from self.account(alias)
        yield self.tasks()
        if database.ok:
            yield self.deliveries()
            yield self.events()
            yield self.unanswered_payouts()
            yield self.stuck_refunds()
            yield self.reconciliation()
            yield self.disabled_endpoint()
        else:
            for name in (
                "deliveries",
                "events",
                "payouts",
                "refunds",
                "reconciliation",
                "disabled endpoint",
            ):
                yield Line(name, None, "needs this project's database migrated")

    @_guarded("reconciliation")
    def reconciliation(self) -> Line:
        try:
            last = last_reconciled()
        except DatabaseError as exc:
            return Line("reconciliation", None, f"the database cannot be read ({exc})")
        fix = (
            "schedule `manage.py plugipay_sync` (cron, every 10 minutes) or the "
            "django_plugipay.reconcile task (celery beat); see 'Periodic work without beat' in "
            "docs/how-to/celery.md"
        )
        if last is None:  # a new project: not a failure yet, but say what to schedule
            return Line("reconciliation", None, f"has never run: {fix}")
        age = timezone.now() - last
        detail = f"last ran {timesince(last)} ago ({last.isoformat(timespec='seconds')})"
        if age > RECONCILE_STALE:
            return Line("reconciliation", False, detail, fix)
        held = held_at()
        since = held.occurred_at if held is not None else None
        if held is not None and since is not None and since < timezone.now() - RECONCILE_STALE:
            # a failure that lasts: every run reads the log again from that event
            return Line(
                "reconciliation",
                False,
                f"{detail}, but every run reads the events again from {held.event_id} "
                f"({held.kind}, {since.isoformat(timespec='seconds')}), which fails: "
                f"{held.last_error[:300] or 'no error recorded'}",
                f"fix the cause (Plugipay › Webhook events shows the error), then "
                f"`manage.py plugipay_replay {held.event_id}`; once it applies, the next run "
                "moves on",
            )
        return Line("reconciliation", True, detail)

    @_guarded("disabled endpoint")
    def disabled_endpoint(self) -> Line:
        try:
            event = WebhookEvent.objects.endpoint_disabled()
        except DatabaseError as exc:
            return Line("disabled endpoint", None, f"the database cannot be read ({exc})")
        if event is None:
            return Line(
                "disabled endpoint",
                True,
                "Plugipay has disabled none, or webhooks have arrived since it did",
            )
        endpoint = parse_event(event.payload).object
        return Line(
            "disabled endpoint",
            False,
            f"Plugipay disabled {endpoint.get('url') or endpoint.get('id')} at "
            f"{event.occurred_at or event.received_at} "
            f"({endpoint.get('disabledReason') or 'repeated failed deliveries'}); no webhook "
            "has arrived since",
            "fix what made deliveries fail (the admin's webhook events, the dashboard's "
            "delivery log), then `manage.py plugipay_webhooks enable`; `plugipay_sync` keeps "
            "the mirror right meanwhile",
        )

    @_guarded("deliveries")
    def deliveries(self) -> Line:
        try:
            health = delivery_health()
        except DatabaseError as exc:
            return Line("deliveries", None, f"the database cannot be read ({exc})")
        if not health.dead and not health.overdue:
            return Line("deliveries", True, "none dead, none overdue")
        return Line(
            "deliveries",
            False,
            f"{health.dead} dead, {health.overdue} overdue by more than an hour"
            + (f"; the last to give up: {health.latest_dead}" if health.latest_dead else ""),
            "dead: read the last error under Plugipay › Deliveries in the admin, fix the "
            "receiver, then 'Run again now' (or `manage.py plugipay_replay --deliveries`); "
            "overdue: run a Celery worker and beat with django_plugipay.run_deliveries "
            "scheduled, or `manage.py plugipay_sync` from cron",
        )

    @_guarded("tasks")
    def tasks(self) -> Line:
        """Where task work goes, and with Celery, that the broker answers and a worker consumes
        the queue django-plugipay's tasks are routed to."""
        current = _queue.mode()
        if current == "inline":
            return Line("tasks", True, "run in this process (no worker to check)")
        if current == "django":
            return Line(
                "tasks",
                None,
                "sent to the django.tasks backend; its worker is not checked here "
                "(`manage.py db_worker` or your backend's own)",
            )
        app = _queue.celery_app()
        if app is None:  # TASKS = "celery" with no app: system check E-level says so too
            return Line(
                "tasks",
                False,
                'PLUGIPAY["TASKS"] is "celery" but the project has no Celery app',
                'create one (see docs/how-to/celery.md) or set TASKS to "auto"',
            )
        if app.conf.task_always_eager:
            return Line(
                "tasks",
                True,
                "Celery runs every task in the process that sends it (task_always_eager): no "
                "broker or worker to check",
            )
        try:
            with app.connection_for_write() as unopened:  # named, not connected to
                broker = maybe_sanitize_url(unopened.as_uri(include_password=True))
                unopened.transport  # noqa: B018 - loads the transport's module and what it needs
        except ImportError as exc:
            return _transport_missing(exc)
        fix = (
            "start the broker or fix the Celery app's broker URL; meanwhile webhooks are "
            "recorded and answered, and the sweep sends their tasks once it answers"
        )
        silent = Line(
            "tasks", False, f"the Celery broker {broker} did not answer in {BROKER_WAIT:g} s", fix
        )
        return _within(BROKER_WAIT, lambda: self._celery(app, broker, fix), silent)

    def _celery(self, app, broker: str, fix: str) -> Line:
        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=3)
        except ImportError as exc:
            return _transport_missing(exc)
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises, said as is
            return Line("tasks", False, f"the Celery broker {broker} cannot be reached: {exc}", fix)
        route = app.amqp.router.route({}, PENDING_TASK)
        if route.get("queue") is None:  # routed by exchange and routing key, to no named queue
            return Line(
                "tasks",
                None,
                f"the Celery broker {broker} answers; django-plugipay's tasks are routed by "
                f"exchange ({route.get('exchange')!r}), so which worker consumes them is not "
                "checked",
            )
        queue = route["queue"].name
        answers = app.control.inspect(timeout=WORKER_WAIT).active_queues() or {}
        consuming = sorted(
            worker
            for worker, queues in answers.items()
            if any(q.get("name") == queue for q in queues or ())
        )
        if not consuming:
            seen = f"{len(answers)} answered, none consuming it" if answers else "none answered"
            return Line(
                "tasks",
                False,
                f"no Celery worker consumes queue {queue!r} on {broker} ({seen} within "
                f"{WORKER_WAIT:g} s): queued webhooks and refunds wait",
                f"start one: `celery -A <your project> worker` (with `-Q {queue}` if you route "
                "queues)",
            )
        return Line(
            "tasks",
            True,
            f"{len(consuming)} Celery worker(s) consume queue {queue!r} on {broker}",
        )

    @_guarded("events")
    def events(self) -> Line:
        """Webhook and reconciled events that need someone (see ``event_health``)."""
        try:
            health = event_health()
        except DatabaseError as exc:
            return Line("events", None, f"the database cannot be read ({exc})")
        if not health.failed and not health.waiting:
            return Line("events", True, "none failed or waiting for over an hour")
        parts, fixes = [], []
        oldest = health.oldest_failed
        if oldest is not None:
            several = len(accounts.every()) > 1
            whose = f", account {accounts.known(oldest.account_id).alias}" if several else ""
            parts.append(
                f"{health.failed} failed (the oldest {oldest.event_id}{whose}, {oldest.kind}: "
                f"{oldest.last_error[:300] or 'no error recorded'})"
            )
            fixes.append(
                "failed: read the error under Plugipay › Webhook events in the admin, fix the "
                "cause, then `manage.py plugipay_replay` (or 'Reprocess'); an event you will "
                "not apply, 'Dismiss' it there (or `manage.py plugipay_replay --dismiss evt_…`)"
            )
        if health.waiting:
            parts.append(f"{health.waiting} recorded over an hour ago and not applied yet")
            fixes.append(
                "waiting: run a worker that consumes the queue (the tasks line) and schedule "
                "django_plugipay.sweep, which sends again the tasks a broker outage lost"
            )
        return Line("events", False, "; ".join(parts), "; ".join(fixes))

    @_guarded("payouts")
    def unanswered_payouts(self) -> Line:
        """Payouts whose send got no answer from Plugipay: nothing settles them by itself."""
        try:
            unanswered = sum(
                accounts.read_every_account(lambda: accounts.own(left_unanswered()).count())
            )
        except DatabaseError as exc:
            return Line("payouts", None, f"the database cannot be read ({exc})")
        if not unanswered:
            return Line("payouts", True, "every payout sent is known to Plugipay")
        return Line(
            "payouts",
            False,
            f"{unanswered} pending without an answer from Plugipay (no Plugipay id)",
            "make the same request again with its idempotency key, or open each under "
            "Plugipay › Payouts in the admin and Re-sync it (staff with manage_payout)",
        )

    @_guarded("refunds")
    def stuck_refunds(self) -> Line:
        """Refunds no send has reached Plugipay with for over an hour (see
        ``refunds_not_submitted``)."""

        def here():
            stuck = refunds_not_submitted()
            return stuck.count(), stuck.order_by("created_at").first()

        try:
            found = accounts.read_every_account(here)
        except DatabaseError as exc:
            return Line("refunds", None, f"the database cannot be read ({exc})")
        count = sum(stuck for stuck, _oldest in found)
        if not count:
            return Line("refunds", True, "every refund asked for was sent to Plugipay")
        oldest = min((first for _count, first in found if first), key=lambda r: r.created_at)
        return Line(
            "refunds",
            False,
            f"{count} requested over an hour ago and not sent yet (the oldest, refund "
            f"#{oldest.pk}: {oldest.failure_message[:300]})",
            "fix what the error names (the broker, the API key's refund permission, the "
            "server's clock); the sweep (django_plugipay.sweep, or plugipay_sync) sends them "
            "again with their keys, never twice",
        )

    def remote(self, database: Line):
        credentials = self.credentials()
        yield credentials
        if not credentials.ok:
            for name in ("clock", "webhook URL", "webhook endpoint", "test event"):
                yield Line(name, None, "needs working credentials")
            return
        yield self.clock()
        installed = self.webhook_url()
        yield installed
        endpoint = self.webhook_endpoint() if installed.ok else None
        if endpoint is not None:
            yield endpoint
        else:
            yield Line("webhook endpoint", None, "needs the webhook URL installed")
        if endpoint is None or not endpoint.ok:
            yield Line("test event", None, "needs a registered webhook endpoint")
            return
        if not database.ok:
            yield Line("test event", None, "needs this project's database migrated")
            return
        yield self.test_event()

    # ── every other configured account ────────────────────────────────────────

    def account(self, alias: str):
        """The other account ``alias``: its credentials reach Plugipay, and an endpoint of that
        account points at this site (the shared URL or the account's own)."""
        client = None
        try:
            client = copy.copy(client_for(alias))  # the shared client keeps its retries
            client.max_retries = 0
            client.request("GET", "/events", params={"limit": 1})
        except Exception as exc:  # the account's own line: the others go on
            yield Line(
                f"credentials [{alias}]",
                False,
                str(getattr(exc, "message", None) or exc),
                f"check PLUGIPAY['ACCOUNTS'][{alias!r}]: its own KEY_ID/SECRET (or API_KEY), or "
                "ON_BEHALF_OF an account the platform key may act for",
            )
            yield Line(f"webhook endpoint [{alias}]", None, "needs working credentials")
            return
        how = (
            f"on behalf of {client.on_behalf_of} with the platform key"
            if getattr(client, "on_behalf_of", None)
            else "with its own key"
        )
        yield Line(f"credentials [{alias}]", True, f"accepted by {app_settings.BASE_URL} ({how})")
        yield self.account_endpoint(alias, client)

    def account_endpoint(self, alias: str, client: PlugipayClient) -> Line:
        name = f"webhook endpoint [{alias}]"
        try:
            endpoints = client.list_webhook_endpoints()
        except PlugipayError as exc:
            return Line(name, False, f"could not list the account's endpoints: {exc}")
        try:
            own = reverse("plugipay:webhook_account", args=[alias])
        except NoReverseMatch:
            own = None

        def ours(url: str) -> bool:
            if is_this_site(url, expected=self.url):
                return True
            return own is not None and urlsplit(url).path.rstrip("/") == own.rstrip("/")

        matches = [e for e in endpoints if ours(str(e.get("url") or ""))]
        active = [e for e in matches if e.get("active", True)]
        if not active:
            registered = ", ".join(str(e.get("url")) for e in endpoints) or "none"
            state = "paused or disabled" if matches else "not registered"
            return Line(
                name,
                False,
                f"this site's webhook URL is {state} for the account (registered: {registered})",
                f"`manage.py plugipay_webhooks --account {alias} create --site-url "
                "https://your.site`, then copy its signing secret into "
                f"PLUGIPAY['ACCOUNTS'][{alias!r}]['WEBHOOK_SECRETS']",
            )
        endpoint = active[0]
        secret = endpoint.get("secret") or endpoint.get("signingSecret")
        secrets = app_settings.ACCOUNTS[alias]["WEBHOOK_SECRETS"]
        if secret is not None and not any(hmac.compare_digest(secret, s) for s in secrets):
            return Line(
                name,
                False,
                f"{endpoint['url']} signs with a secret that is not in the account's "
                "WEBHOOK_SECRETS",
                f"copy the endpoint's signing secret into "
                f"PLUGIPAY['ACCOUNTS'][{alias!r}]['WEBHOOK_SECRETS']",
            )
        return Line(name, True, f"{endpoint['url']}")

    # ── database, credentials and clock ──────────────────────────────────────

    @_guarded("database")
    def database(self) -> Line:
        connection = connections[router.db_for_write(WebhookEvent)]
        executor = MigrationExecutor(connection)
        pending = [m for m, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())]
        if pending:
            apps = ", ".join(sorted({m.app_label for m in pending}))
            return Line(
                "database",
                False,
                f"{len(pending)} migrations not applied to {connection.alias!r} ({apps})",
                "run `python manage.py migrate`",
            )
        return Line("database", True, f"{connection.alias!r} ({connection.vendor}) is migrated")

    @_guarded("credentials")
    def credentials(self) -> Line:
        problem = base_url_problem(app_settings.raw("BASE_URL"))
        if problem is not None:
            return Line("credentials", False, problem[1], problem[2])
        try:
            self.client = PlugipayClient.from_settings(max_retries=0, timeout=10)
        except PlugipayError as exc:
            return Line(
                "credentials",
                False,
                exc.message,
                "set PLUGIPAY['KEY_ID'] and ['SECRET'] (or ['API_KEY']), or the "
                "PLUGIPAY_KEY_ID / PLUGIPAY_SECRET environment variables",
            )
        try:
            self.client.request("GET", "/events", params={"limit": 1})
        except APIError as exc:
            if exc.status == 401:
                detail, _, fix = exc.message.replace(DOCTOR_ADVICE, "").partition(" Plugipay at ")
                return Line(
                    "credentials",
                    False,
                    f"{detail} ({exc.code})",
                    ("Plugipay at " + fix if fix else detail).strip(),
                )
            if exc.code in ("invalid_response", "unknown"):  # not Plugipay's error envelope
                return Line(
                    "credentials",
                    False,
                    f"something other than Plugipay answers at {app_settings.BASE_URL} "
                    f"(HTTP {exc.status}: {exc.message})",
                    _port_fix(app_settings.BASE_URL),
                )
            return Line("credentials", False, str(exc), "see the message above")
        except PlugipayError as exc:
            if exc.code == "network_error":
                detail = exc.message.replace(" " + SANDBOX_ADVICE, "")
                return Line("credentials", False, detail, _reach_fix(app_settings.BASE_URL))
            return Line(
                "credentials",
                False,
                exc.message,
                "try again in a minute; if it keeps failing, check that PLUGIPAY['BASE_URL'] "
                "is Plugipay's address",
            )
        kind = "Bearer key" if app_settings.API_KEY else f"key {app_settings.KEY_ID}"
        return Line(
            "credentials", True, f"{kind} accepted by {app_settings.BASE_URL} ({app_settings.MODE})"
        )

    @_guarded("clock")
    def clock(self) -> Line:
        assert self.client is not None
        started = time.time()
        try:
            response = self.client.session.get(
                self.client.base_url + self.client.api_prefix + "/events", timeout=10
            )
        except Exception as exc:  # the round trip above worked; report, do not crash
            return Line("clock", None, f"could not read the server time: {exc}")
        date = response.headers.get("Date")
        if not date:
            return Line("clock", None, "the server sent no Date header")
        server = email.utils.parsedate_to_datetime(date).timestamp()
        skew = server - (started + time.time()) / 2
        if abs(skew) > CLOCK_SKEW_LIMIT:
            return Line(
                "clock",
                False,
                f"this server's clock is {-skew:+.0f}s off Plugipay's",
                "synchronise the clock (NTP): requests and webhooks are refused beyond "
                f"{app_settings.WEBHOOK_TOLERANCE}s",
            )
        return Line("clock", True, f"within {max(abs(skew), 1):.0f}s of Plugipay's")

    # ── the webhook endpoint ──────────────────────────────────────────────────

    @_guarded("webhook URL")
    def webhook_url(self) -> Line:
        try:
            self.path = reverse("plugipay:webhook")
        except NoReverseMatch:
            return Line(
                "webhook URL",
                False,
                "plugipay:webhook is not in the URLconf, so every delivery gets 404",
                'add path("plugipay/", include("django_plugipay.urls")) to ROOT_URLCONF',
            )
        if not app_settings.WEBHOOK_SECRETS:
            return Line(
                "webhook URL",
                False,
                f"installed at {self.path}, but no webhook secret is set",
                "copy the endpoint's signing secret (whsec_…) into PLUGIPAY['WEBHOOK_SECRETS']",
            )
        redirected = webhook_redirect()
        if redirected is not None:
            return Line(
                "webhook URL",
                False,
                f"installed at {self.path}, but it {redirect_problem(*redirected)}",
                REDIRECT_HINT,
            )
        return Line("webhook URL", True, f"installed at {self.path}")

    @_guarded("webhook endpoint")
    def webhook_endpoint(self) -> Line:
        assert self.client is not None
        wanted = self.url or f"https://<your host>{self.path}"
        try:
            endpoints = self.client.list_webhook_endpoints()
        except PlugipayError as exc:
            return Line("webhook endpoint", False, f"could not list endpoints: {exc}")
        matches = [e for e in endpoints if self._is_ours(str(e.get("url") or ""))]
        if not matches:
            registered = ", ".join(str(e.get("url")) for e in endpoints) or "none"
            return Line(
                "webhook endpoint",
                False,
                f"no endpoint at Plugipay points at {wanted} (registered: {registered})",
                f"register {wanted} in Plugipay's dashboard (Settings → Webhooks) and copy its "
                "signing secret into WEBHOOK_SECRETS; with the sandbox, run `manage.py "
                "plugipay_sandbox --site-url <where runserver listens>`, which registers it",
            )
        active = [e for e in matches if e.get("active", True)]
        if not active:
            endpoint = matches[0]
            why = endpoint.get("disabledReason") or endpoint.get("status")
            if endpoint.get("status") == "errored":
                why = (
                    f"Plugipay disabled it: {why} (it does so after 20 consecutive failures "
                    "spanning 24 hours)"
                )
            return Line(
                "webhook endpoint",
                False,
                f"{endpoint.get('url')} is registered but paused or disabled ({why}); events "
                "meanwhile are not delivered, and re-enabling it does not re-send them",
                "re-enable it with `manage.py plugipay_webhooks enable` (or in the dashboard), "
                "then run `manage.py plugipay_sync`: it applies every event missed meanwhile",
            )
        self.endpoint = active[0]
        secret = self.endpoint.get("secret") or self.endpoint.get("signingSecret")
        if secret is None:
            note = "its secret is not shown by the API; the test event checks it"
        elif any(hmac.compare_digest(secret, s) for s in app_settings.WEBHOOK_SECRETS):
            note = "its secret is in WEBHOOK_SECRETS"
        else:
            return Line(
                "webhook endpoint",
                False,
                f"{self.endpoint['url']} signs with a secret that is not in WEBHOOK_SECRETS",
                "copy the endpoint's signing secret into PLUGIPAY['WEBHOOK_SECRETS']",
            )
        return Line("webhook endpoint", True, f"{self.endpoint['url']} ({note})")

    def _is_ours(self, url: str) -> bool:
        return is_this_site(url, expected=self.url)

    # ── one event, end to end ─────────────────────────────────────────────────

    @_guarded("test event")
    def test_event(self) -> Line:
        assert self.client is not None and self.endpoint is not None
        if app_settings.MODE != "test":
            return Line(
                "test event",
                None,
                "live keys: test events can only be triggered in test mode; send one from "
                "the dashboard's webhook page and look for it in the admin's webhook events",
            )
        try:
            data, _meta = self.client.request(
                "POST",
                "/events/trigger",
                json_body={
                    "type": TEST_EVENT_TYPE,
                    "aggregateId": f"doctor_{uuid.uuid4().hex[:12]}",
                },
            )
        except PlugipayError as exc:
            return Line("test event", False, f"could not trigger a test event: {exc}")
        event_id = data["id"]
        deadline = time.monotonic() + self.wait
        failure = None
        while time.monotonic() < deadline:
            if WebhookEvent.objects.filter(event_id=event_id).exists():
                return Line(
                    "test event",
                    True,
                    f"{event_id} was delivered to {self.endpoint['url']}, verified and recorded",
                )
            failure = self._failed_attempt(event_id)
            if failure is not None:
                break
            time.sleep(POLL_INTERVAL)
        return self._explain(event_id, failure)

    def _failed_attempt(self, event_id: str) -> dict | None:
        """The test event's delivery once an attempt at it has been answered, else None."""
        assert self.client is not None and self.endpoint is not None
        try:
            deliveries, _meta = self.client.request(
                "GET",
                "/webhooks/deliveries",
                params={"endpointId": self.endpoint["id"], "limit": 20},
            )
        except PlugipayError:
            return None
        for delivery in deliveries or []:
            if delivery.get("eventId") == event_id and delivery.get("attempts"):
                ok = delivery.get("status") == "succeeded"
                # a 2xx may commit a moment after the answer: look at the database once more
                if ok and WebhookEvent.objects.filter(event_id=event_id).exists():
                    return None
                return delivery
        return None

    def _explain(self, event_id: str, delivery: dict | None) -> Line:
        url = self.endpoint["url"] if self.endpoint else "the endpoint"
        subscribed = (self.endpoint or {}).get("events") or ["*"]
        if delivery is None and not {"*", TEST_EVENT_TYPE} & set(subscribed):
            return Line(
                "test event",
                False,
                f"{url} is not subscribed to {TEST_EVENT_TYPE}, so Plugipay does not deliver "
                "the test event there",
                f"add {TEST_EVENT_TYPE} to the endpoint's events in the dashboard, or register "
                "it again with `manage.py plugipay_webhooks create` (which subscribes to it)",
            )
        if delivery is None:
            return Line(
                "test event",
                False,
                f"{event_id} was not recorded here within {self.wait:.0f}s",
                f"make sure this site is running and reachable from Plugipay at {url}, with "
                "the same settings module and DATABASES as this `manage.py`",
            )
        code, error = delivery.get("responseCode"), delivery.get("lastError")
        if code is not None and 200 <= code < 300:
            return Line(
                "test event",
                False,
                f"{url} answered {code} but {event_id} is not in this database: the site "
                "that answered uses another database, or another program answers there",
                "give the running site the same settings module and DATABASES as this "
                "`manage.py`, or register the URL this site really has",
            )
        if code is not None and 300 <= code < 400:
            attempts = delivery.get("attemptLog") or [{}]
            last = attempts[-1] if isinstance(attempts[-1], dict) else {}
            location = delivery.get("location") or last.get("redirectTo") or ""
            return Line(
                "test event", False, f"{url} {redirect_problem(code, location)}", REDIRECT_HINT
            )
        if code in (400, 401):
            return Line(
                "test event",
                False,
                f"{url} answered {code}: the delivery's signature was rejected",
                "PLUGIPAY['WEBHOOK_SECRETS'] does not hold this endpoint's signing secret (or "
                "the clocks differ): copy the secret (whsec_…) from the endpoint",
            )
        if code == 404:
            return Line(
                "test event",
                False,
                f"{url} answered 404",
                "the URL include is missing on the running site, or the endpoint URL is wrong",
            )
        if code is None:
            return Line(
                "test event",
                False,
                f"Plugipay could not reach {url}: {error}",
                "start the site there (runserver) or register the URL it really has",
            )
        return Line(
            "test event",
            False,
            f"{url} answered {code}",
            "see the site's log for the error in the webhook view",
        )


def _reach_fix(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return f"check {setting_name('BASE_URL')} and this server's network access"
    elsewhere = _sandbox_elsewhere(base_url)
    if elsewhere:
        return f"nothing listens on port {_port(base_url)}; {elsewhere}"
    return (
        f"nothing listens on port {_port(base_url)}: start the sandbox there "
        "(`python manage.py plugipay_sandbox` listens on BASE_URL's port), or correct the port "
        f"in {setting_name('BASE_URL')}"
    )


def _port_fix(base_url: str) -> str:
    elsewhere = _sandbox_elsewhere(base_url)
    if elsewhere:
        return f"the port is wrong: {elsewhere}"
    return (
        f"check the port in {setting_name('BASE_URL')} ({_port(base_url)}): another "
        "server listens there (the sandbox prints its address when it starts)"
    )


def _port(base_url: str) -> int:
    """The port ``base_url`` is reached on, its scheme's when it names none."""
    parts = urlsplit(base_url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _sandbox_elsewhere(base_url: str) -> str:
    """Where the sandbox answers instead, when it runs on its default address."""
    if base_url.rstrip("/") == SANDBOX_URL:
        return ""
    try:
        response = requests.get(SANDBOX_URL + "/_sandbox/config", timeout=2)
        found = response.json()["data"]["baseUrl"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return ""
    return f"a Plugipay sandbox answers at {found}: set {setting_name('BASE_URL')} to {found!r}"


def _transport_missing(exc: ImportError) -> Line:
    """The tasks line when kombu cannot load the broker's transport: a module it needs is not
    installed (``pip install celery redis`` leaves out what the ``[redis]`` extra brings)."""
    return Line(
        "tasks",
        False,
        f"the Celery app's broker transport cannot be loaded: {type(exc).__name__}: {exc}",
        'install the transport with its extra, e.g. `pip install "celery[redis]"` for Redis '
        "(see docs/how-to/celery.md); meanwhile no task can be sent: webhooks are recorded "
        "and answered, and the sweep sends their tasks once one can",
    )
