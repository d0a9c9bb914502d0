"""Fuzz the live webhook endpoint on PostgreSQL: bad input is 4xx, never stored unverified.

Over 10,000 requests from parallel senders: unsigned, malformed signatures (huge, negative and
non-numeric timestamps, bad hex, many parts, non-UTF-8 bytes), stale and wrongly keyed
signatures, tampered bodies and signed bodies that are not events; then signed events with a
wrong type in each field the app reads. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from django_plugipay.models import CheckoutSession, Payment, WebhookEvent
from django_plugipay.testing import build_event
from django_plugipay.webhooks import sign_payload
from tests.factories import PaymentFactory

SECRET = "whsec_plugipay_testing"
SENDERS = 8
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class Case:
    category: str
    body: bytes
    headers: dict[str, str | bytes]
    expect: int  # the status the endpoint must answer (any 4xx for wrong-type events)
    event_id: str | None = None  # set for a signed event, to find its stored row


@dataclass
class Outcome:
    cases: list[Case]
    statuses: list[int]
    seconds: float

    def by_category(self) -> dict[str, collections.Counter]:
        table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for case, status in zip(self.cases, self.statuses, strict=True):
            table[case.category][status] += 1
        return table

    def report(self, title: str) -> str:
        lines = [
            f"{title}: {len(self.cases):,} requests in {self.seconds:.1f}s "
            f"({len(self.cases) / self.seconds:,.0f}/s, {SENDERS} senders)"
        ]
        for category, counts in sorted(self.by_category().items()):
            histogram = ", ".join(f"{code}×{n}" for code, n in sorted(counts.items()))
            lines.append(f"  {category:<28} {sum(counts.values()):>6,}  {histogram}")
        overall = collections.Counter(self.statuses)
        lines.append(
            "  status histogram: " + ", ".join(f"{c}×{n}" for c, n in sorted(overall.items()))
        )
        return "\n".join(lines)

    def mismatches(self) -> list[tuple[str, int, int]]:
        return [
            (case.category, case.expect, status)
            for case, status in zip(self.cases, self.statuses, strict=True)
            if status != case.expect
        ]


def send_all(url: str, cases: list[Case]) -> Outcome:
    """POST every case with ``SENDERS`` threads, each on its own pooled session."""
    statuses = [0] * len(cases)
    local = threading.local()

    def post(index: int) -> None:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        case = cases[index]
        headers = {"Content-Type": "application/json", **case.headers}
        statuses[index] = local.http.post(
            url, data=case.body, headers=headers, timeout=60
        ).status_code

    began = time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(post, range(len(cases)), chunksize=32))
    return Outcome(cases, statuses, time.perf_counter() - began)


def encode(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def session_event(tag: str, n: int) -> dict:
    return build_event(
        "checkout_session.completed",
        {
            "id": f"cs_{tag}_{n}",
            "status": "completed",
            "amount": 5000 + n,
            "currency": "IDR",
            "paymentId": f"pay_{tag}_{n}",
            "paymentMethod": "card",
            "mode": "test",
            "completedAt": "2026-01-01T00:00:00Z",
            "updatedAt": "2026-01-01T00:00:00Z",
        },
        event_id=f"evt_{tag}_{n}",
    )


# ── unverified requests and signed non-events ─────────────────────────────────────


def _hex(rng: random.Random, size: int = 64) -> str:
    return "".join(rng.choice(HEX) for _ in range(size))


def _timestamp_junk(rng: random.Random) -> str:
    return rng.choice(
        [
            "9" * rng.randint(13, 2000),  # huge: used to overflow float arithmetic
            str(rng.randint(10**300, 10**400)),
            f"-{int(time.time())}",
            "1.75e9",
            "0x68",
            "",
            "abc",
            "\u00b2\u00b3",  # digits to str.isdigit, not to int()
            "\u0661\u0667\u0665\u0660",  # Arabic-Indic digits: int() accepts them
            f" {int(time.time())}x",
            "NaN",
            "inf",
        ]
    )


def _wire(value: str) -> str | bytes:
    """A header value as bytes when latin-1 (what HTTP/1.1 carries) cannot hold it."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()
    return value


