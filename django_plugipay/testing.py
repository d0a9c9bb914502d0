"""Test helpers and the pytest plugin: a live ``plugipay_sandbox`` fixture and signed payloads.

Registered as a pytest plugin (entry point ``plugipay``) so a project with django-plugipay
installed gets the ``plugipay_sandbox`` fixture with no configuration::

    def test_order_is_paid_once(plugipay_sandbox, order):
        session = start_checkout(order)             # your code, calling the services
        plugipay_sandbox.pay(session)               # 4242…: pays and delivers the webhooks
        order.refresh_from_db()
        assert order.paid_at is not None

The sandbox runs in this process on a free loopback port; its webhooks reach your project
through pytest-django's ``live_server``, so the whole path (signature, view, signals) runs.

Time is the test's to move: a failed delivery is retried only when the test moves the sandbox
clock (``retry_deliveries()`` or ``advance()``), never behind its back, and anything the test
must wait for is a bounded poll (``wait_for``), never a sleep.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import pytest

from django_plugipay.webhooks import SIGNATURE_HEADERS

if TYPE_CHECKING:
    from django.db.backends.sqlite3.creation import DatabaseCreation as SQLiteCreation

DEFAULT_WEBHOOK_SECRET = "whsec_plugipay_testing"
#: The platform-admin key (``--platform-key``) the test sandbox accepts beside its merchant key:
#: it may act on behalf of the accounts it provisions (``X-Plugipay-On-Behalf-Of``).
DEFAULT_PLATFORM_KEY = ("pk_test_platform", "sk_test_platform")
SUCCESS_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
THREE_DS_CARD = "4000002760003184"
#: The fixture's webhook retry schedule (seconds after each failed attempt). Long on purpose: a
#: retry happens only when the test moves the sandbox clock; the sum of the first three stays
#: inside the webhook signature tolerance (300 s), so advanced deliveries still verify.
RETRY_SCHEDULE = (60.0, 90.0, 120.0, 600.0)


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "a condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises ``AssertionError`` naming ``message`` after ``timeout`` seconds. The one place a
    test may sleep: wait on a condition the sandbox or the database reports, never a duration.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


# ── payload builders (no sandbox needed) ───────────────────────────────────────────


def build_event(
    kind: str,
    obj: Mapping[str, Any],
    *,
    event_id: str | None = None,
    style: str = "sdk",
    occurred_at: str | None = None,
    mode: str = "test",
) -> dict[str, Any]:
    """An event body as Plugipay sends it: ``style="sdk"`` (default) or ``"docs"``."""
    event_id = event_id or f"evt_{uuid.uuid4().hex[:26].upper()}"
    when = occurred_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if style == "docs":
        return {
            "id": event_id,
            "type": kind,
            "createdAt": when,
            "workspaceId": "ws_test",
            "data": dict(obj),
        }
    return {
        "id": event_id,
        "type": f"plugipay.{kind}.v1",
        "accountId": "acc_test",
        "mode": mode,
        "occurredAt": when,
        "data": {"object": dict(obj)},
    }


def signed_webhook(
    payload: Mapping[str, Any] | bytes | str,
    secret: str = DEFAULT_WEBHOOK_SECRET,
    *,
    timestamp: int | None = None,
    header: str = SIGNATURE_HEADERS[0],
) -> tuple[bytes, dict[str, str]]:
    """Return ``(body, headers)`` for posting a signed delivery with Django's test client::

    body, headers = signed_webhook(build_event("payment.succeeded", {...}), secret)
    client.post(reverse("plugipay:webhook"), body, content_type="application/json",
                headers=headers)
    """
    from django_plugipay.webhooks import sign_payload

    if isinstance(payload, Mapping):
        body = json.dumps(payload, separators=(",", ":")).encode()
    else:
        body = payload.encode() if isinstance(payload, str) else payload
    return body, {header: sign_payload(body, secret, timestamp)}


# ── the sandbox helper ─────────────────────────────────────────────────────────────


class Sandbox:
    """Drives a running sandbox through its ``/_sandbox/`` control routes."""

    def __init__(self, server, webhook_secret: str) -> None:
        import requests

        self.server = server
        self.webhook_secret = webhook_secret
        self.http = requests.Session()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def key_id(self) -> str:
        return self.server.config.key_id

    @property
    def secret(self) -> str:
        return self.server.config.secret

    def settings(self, **extra: Any) -> dict[str, Any]:
        """A ``PLUGIPAY`` settings dict pointing at this sandbox."""
        return {
            "KEY_ID": self.key_id,
            "SECRET": self.secret,
            "BASE_URL": self.base_url,
            "WEBHOOK_SECRETS": [self.webhook_secret],
            "RETRY_BACKOFF": 0.01,
            "TIMEOUT": 10,
            **extra,
        }

    def platform_settings(self, **extra: Any) -> dict[str, Any]:
        """:meth:`settings` with the sandbox's platform key as the top-level credentials (the
        default account is then the sandbox's own; accounts it provisions are reached on
        behalf of)."""
        key_id, secret = DEFAULT_PLATFORM_KEY
        return self.settings(KEY_ID=key_id, SECRET=secret, **extra)

    def control(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self.http.request(
            method,
            f"{self.base_url}/_sandbox/{path}",
            json=dict(body) if body is not None else None,
            timeout=30,
        )
        payload = response.json()
        if response.status_code >= 400:
            raise AssertionError(f"sandbox {method} {path}: {payload.get('error')}")
        return payload["data"]

    @staticmethod
    def _id(obj: Any) -> str:
        return obj if isinstance(obj, str) else obj.plugipay_id

    def pay(
        self,
        session: Any,
        card: str = SUCCESS_CARD,
        *,
        three_ds: str | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """Pay a checkout session as the hosted page would, then deliver its webhooks."""
        body: dict[str, Any] = {"card": card}
        if three_ds:
            body["three_ds"] = three_ds
        result = self.control("POST", f"checkout-sessions/{self._id(session)}/pay", body)
        if deliver:
            self.flush()
        return result

    def paid_payment(self, amount: int = 100_000, currency: str = "IDR", **session_options):
        """A succeeded Payment: a checkout session created through the services, paid with
        the success card, webhooks delivered. Handy for testing refunds."""
        from django_plugipay import services
        from django_plugipay.models import Payment

        options = {"success_url": "https://shop.test/ok", "cancel_url": "https://shop.test/no"}
        session = services.create_checkout_session(
            amount=amount, currency=currency, **{**options, **session_options}
        )
        self.pay(session)
        return Payment.objects.get(checkout_session=session, status="succeeded")

    def pay_with(self, session: Any, method: str, *, deliver: bool = True) -> dict[str, Any]:
        result = self.control(
            "POST", f"checkout-sessions/{self._id(session)}/pay", {"method": method}
        )
        if deliver:
            self.flush()
        return result

    def start_async(
        self, session: Any, method: str, *, channel: str | None = None, deliver: bool = True
    ) -> dict[str, Any]:
        """Choose VA/QRIS/e-wallet/retail and leave the charge ``pending`` with instructions;
        returns ``{"outcome", "session", "payment"}`` (the pending charge)."""
        body: dict[str, Any] = {"method": method, "settle": False}
        if channel:
            body["channel"] = channel
        result = self.control("POST", f"checkout-sessions/{self._id(session)}/pay", body)
        if deliver:
            self.flush()
        return result

    def settle(
        self, payment_id: str, outcome: str = "succeeded", *, deliver: bool = True
    ) -> dict[str, Any]:
        """Settle a pending charge as the bank or e-wallet would (``succeeded``/``failed``)."""
        result = self.control("POST", f"payments/{payment_id}/settle", {"outcome": outcome})
        if deliver:
            self.flush()
        return result

    def claim(
        self, session: Any, *, proof_url: str | None = None, deliver: bool = True
    ) -> dict[str, Any]:
        """The buyer's "I have transferred" for a manual transfer → ``pending_review``."""
        result = self.control(
            "POST", f"checkout-sessions/{self._id(session)}/claim", {"proof_url": proof_url}
        )
        if deliver:
            self.flush()
        return result

    def expire(self, session: Any, *, deliver: bool = True) -> dict[str, Any]:
        result = self.control("POST", f"checkout-sessions/{self._id(session)}/expire")
        if deliver:
            self.flush()
        return result

    def settle_refund(
        self,
        refund: Any,
        *,
        succeed: bool = True,
        code: str | None = None,
        message: str | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        refund_id = refund if isinstance(refund, str) else refund.plugipay_id
        if succeed:
            result = self.control("POST", f"refunds/{refund_id}/succeed")
        else:
            result = self.control(
                "POST", f"refunds/{refund_id}/fail", {"code": code, "message": message}
            )
        if deliver:
            self.flush()
        return result

    def pay_invoice(
        self, invoice: Any, card: str = SUCCESS_CARD, *, save: bool = False, deliver: bool = True
    ) -> dict[str, Any]:
        """Pay an open invoice as its hosted page would (``save`` keeps the card as the
        customer's default token), then deliver its webhooks."""
        result = self.control(
            "POST", f"invoices/{self._id(invoice)}/pay", {"card": card, "save": save}
        )
        if deliver:
            self.flush()
        return result

    def advance_days(self, days: float, *, deliver: bool = True) -> None:
        """Move the sandbox clock (renewals, trial ends, dunning retries run), then deliver."""
        self.advance(days * 86400)
        if deliver:
            self.flush()

    def flush(self) -> int:
        """Deliver every webhook due now and wait until they have been answered."""
        return self.control("POST", "deliveries/flush")["sent"]

    def retry_deliveries(self) -> int:
        """Move the sandbox clock to the latest scheduled retry of a failed delivery, then
        deliver everything due and wait for the answers; return how many retries were due."""
        from plugipay_sandbox.state import parse_time

        state = self.state()
        due = [
            parse_time(d["nextRetryAt"])
            for d in state["deliveries"]
            if d["status"] == "pending" and d.get("nextRetryAt")
        ]
        if due:
            # +10 ms: the timestamps the sandbox reports are cut to the millisecond
            self.advance(max(0.0, max(due) - parse_time(state["clock"]["now"]) + 0.01))
        self.flush()
        return len(due)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no API request is being answered (one a client gave up on included)."""
        wait_for(
            lambda: self.server.requests_in_flight == 0,
            timeout=timeout,
            message="the sandbox to finish the requests in flight",
        )

    def hold(self) -> None:
        """Queue deliveries instead of sending them, until ``release()``."""
        self.control("POST", "deliveries/hold")

    def release(self, order: str = "fifo", duplicate: int = 1) -> int:
        """Send every held delivery (``order``: fifo, reverse or shuffle; each ``duplicate``
        times), then stop holding."""
        return self.control("POST", "deliveries/release", {"order": order, "duplicate": duplicate})[
            "released"
        ]

    def fault(self, kind: str, count: int = 1, **options: Any) -> None:
        self.control("POST", "faults", {"kind": kind, "count": count, **options})

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock: expiries, delayed refunds and retries become due."""
        self.control("POST", "clock/advance", {"seconds": seconds})

    def configure(self, **options: Any) -> dict[str, Any]:
        """Change ``eventStyle``, ``refundDelay`` or ``retrySchedule`` for this test."""
        return self.control("POST", "config", options)

    def state(self) -> dict[str, Any]:
        return self.control("GET", "state")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.state()["events"] if kind is None or e["kind"] == kind]

    def reset(self) -> None:
        self.control("POST", "reset")


