"""In-memory sandbox state: objects, state machines, events, idempotency records and the clock."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import os
import random
import secrets
import threading
import time
from typing import Any

from plugipay_sandbox import cards, persistence

ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
IDEMPOTENCY_TTL = 24 * 3600
SESSION_OPEN_STATES = ("open", "pending", "pending_review")
SESSION_TERMINAL_STATES = ("completed", "expired", "canceled")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "other")
CURRENCIES = ("IDR", "USD")
METHODS = ("qris", "va", "ewallet", "card", "retail", "paypal", "manual")
ASYNC_METHODS = ("va", "qris", "ewallet", "retail")
ADAPTERS = {
    "card": "xendit",
    "va": "xendit",
    "ewallet": "xendit",
    "retail": "xendit",
    "qris": "midtrans",
    "paypal": "paypal",
    "manual": "manual",
}
AUTO_DISABLE_AFTER = 20


class ApiError(Exception):
    """An error answered inside the envelope: HTTP status, code, message, optional field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details
        self.headers = headers or {}

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        if self.details:
            error["details"] = self.details
        return error


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, "not_found", f"No {kind} with id {object_id!r}.")


def new_id(prefix: str) -> str:
    """A type prefix plus a 26-character ULID (48-bit milliseconds, 80 random bits)."""
    millis = int(time.time() * 1000)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(ULID_ALPHABET[value & 31])
        value >>= 5
    return prefix + "".join(reversed(chars))


def iso(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str) -> float:
    """Parse ISO-8601 or epoch seconds, as list filters accept both."""
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


@dataclasses.dataclass
class SandboxConfig:
    """How a sandbox instance is set up; the command line fills it in."""

    host: str = "127.0.0.1"
    port: int = 8787
    key_id: str = "pk_test_sandbox"
    secret: str = "sk_test_sandbox"
    live_key_id: str = "pk_live_sandbox"
    live_secret: str = "sk_live_sandbox"
    api_key: str = "pk_test_sandbox_bearer"
    forward_to: str | None = None
    webhook_secret: str | None = None
    event_style: str = "sdk"
    retry_schedule: tuple[float, ...] = (1, 2, 5, 10, 30, 60)
    refund_delay: float = 0.0
    state_file: str | None = None
    public_url: str | None = None
    account_id: str = "acc_01SANDBOX00000000000000000"
    workspace_id: str = "ws_01SANDBOX00000000000000000"
    quiet: bool = True

    def credentials(self) -> dict[str, str]:
        return {self.key_id: self.secret, self.live_key_id: self.live_secret}


@dataclasses.dataclass
class Fault:
    kind: str
    count: int
    path_prefix: str = "/api/v1"
    retry_after: int = 1
    delay: float = 5.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAULT_KINDS = ("http_500", "http_429", "delay", "drop_after_commit", "refund_refused")