def unverified_cases(rng: random.Random, count: int) -> Iterator[Case]:
    """Everything a sender without the secret (or with a broken one) may send: all 401."""
    now = int(time.time())

    def body(n: int) -> bytes:
        return encode(session_event("unverified", n))

    makers: list[tuple[str, Callable[[int], dict[str, str | bytes]]]] = [
        ("no signature", lambda n: {}),
        (
            "empty or partial signature",
            lambda n: {"X-Plugipay-Signature": rng.choice(["", ",", "t=", "v1=", "t=,v1=", "=="])},
        ),
        (
            "huge or non-numeric t=",
            lambda n: {"X-Plugipay-Signature": _wire(f"t={_timestamp_junk(rng)},v1={_hex(rng)}")},
        ),
        (  # an hour at least, so the minutes the run takes never bring one within tolerance
            "stale or future t=",
            lambda n: {
                "X-Plugipay-Signature": sign_payload(
                    body(n), SECRET, now + rng.choice([-1, 1]) * rng.randint(3_600, 10**9)
                )
            },
        ),
        ("wrong secret", lambda n: {"X-Plugipay-Signature": sign_payload(body(n), "whsec_no")}),
        (
            "bad v1 hex",
            lambda n: {
                "X-Plugipay-Signature": f"t={now},v1="
                + rng.choice(
                    [
                        _hex(rng, rng.randint(0, 63)),
                        _hex(rng, rng.randint(65, 3000)),
                        _hex(rng, 63) + "g",
                        "00",
                    ]
                )
            },
        ),
        (
            "many parts or long header",
            lambda n: {
                "X-Plugipay-Signature": ",".join(
                    [f"t={now}"] + [f"v1={_hex(rng)}"] * rng.randint(16, 120)
                )
            },
        ),
        (
            "non-UTF-8 header bytes",
            lambda n: {
                "X-Plugipay-Signature": f"t={now},v1=".encode()
                + bytes(rng.randint(0x80, 0xFF) for _ in range(64))
            },
        ),
        (
            "docs header, forged",
            lambda n: {"Plugipay-Signature": f"t={now},v1={_hex(rng)}"},
        ),
    ]
    for n in range(count):
        category, make = makers[n % len(makers)]
        yield Case(category, body(n), make(n), 401)
    for n in range(count, count + count // 10):  # signed, then changed in transit
        signed = body(n)
        tampered = signed.replace(b'"amount":', b'"amount":1')
        yield Case(
            "tampered body", tampered, {"X-Plugipay-Signature": sign_payload(signed, SECRET)}, 401
        )


NOT_EVENTS: list[bytes] = [
    b"[]",
    b'[{"id":"evt_x","type":"payment.succeeded"}]',
    b'"payment.succeeded"',
    b"42",
    b"-1e999",
    b"null",
    b"true",
    b"{}",
    b'{"id":"evt_x"}',
    b'{"type":"payment.succeeded"}',
    b'{"id":123,"type":"payment.succeeded"}',
    b'{"id":"","type":"payment.succeeded"}',
    b'{"id":["evt_x"],"type":"payment.succeeded"}',
    b'{"id":"evt_x","type":42}',
    b'{"id":"evt_x","type":null}',
    b"not json",
    b"{",
    b"\xff\xfe\x00{",
    b"",
    b'{"id":"evt_\xff","type":"payment.succeeded"}',
    # lone UTF-16 surrogates (valid JSON, not storable in a UTF-8 database)
    b'{"id":"evt_\\ud800","type":"payment.succeeded","data":{"object":{"id":"pay_1"}}}',
    b'{"id":"evt_s","type":"payment.succeeded","data":{"object":{"id":"pay_1","metadata":'
    b'{"\\udfff":1}}}}',
]


def signed_non_events(rng: random.Random, count: int) -> Iterator[Case]:
    for n in range(count):
        body = NOT_EVENTS[n % len(NOT_EVENTS)]
        if n >= len(NOT_EVENTS):  # vary sizes and nesting as well
            body = rng.choice([body, b"[" * rng.randint(1, 200) + b"]" * rng.randint(1, 200)])
        yield Case(
            "signed non-event", body, {"X-Plugipay-Signature": sign_payload(body, SECRET)}, 400
        )


def controls(count: int) -> Iterator[Case]:
    """Correctly signed events, so the fuzz also proves the endpoint still accepts them."""
    for n in range(count):
        body = encode(session_event("control", n))
        yield Case(
            "signed valid event",
            body,
            {"X-Plugipay-Signature": sign_payload(body, SECRET)},
            200,
            event_id=f"evt_control_{n}",
        )


def test_ten_thousand_fuzzed_requests_never_5xx_and_store_nothing_unverified(postgres, live_server):
    rng = random.Random(14)
    cases = [
        *unverified_cases(rng, 7_000),
        *signed_non_events(rng, 2_000),
        *controls(300),
    ]
    rng.shuffle(cases)
    assert len(cases) >= 10_000

    outcome = send_all(live_server.url + "/plugipay/webhook/", cases)
    print("\n" + outcome.report("webhook fuzz"))

    assert not [s for s in outcome.statuses if s >= 500], outcome.report("5xx answered")
    assert not outcome.mismatches(), collections.Counter(outcome.mismatches()).most_common(10)
    # Nothing from an unverified request or a signed non-event reached the database.
    assert not WebhookEvent.objects.exclude(event_id__startswith="evt_control_").exists()
    assert not CheckoutSession.objects.exclude(plugipay_id__startswith="cs_control_").exists()
    assert not Payment.objects.exclude(plugipay_id__startswith="pay_control_").exists()
    assert WebhookEvent.objects.filter(status="processed").count() == 300
    assert CheckoutSession.objects.filter(status="completed").count() == 300


# ── signed events with a wrong type in a field the app reads ────────────────────────

BASES: dict[str, dict] = {
    "checkout_session.completed": {
        "id": "cs_base",
        "status": "completed",
        "amount": 5000,
        "currency": "IDR",
        "paymentId": "pay_base",
        "paymentMethod": "card",
        "customerId": "cus_base",
        "hostedUrl": "https://pay.test/cs_base",
        "successUrl": "https://shop.test/ok",
        "cancelUrl": "https://shop.test/no",
        "expiresAt": "2026-01-02T00:00:00Z",
        "completedAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
        "metadata": {"order": "1"},
    },
    "payment.succeeded": {
        "id": "pay_base",
        "status": "succeeded",
        "amount": 5000,
        "currency": "IDR",
        "checkoutSessionId": "cs_base",
        "customerId": "cus_base",
        "method": "card",
        "failureCode": "",
        "failureMessage": "",
        "paidAt": "2026-01-01T00:00:00Z",
    },
    "refund.succeeded": {
        "id": "rfd_base",
        "chargeId": "pay_fuzz_target",
        "amount": 100,
        "currency": "IDR",
        "status": "succeeded",
        "reason": "requested_by_customer",
        "failureCode": "",
        "updatedAt": "2026-01-01T00:00:00Z",
        "metadata": {},
    },
    "customer.created": {
        "id": "cus_base",
        "email": "buyer@example.com",
        "name": "Buyer",
        "phone": "+62811",
        "externalId": "user-1",
        "metadata": {},
    },
}
ID_FIELDS = {"id", "paymentId", "customerId", "checkoutSessionId", "chargeId", "externalId"}
# Made unique per event, so an event whose bad field were let through would not collide with
# another one's objects; chargeId names the one payment every refund is for.
OWN_IDS = ("id", "paymentId", "customerId", "checkoutSessionId")
AMOUNT_FIELDS = {"amount"}
TIME_FIELDS = {"expiresAt", "completedAt", "updatedAt", "paidAt"}
CONTAINER_FIELDS = {"metadata"}
WRONG: dict[str, list] = {
    "id": [12345, ["x"], {"id": "x"}, True, 1.5],
    "amount": ["NaN", "5000", -1, 1.5, [], {}, True, 10**30],
    "currency": [360, ["IDR"], {"code": "IDR"}, "RUPIAH"],
    "status": [1, ["succeeded"], {"status": "succeeded"}, True],
    "time": [1750000000, [], {}, True],
    "container": ["x", [1], 5, True],
    "text": [5, ["card"], {"x": 1}, True],
}


def _kind_of(field: str) -> str:
    if field in ID_FIELDS:
        return "id"
    if field in AMOUNT_FIELDS:
        return "amount"
    if field in TIME_FIELDS:
        return "time"
    if field in CONTAINER_FIELDS:
        return "container"
    if field in ("currency", "status"):
        return field
    return "text"


def wrong_type_events() -> Iterator[tuple[str, dict]]:
    """``(field, event)`` for each field of each resource × each wrong value for its kind."""
    n = 0
    for kind, base in BASES.items():
        for field in base:
            for value in WRONG[_kind_of(field)]:
                n += 1
                own = {key: f"{base[key]}_{n}" for key in OWN_IDS if key in base}
                obj = {**base, **own, field: value}
                yield field, build_event(kind, obj, event_id=f"evt_wrong_{n}")
        n += 1
        missing = {key: f"{base[key]}_{n}" for key in OWN_IDS if key in base and key != "id"}
        obj = {**{k: v for k, v in base.items() if k != "id"}, **missing}
        yield "id", build_event(kind, obj, event_id=f"evt_wrong_{n}")
    for field, values in {"data": [[], "x", 5, None], "object": [[], "x", 5]}.items():
        for value in values:  # the containers the object is read from
            n += 1
            yield field, _payment_event(n, field, value)


def _payment_event(n: int, field: str, value: object) -> dict:
    event = build_event(
        "payment.succeeded",
        {**BASES["payment.succeeded"], "id": f"pay_base_{n}"},
        event_id=f"evt_wrong_{n}",
    )
    if field == "object":
        event["data"]["object"] = value
    else:
        event[field] = value
    return event


def assert_stored_failed(url: str, events: list[tuple[str, dict]], title: str) -> None:
    """Deliver each event twice: 4xx both times, kept ``failed`` with a message naming the
    field, never a 5xx."""
    cases = [
        Case(
            f"wrong type: {field}",
            body,
            {"X-Plugipay-Signature": sign_payload(body, SECRET)},
            422,
            event_id=event["id"],
        )
        for field, event in events
        for body in [encode(event)]
    ] * 2  # every one delivered twice, as Plugipay redelivers
    outcome = send_all(url, cases)
    print("\n" + outcome.report(title))

    assert not [s for s in outcome.statuses if s >= 500], outcome.report("5xx answered")
    assert all(400 <= s < 500 for s in outcome.statuses), outcome.report("not 4xx")
    stored = {e.event_id: e for e in WebhookEvent.objects.all()}
    for field, event in events:
        row = stored.get(event["id"])
        assert row is not None, f"{event['id']} ({field}) was not stored"
        assert row.status == "failed", (event["id"], field, row.status)
        named = {field.lower(), _snake(field)}
        if field in ("data", "object"):  # no object to read: the message names the object
            named.add("object")
        assert any(name in row.last_error.lower() for name in named), (field, row.last_error)


def test_signed_events_with_wrong_types_are_stored_failed_and_answered_4xx(postgres, live_server):
    """DESIGN §6 rule 11, for a wrong type in each field of each resource's object."""
    PaymentFactory(plugipay_id="pay_fuzz_target", amount=1_000_000)
    events = list(wrong_type_events())
    assert_stored_failed(live_server.url + "/plugipay/webhook/", events, "signed wrong-type events")


def test_a_wrong_type_in_the_events_occurred_at_is_stored_failed(postgres, live_server):
    events = [
        ("occurredAt", _payment_event(n, "occurredAt", value))
        for n, value in enumerate([5, [], {}, True], start=10_000)
    ]
    assert_stored_failed(
        live_server.url + "/plugipay/webhook/", events, "signed events, wrong occurredAt"
    )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