# ── the test database the sandbox's threads share ──────────────────────────────────


def pytest_collection_modifyitems(config, items) -> None:
    """Before any database is set up: give the sandbox's threads a database they can share.

    pytest-django's ``live_server`` (like Django's ``LiveServerTestCase``) hands the test
    thread's *one* in-memory SQLite connection to every server thread. The sandbox delivers
    webhooks from its own thread while the test goes on using the database, so two threads
    would run transactions on one connection at once ("cannot start a transaction within a
    transaction", lost savepoints). Separate connections to the in-memory shared cache do not
    help either: SQLite's table locks there fail at once ("database table is locked") instead of
    waiting. So when a collected test uses the sandbox and the test database is in-memory
    SQLite, it is created in a temporary file instead — every thread gets its own connection
    and SQLite's normal locking. Django deletes the file with the test database.
    """
    if any("plugipay_sandbox_server" in getattr(item, "fixturenames", ()) for item in items):
        use_file_for_in_memory_test_databases()


def use_file_for_in_memory_test_databases() -> list[str]:
    """Point each in-memory SQLite test database at a temporary file; return the aliases."""
    import os
    import tempfile

    from django.conf import settings

    if not settings.configured:
        return []
    from django.db import connections

    moved = []
    for alias in connections:
        connection = connections[alias]
        if connection.vendor != "sqlite":
            continue
        test = connection.settings_dict.setdefault("TEST", {})
        # The vendor is "sqlite", so this is SQLite's creation class (the stubs type the base).
        creation = cast("SQLiteCreation", connection.creation)
        if test.get("NAME") and not creation.is_in_memory_db(test["NAME"]):
            continue
        name = f"plugipay_test_{alias}_{os.getpid()}_{uuid.uuid4().hex[:8]}.sqlite3"
        test["NAME"] = os.path.join(tempfile.gettempdir(), name)
        moved.append(alias)
    return moved