class Store:
    """Every object the sandbox holds, behind one re-entrant lock.

    Objects are kept in their wire form (camelCase dicts), so reading one is a copy.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock_offset = 0.0
        self.faults: list[Fault] = []
        self.held = False
        self._seq = 0
        self.reset(keep_endpoints=False)
        if config.forward_to:
            self.create_endpoint(
                "test",
                url=config.forward_to,
                events=None,
                description="--forward-to",
                secret=config.webhook_secret,
                origin="cli",
            )
        if config.state_file and os.path.exists(config.state_file):
            self.load(config.state_file)

    # ── bookkeeping ────────────────────────────────────────────────────────────

    def reset(self, *, keep_endpoints: bool = True) -> None:
        with self.lock:
            kept = {}
            if keep_endpoints:
                kept = {k: v for k, v in self.endpoints.items() if v.get("_origin") == "cli"}
                for endpoint in kept.values():
                    self.enable_endpoint(endpoint)
            self.customers: dict[str, dict[str, Any]] = {}
            self.sessions: dict[str, dict[str, Any]] = {}
            self.payments: dict[str, dict[str, Any]] = {}
            self.refunds: dict[str, dict[str, Any]] = {}
            self.events: dict[str, dict[str, Any]] = {}
            self.endpoints: dict[str, dict[str, Any]] = kept
            self.deliveries: dict[str, dict[str, Any]] = {}
            self.idempotency: dict[tuple[str, str], dict[str, Any]] = {}
            self.faults = []
            self.held = False
            self.clock_offset = 0.0
            self.changed.notify_all()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds
            self.tick()
            self.changed.notify_all()

    def _stamp(self, obj: dict[str, Any], mode: str) -> dict[str, Any]:
        moment = self.now()
        now = iso(moment)
        obj.update(
            accountId=self.config.account_id,
            mode=mode,
            createdAt=now,
            updatedAt=now,
            _seq=self.next_seq(),
            _createdAtTs=moment,
        )
        obj["arn"] = f"arn:plugipay:{mode}:{self.config.account_id}:{obj['id']}"
        return obj

    def _touch(self, obj: dict[str, Any]) -> None:
        obj["updatedAt"] = iso(self.now())

    @staticmethod
    def public(obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """The wire form: a deep copy without the sandbox's private keys."""
        if obj is None:
            return None
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def base_url(self) -> str:
        return (self.config.public_url or f"http://{self.config.host}:{self.config.port}").rstrip(
            "/"
        )

    # ── idempotency ───────────────────────────────────────────────────────────

    def idempotent_lookup(self, mode: str, key: str, fingerprint: dict[str, Any]):
        """Return the stored response for a key, raise 409 on a different request, else None."""
        record = self.idempotency.get((mode, key))
        if record is None or record["expires"] < self.now():
            return None
        stored = record["fingerprint"]
        if stored != fingerprint:
            field = _first_difference(stored, fingerprint)
            raise ApiError(
                409,
                "idempotency_mismatch",
                f"Idempotency-Key {key!r} was used with different parameters ({field}).",
                field=field,
            )
        return record

    def idempotent_store(
        self, mode: str, key: str, fingerprint: dict[str, Any], status: int, body: bytes
    ) -> None:
        self.idempotency[(mode, key)] = {
            "fingerprint": fingerprint,
            "status": status,
            "body": body,
            "expires": self.now() + IDEMPOTENCY_TTL,
        }

    # ── faults ───────────────────────────────────────────────────────────────

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind in kinds and path.startswith(fault.path_prefix) and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ── events ───────────────────────────────────────────────────────────────

    def emit(
        self, kind: str, obj: dict[str, Any], *, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record an event for a change and queue a delivery to every subscribed endpoint."""
        event = {
            "id": new_id("evt_"),
            "kind": kind,
            "mode": obj.get("mode", "test"),
            "occurredAt": iso(self.now()),
            "_occurredAtTs": self.now(),
            "object": self.public(obj),
            "previousAttributes": previous,
            "publishedAt": None,
            "_seq": self.next_seq(),
        }
        self.events[event["id"]] = event
        self.queue_deliveries(event)
        return event

    def render_event(self, event: dict[str, Any], style: str | None = None) -> dict[str, Any]:
        """The event in the SDK shape (default) or the docs shape (``--event-style docs``)."""
        if (style or self.config.event_style) == "docs":
            rendered = {
                "id": event["id"],
                "type": event["kind"],
                "createdAt": event["occurredAt"],
                "workspaceId": self.config.workspace_id,
                "data": copy.deepcopy(event["object"]),
            }
            if event["kind"].endswith(".updated"):
                rendered["previousAttributes"] = copy.deepcopy(event["previousAttributes"] or {})
            return rendered
        return {
            "id": event["id"],
            "type": f"plugipay.{event['kind']}.v1",
            "accountId": self.config.account_id,
            "mode": event["mode"],
            "occurredAt": event["occurredAt"],
            "createdAt": event["occurredAt"],
            "publishedAt": event["publishedAt"],
            "metadata": {},
            "data": {"object": copy.deepcopy(event["object"])},
        }

    def queue_deliveries(self, event: dict[str, Any], *, force: bool = False) -> list[dict]:
        queued = []
        for endpoint in self.endpoints.values():
            if endpoint["mode"] != event["mode"] or not endpoint["active"]:
                continue
            if not force and not _subscribed(endpoint, event["kind"]):
                continue
            body = json.dumps(self.render_event(event), separators=(",", ":")).encode()
            delivery = {
                "id": new_id("dlv_"),
                "endpointId": endpoint["id"],
                "eventId": event["id"],
                "type": self.render_event(event)["type"],
                "body": body.decode(),
                "status": "pending",
                "attempts": 0,
                "nextRetryAt": iso(self.now()),
                "lastAttemptAt": None,
                "deliveredAt": None,
                "responseCode": None,
                "lastError": None,
                "attemptLog": [],
                "_due": self.now(),
                "_seq": self.next_seq(),
            }
            self.deliveries[delivery["id"]] = delivery
            queued.append(delivery)
        if queued:
            self.changed.notify_all()
        return queued

    # ── customers ────────────────────────────────────────────────────────────

    def create_customer(self, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            external_id = fields.get("externalId")
            if external_id and any(
                c["externalId"] == external_id and c["mode"] == mode
                for c in self.customers.values()
            ):
                raise ApiError(
                    409,
                    "conflict",
                    f"A customer with externalId {external_id!r} already exists.",
                    field="externalId",
                )
            customer = {
                "id": new_id("cus_"),
                "externalId": None,
                "email": None,
                "name": None,
                "phone": None,
                "taxId": None,
                "defaultPaymentTokenId": None,
                "metadata": None,
            }
            customer.update(fields)
            self._stamp(customer, mode)
            self.customers[customer["id"]] = customer
            self.emit("customer.created", customer)
            return customer

    def update_customer(self, mode: str, customer_id: str, fields: dict[str, Any]):
        with self.lock:
            customer = self.get(self.customers, mode, customer_id, "customer")
            previous = {k: customer.get(k) for k in fields if customer.get(k) != fields[k]}
            customer.update(fields)
            self._touch(customer)
            if previous:
                self.emit("customer.updated", customer, previous=previous)
            return customer

    @staticmethod
    def get(store: dict[str, dict], mode: str, object_id: str, kind: str) -> dict[str, Any]:
        obj = store.get(object_id)
        if obj is None or obj["mode"] != mode:
            raise not_found(kind, object_id)
        return obj

    # ── checkout sessions ────────────────────────────────────────────────────

    def create_session(self, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            customer = None
            if fields.get("customerId"):
                customer = self.get(self.customers, mode, fields["customerId"], "customer")
            ttl = fields.pop("expiresInSec", None) or 86400
            session = {
                "id": new_id("cs_"),
                "workspaceName": "Plugipay Sandbox",
                "customerId": None,
                "customer": None,
                "status": "open",
                "paymentMethod": None,
                "adapter": None,
                "lineItems": [],
                "metadata": None,
                "expiresAt": None,
                "completedAt": None,
                "paymentId": None,
            }
            session.update(fields)
            if customer is not None:
                session["customer"] = {
                    k: customer[k] for k in ("id", "name", "email", "phone", "externalId")
                }
            self._stamp(session, mode)
            session["hostedUrl"] = f"{self.base_url()}/c/{session['id']}"
            session["expiresAt"] = iso(self.now() + ttl)
            session["_expires"] = self.now() + ttl
            self.sessions[session["id"]] = session
            self.emit("checkout_session.created", session)
            return session

    def session(self, session_id: str, mode: str | None = None) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None or (mode is not None and session["mode"] != mode):
            raise not_found("checkout session", session_id)
        return session

    def _require_open(self, session: dict[str, Any], action: str) -> None:
        if session["status"] not in SESSION_OPEN_STATES:
            raise ApiError(
                409,
                "conflict",
                f"Cannot {action} checkout session {session['id']}: it is {session['status']}.",
            )

    def cancel_session(self, session_id: str, mode: str | None = None) -> dict[str, Any]:
        with self.lock:
            session = self.session(session_id, mode)
            self._require_open(session, "cancel")
            session["status"] = "canceled"
            self._touch(session)
            self.emit("checkout_session.canceled", session)
            return session

    def expire_session(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            session = self.session(session_id)
            self._require_open(session, "expire")
            self._expire(session)
            return session

    def _expire(self, session: dict[str, Any]) -> None:
        session["status"] = "expired"
        self._touch(session)
        self.emit("checkout_session.expired", session)

    def confirm_session(self, session_id: str, mode: str) -> dict[str, Any]:
        with self.lock:
            session = self.session(session_id, mode)
            if session["status"] != "pending_review":
                raise ApiError(
                    409,
                    "conflict",
                    f"Checkout session {session_id} is "
                    f"{session['status']}; only pending_review sessions can be "
                    "confirmed.",
                )
            self._complete(session, session["paymentMethod"] or "manual")
            return session

    def pay_card(
        self,
        session_id: str,
        number: str,
        expiry: str | None = None,
        cvc: str | None = None,
        three_ds: str | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """Charge a test card; returns (outcome, payment). Raises CardError for bad input."""
        with self.lock:
            session = self.session(session_id)
            self._require_open(session, "pay")
            today = dt.datetime.fromtimestamp(self.now(), tz=dt.timezone.utc).date()
            card = cards.check_card(number, expiry, cvc, today=today)
            if card.outcome == cards.REQUIRES_3DS and three_ds is None:
                session["status"] = "pending"
                session["paymentMethod"] = "card"
                session["_3ds_card"] = card.number
                self._touch(session)
                return cards.REQUIRES_3DS, None
            if card.outcome == cards.DECLINED:
                return cards.DECLINED, self._fail_charge(session, "card", card.failure_code)
            if three_ds == "fail":
                return cards.DECLINED, self._fail_charge(session, "card", "authentication_failed")
            return cards.SUCCESS, self._complete(session, "card")

    def finish_3ds(self, session_id: str, approve: bool) -> tuple[str, dict[str, Any] | None]:
        with self.lock:
            session = self.session(session_id)
            card = session.get("_3ds_card")
            if session["status"] != "pending" or not card:
                raise ApiError(409, "conflict", "This session has no 3-D Secure step waiting.")
            return self.pay_card(session_id, card, three_ds="approve" if approve else "fail")

    def start_async(self, session_id: str, method: str) -> dict[str, Any]:
        """The buyer picked VA/QRIS/e-wallet/manual: the session waits for the money."""
        with self.lock:
            session = self.session(session_id)
            self._require_open(session, "pay")
            session["paymentMethod"] = method
            session["status"] = "pending_review" if method == "manual" else "pending"
            self._touch(session)
            return session

    def pay_async(self, session_id: str, method: str) -> dict[str, Any]:
        with self.lock:
            session = self.session(session_id)
            self._require_open(session, "pay")
            if method == "manual":
                return self.start_async(session_id, method)
            return self._complete(session, method)

    def _charge(self, session: dict[str, Any], method: str, status: str) -> dict[str, Any]:
        payment = {
            "id": new_id("pay_"),
            "object": "payment",
            "checkoutSessionId": session["id"],
            "customerId": session.get("customerId"),
            "amount": session["amount"],
            "currency": session["currency"],
            "status": status,
            "method": method,
            "adapter": ADAPTERS.get(method, "xendit"),
            "failureCode": None,
            "failureMessage": None,
            "paidAt": None,
            "metadata": session.get("metadata"),
        }
        self._stamp(payment, session["mode"])
        self.payments[payment["id"]] = payment
        return payment

    def _fail_charge(self, session: dict[str, Any], method: str, code: str | None):
        payment = self._charge(session, method, "failed")
        payment["failureCode"] = code
        payment["failureMessage"] = cards.FAILURE_MESSAGES.get(code or "", "Payment failed.")
        session["status"] = "open"
        session.pop("_3ds_card", None)
        self._touch(session)
        self.emit("payment.failed", payment)
        return payment

    def _complete(self, session: dict[str, Any], method: str) -> dict[str, Any]:
        payment = self._charge(session, method, "succeeded")
        payment["paidAt"] = payment["createdAt"]
        session.pop("_3ds_card", None)
        session.update(
            status="completed",
            completedAt=payment["paidAt"],
            paymentId=payment["id"],
            paymentMethod=method,
            adapter=payment["adapter"],
        )
        self._touch(session)
        self.emit("checkout_session.completed", session)
        self.emit("payment.succeeded", payment)
        return payment

    # ── refunds ──────────────────────────────────────────────────────────────

    def payment_for(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        """Resolve what a refund names: sourceType+sourceId, chargeId or paymentId."""
        if body.get("sourceType") is not None or body.get("sourceId") is not None:
            if body.get("sourceType") != "checkout_session":
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    "sourceType must be 'checkout_session' in the sandbox.",
                    field="sourceType",
                )
            session = self.session(str(body.get("sourceId")), mode)
            if session["status"] != "completed" or not session["paymentId"]:
                raise ApiError(
                    409,
                    "conflict",
                    f"Checkout session {session['id']} has no "
                    f"captured payment (status {session['status']}).",
                )
            return self.payments[session["paymentId"]]
        charge_id = body.get("chargeId") or body.get("paymentId")
        if not charge_id:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "Name what to refund: sourceType and sourceId, chargeId or paymentId.",
                field="sourceId",
            )
        payment = self.payments.get(str(charge_id))
        if payment is None and str(charge_id) in self.sessions:  # a manual payment's charge id
            session = self.sessions[str(charge_id)]
            payment = self.payments.get(session.get("paymentId") or "")
        if payment is None or payment["mode"] != mode:
            raise not_found("payment", str(charge_id))
        if payment["status"] != "succeeded":
            raise ApiError(
                409,
                "conflict",
                f"Payment {payment['id']} is {payment['status']}; "
                "only succeeded payments can be refunded.",
            )
        return payment

    def refundable(self, payment: dict[str, Any]) -> int:
        taken = sum(
            r["amount"]
            for r in self.refunds.values()
            if r["chargeId"] == payment["id"] and r["status"] in ("pending", "succeeded")
        )
        return payment["amount"] - taken

    def create_refund(self, mode: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            payment = self.payment_for(mode, body)
            remaining = self.refundable(payment)
            amount = body.get("amount")
            if amount is None:
                amount = remaining
            if remaining <= 0:
                raise ApiError(
                    409, "conflict", f"Payment {payment['id']} is already fully refunded."
                )
            if amount > remaining:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"amount {amount} exceeds the refundable "
                    f"remainder {remaining} of payment {payment['id']}.",
                    field="amount",
                )
            refund = {
                "id": new_id("rfd_"),
                "chargeId": payment["id"],
                "paymentId": payment["id"],
                "invoiceId": None,
                "sourceType": "checkout_session",
                "sourceId": payment["checkoutSessionId"],
                "amount": amount,
                "currency": payment["currency"],
                "reason": body.get("reason"),
                "status": "pending",
                "failureCode": None,
                "failureMessage": None,
                "failureReason": None,
                "metadata": body.get("metadata"),
            }
            self._stamp(refund, mode)
            self.refunds[refund["id"]] = refund
            self.emit("refund.created", refund)
            if self.take_fault("/api/v1/refunds", ("refund_refused",)):
                self.settle_refund(
                    refund["id"],
                    succeed=False,
                    code="provider_refused",
                    message="The provider refused the refund.",
                )
                raise ApiError(
                    422,
                    "refund_failed",
                    "The provider refused the refund.",
                    details={"refund": self.public(refund)},
                )
            delay = self.config.refund_delay
            if delay == 0:
                self.settle_refund(refund["id"], succeed=True)
            elif delay > 0:
                refund["_settle_at"] = self.now() + delay
            return refund

    def settle_refund(
        self,
        refund_id: str,
        *,
        succeed: bool,
        code: str | None = None,
        message: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            refund = self.refunds.get(refund_id)
            if refund is None:
                raise not_found("refund", refund_id)
            if refund["status"] != "pending":
                raise ApiError(
                    409, "conflict", f"Refund {refund_id} is {refund['status']}, not pending."
                )
            refund.pop("_settle_at", None)
            if succeed:
                refund["status"] = "succeeded"
            else:
                code = code or "refund_failed"
                message = message or "The refund failed at the provider."
                refund.update(
                    status="failed", failureCode=code, failureMessage=message, failureReason=message
                )
            self._touch(refund)
            self.emit(f"refund.{refund['status']}", refund)
            return refund

    # ── webhook endpoints ────────────────────────────────────────────────────

    def create_endpoint(
        self,
        mode: str,
        *,
        url: str,
        events: list[str] | None,
        description: str | None,
        secret: str | None = None,
        origin: str = "api",
    ) -> dict[str, Any]:
        with self.lock:
            endpoint = {
                "id": new_id("whep_"),
                "url": url,
                "events": events or ["*"],
                "description": description,
                "active": True,
                "status": "active",
                "consecutiveFailures": 0,
                "failingSince": None,
                "disabledAt": None,
                "disabledReason": None,
                "lastDelivery": None,
                "_secret": secret or "whsec_" + secrets.token_hex(16),
                "_origin": origin,
            }
            self._stamp(endpoint, mode)
            self.endpoints[endpoint["id"]] = endpoint
            self.changed.notify_all()
            return endpoint

    @staticmethod
    def enable_endpoint(endpoint: dict[str, Any]) -> None:
        """Active again, with the failure streak cleared."""
        endpoint.update(
            active=True,
            status="active",
            consecutiveFailures=0,
            failingSince=None,
            disabledAt=None,
            disabledReason=None,
        )

    def disable_endpoint(self, endpoint: dict[str, Any], reason: str, status: str) -> None:
        endpoint.update(
            active=False, status=status, disabledAt=iso(self.now()), disabledReason=reason
        )
        for delivery in self.deliveries.values():
            if delivery["endpointId"] == endpoint["id"] and delivery["status"] == "pending":
                delivery.update(status="failed", lastError=f"endpoint disabled: {reason}")

    # ── time-driven changes ──────────────────────────────────────────────────

    def tick(self) -> None:
        """Apply what the clock has made due: session expiry and delayed refund settlement."""
        with self.lock:
            now = self.now()
            for session in self.sessions.values():
                if session["status"] in SESSION_OPEN_STATES and session["_expires"] <= now:
                    self._expire(session)
            for refund in list(self.refunds.values()):
                if refund["status"] == "pending" and refund.get("_settle_at", now + 1) <= now:
                    self.settle_refund(refund["id"], succeed=True)

    # ── persistence ──────────────────────────────────────────────────────────

    STORES = ("customers", "sessions", "payments", "refunds", "events", "endpoints", "deliveries")

    def dump(self, *, private: bool = False) -> dict[str, Any]:
        with self.lock:
            state: dict[str, Any] = {}
            for name in self.STORES:
                items = sorted(getattr(self, name).values(), key=lambda o: o["_seq"])
                state[name] = [copy.deepcopy(o) if private else self.public(o) for o in items]
            state["clock"] = {"now": iso(self.now()), "offsetSeconds": self.clock_offset}
            state["faults"] = [f.as_dict() for f in self.faults]
            state["held"] = self.held
            return state

    def save(self, path: str) -> None:
        persistence.save(self, path)

    def load(self, path: str) -> None:
        persistence.load(self, path)


def _subscribed(endpoint: dict[str, Any], kind: str) -> bool:
    wanted = endpoint.get("events") or ["*"]
    return "*" in wanted or kind in wanted or f"plugipay.{kind}.v1" in wanted


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key in ("method", "path"):
        if a.get(key) != b.get(key):
            return key
    body_a, body_b = a.get("body"), b.get("body")
    if isinstance(body_a, dict) and isinstance(body_b, dict):
        for key in sorted(set(body_a) | set(body_b)):
            if body_a.get(key) != body_b.get(key):
                return key
    return "body"


def shuffled(items: list[Any], order: str) -> list[Any]:
    if order == "reverse":
        return list(reversed(items))
    if order == "shuffle":
        items = list(items)
        random.shuffle(items)
        return items
    return list(items)