# ── fixtures ───────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="session")
def plugipay_sandbox_server(live_server) -> Iterator[Any]:
    """One sandbox for the test session, forwarding webhooks to the live server."""
    from django.urls import reverse

    from plugipay_sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(
        port=0,
        forward_to=live_server.url + reverse("plugipay:webhook"),
        webhook_secret=DEFAULT_WEBHOOK_SECRET,
        retry_schedule=RETRY_SCHEDULE,
        platform_keys=dict([DEFAULT_PLATFORM_KEY]),
    )
    server = SandboxServer(config).start()
    yield server
    server.stop()


#: the marker of a test whose task work goes where the project's settings send it (a worker)
WORKER_MARKER = "plugipay_worker"


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        f"{WORKER_MARKER}: the plugipay_sandbox fixture keeps the project's TASKS and "
        "WEBHOOK_PROCESSING (a worker you run applies the events and sends the refunds) instead "
        "of running task work in the test's process",
    )


@pytest.fixture
def plugipay_sandbox(
    plugipay_sandbox_server, settings, transactional_db, request
) -> Iterator[Sandbox]:
    """A reset sandbox with ``settings.PLUGIPAY`` pointing at it for this test.

    Task work runs in the test's process (``TASKS`` and ``WEBHOOK_PROCESSING`` "inline"), so
    a project with a Celery app sends no message to its broker from a test and ``pay()``
    returns once the receivers have run; a test marked ``plugipay_worker`` keeps the
    project's settings. Failed deliveries wait for the test to move the clock (see
    ``RETRY_SCHEDULE``).
    """
    sandbox = Sandbox(plugipay_sandbox_server, DEFAULT_WEBHOOK_SECRET)
    sandbox.reset()
    sandbox.configure(eventStyle="sdk", refundDelay=0, retrySchedule=list(RETRY_SCHEDULE))
    user_settings = dict(getattr(settings, "PLUGIPAY", None) or {})
    if request.node.get_closest_marker(WORKER_MARKER) is None:
        user_settings.update(TASKS="inline", WEBHOOK_PROCESSING="inline")
    user_settings.update(sandbox.settings())
    settings.PLUGIPAY = user_settings
    yield sandbox
    sandbox.hold()  # nothing more reaches this test's database…
    sandbox.flush()  # …and what is in flight has been answered before it is flushed
    sandbox.reset()
