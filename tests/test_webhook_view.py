"""WebhookView through Django's test client with signed payloads (no sandbox needed)."""

import functools
import json
import time

import pytest
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_plugipay import signals
from django_plugipay.models import CheckoutSession, Payment, Refund, WebhookEvent
from django_plugipay.testing import build_event, signed_webhook
from django_plugipay.webhooks import parse_event
from tests.strategies import signature_headers

pytestmark = pytest.mark.django_db
SECRET = "whsec_plugipay_testing"
URL = "/plugipay/webhook/"
# No deadline and no "too slow" check: a loaded CI runner is slow, not wrong.
LOADED_MACHINE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def post(client, payload, secret=SECRET, **kwargs):
    body, headers = signed_webhook(payload, secret, **kwargs)
    return client.post(URL, body, content_type="application/json", headers=headers)


def completed(style="sdk", event_id="evt_completed"):
    obj = {
        "id": "cs_1",
        "status": "completed",
        "amount": 5000,
        "currency": "IDR",
        "paymentId": "pay_1",
        "paymentMethod": "card",
        "mode": "test",
        "completedAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }
    if style == "docs":
        obj["status"] = "complete"
    return build_event("checkout_session.completed", obj, event_id=event_id, style=style)


def test_url_name():
    assert reverse("plugipay:webhook") == URL


def test_valid_event_is_recorded_and_applied(client, signal_log):
    response = post(client, completed())
    assert response.status_code == 200 and response.json()["status"] == "processed"
    event = WebhookEvent.objects.get()
    assert event.kind == "checkout_session.completed" and event.attempts == 1
    assert CheckoutSession.objects.get().status == "completed"
    assert [n for n, _ in signal_log] == [
        "checkout_session_completed",
        "payment_succeeded",
        "webhook_received",
    ]


def test_same_event_five_times_in_a_row(client, signal_log):
    codes = [post(client, completed()).status_code for _ in range(5)]
    assert codes == [200] * 5
    assert WebhookEvent.objects.count() == 1
    assert signal_log.names() == [  # every signal once, the event's announcement included
        "checkout_session_completed",
        "payment_succeeded",
        "webhook_received",
    ]


@pytest.mark.parametrize("style", ["sdk", "docs"])
def test_both_shapes_and_namings_give_identical_results(client, style):
    post(client, completed(style))
    session = CheckoutSession.objects.values("status", "amount", "currency", "payment_method").get()
    assert session == {
        "status": "completed",
        "amount": 5000,
        "currency": "IDR",
        "payment_method": "card",
    }
    assert Payment.objects.values_list("plugipay_id", "status").get() == ("pay_1", "succeeded")


def test_unknown_kind_is_ignored_but_announced(client, signal_log):
    response = post(client, build_event("widget.paid", {"id": "wdg_1"}))
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"
    assert signal_log == [("webhook_received", WebhookEvent.objects.get().event_id)]


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda b: {}, 401),
        (lambda b: {"X-Plugipay-Signature": "garbage"}, 401),
        (lambda b: signed_webhook(b, "whsec_wrong")[1], 401),
        (lambda b: signed_webhook(b, SECRET, timestamp=int(time.time()) - 301)[1], 401),
        # ahead by more than the 300 s tolerance even after a slow second (int() floors)
        (lambda b: signed_webhook(b, SECRET, timestamp=int(time.time()) + 330)[1], 401),
    ],
)
def test_bad_signatures_store_nothing(client, make, status):
    body = json.dumps(completed()).encode()
    response = client.post(URL, body, content_type="application/json", headers=make(body))
    assert response.status_code == status and "error" in response.json()
    assert not WebhookEvent.objects.exists() and not CheckoutSession.objects.exists()


def test_docs_header_name_and_rotated_secrets(client, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": ["whsec_new", SECRET]}
    response = post(client, completed(), header="Plugipay-Signature")
    assert response.status_code == 200
    assert post(client, completed(event_id="evt_2"), "whsec_new").status_code == 200


@pytest.mark.parametrize("where", ["value", "key", "id"])
def test_a_lone_surrogate_anywhere_is_400_and_stores_nothing(client, where):
    """JSON may escape a lone UTF-16 surrogate ("\\ud800"); no UTF-8 database can store it."""
    event = completed()
    obj = event["data"]["object"]
    if where == "value":
        obj["metadata"] = {"note": "\ud800"}
    elif where == "key":
        obj["metadata"] = {"\udfff": 0}
    else:
        event["id"] = "evt_\ud800"
    response = post(client, event)
    assert response.status_code == 400, response.content
    assert not WebhookEvent.objects.exists() and not CheckoutSession.objects.exists()


@pytest.mark.parametrize(
    ("note", "encode"),
    [
        ("\ud800", lambda text: text.encode("utf-8", "surrogatepass")),  # a lone surrogate
        ("Bu Sri", lambda text: text.encode("utf-16")),
        ("Bu Sri", lambda text: text.encode() + b"\xff"),
    ],
    ids=["surrogate-bytes", "utf-16", "stray-byte"],
)
def test_a_body_that_is_not_utf8_is_400_and_stores_nothing(client, note, encode):
    """Python's JSON parser takes UTF-16 and UTF-8 bytes that encode a lone surrogate (which
    no UTF-8 database stores: the insert failed, and every delivery was answered 503)."""
    event = completed()
    event["data"]["object"]["metadata"] = {"note": note}
    response = post(client, encode(json.dumps(event, ensure_ascii=False)))
    assert response.status_code == 400, response.content
    assert not WebhookEvent.objects.exists() and not CheckoutSession.objects.exists()


def test_a_leading_byte_order_mark_is_ignored(client):
    body = "\ufeff".encode() + json.dumps(completed()).encode()
    assert post(client, body).status_code == 200
    assert WebhookEvent.objects.get().payload["id"] == "evt_completed"


@pytest.mark.parametrize("big", ["1e400", "-1E999", "1" * 400 + ".5", "NaN", "-Infinity"])
def test_a_number_no_float_holds_is_400_and_stores_nothing(client, big):
    body = json.dumps(completed()).encode()[:-1] + f', "n": {big}}}'.encode()
    assert post(client, body).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2, 3]", b'{"no": "id"}'])
def test_signed_non_event_bodies_are_400(client, body):
    assert post(client, body).status_code == 400
    assert not WebhookEvent.objects.exists()


def test_two_mebibytes_is_413(client):
    body = b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert post(client, body).status_code == 413


@pytest.mark.parametrize("declared", ["\u00b2", "9" * 5000, "-1", " 10"])
def test_a_content_length_that_is_not_a_plain_number_is_413(client, declared):
    """``"²".isdigit()`` is true and ``int("9" * 5000)`` refuses: both used to answer 500."""
    body = json.dumps(completed()).encode()
    headers = signed_webhook(body, SECRET)[1]
    response = client.post(
        URL, body, content_type="application/json", headers=headers, CONTENT_LENGTH=declared
    )
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


def test_a_huge_signature_header_is_401(client):
    body = json.dumps(completed()).encode()
    header = signed_webhook(body, SECRET)[1]["X-Plugipay-Signature"] + "," + "v0=x" * 20_000
    response = client.post(
        URL, body, content_type="application/json", headers={"X-Plugipay-Signature": header}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "signature_malformed"


def test_get_is_405(client):
    assert client.get(URL).status_code == 405


def test_a_raising_receiver_fails_the_event_and_the_redelivery_succeeds(client):
    shipped = []

    def ship(sender, instance, event, **kwargs):
        if not shipped and not getattr(ship, "failed", False):
            ship.failed = True
            raise RuntimeError("warehouse is down")
        shipped.append(instance.plugipay_id)

    signals.payment_succeeded.connect(ship)
    try:
        assert post(client, completed()).status_code == 500
        event = WebhookEvent.objects.get()
        assert event.status == "failed" and event.attempts == 1
        assert "warehouse is down" in event.last_error
        assert not CheckoutSession.objects.exists()  # the change rolled back with it
        assert post(client, completed()).status_code == 200
        assert post(client, completed()).status_code == 200
    finally:
        signals.payment_succeeded.disconnect(ship)
    event.refresh_from_db()
    assert event.status == "processed" and event.attempts == 2 and shipped == ["pay_1"]


def test_a_receiver_that_swallows_a_database_error_fails_the_event_instead_of_losing_it(
    client,
):
    """A receiver catching an ``IntegrityError`` without its own ``atomic`` leaves Django's
    transaction marked for rollback: the event's changes are undone at its end, so the answer
    is not a 200 that would lose it, and the event is stored failed, replayable."""
    from django.db import IntegrityError

    from django_plugipay.models import Customer

    def remember_customer(sender, instance, **kwargs):
        try:  # the second create is a duplicate: a mistake the shop did not see
            Customer.objects.create(plugipay_id="cus_dup", email="a@shop.test")
            Customer.objects.create(plugipay_id="cus_dup", email="a@shop.test")
        except IntegrityError:
            pass

    signals.payment_succeeded.connect(remember_customer)
    try:
        assert post(client, completed()).status_code == 500
    finally:
        signals.payment_succeeded.disconnect(remember_customer)
    event = WebhookEvent.objects.get()
    assert event.status == "failed"
    assert "caught a database error" in event.last_error
    assert not CheckoutSession.objects.exists() and not Customer.objects.exists()
    assert post(client, completed()).status_code == 200
    assert CheckoutSession.objects.get().status == "completed"


def test_a_refund_before_its_payment_is_409_then_applied_on_redelivery(client, signal_log):
    """Out of order and not fetchable (Plugipay has no payments endpoint): stored failed,
    answered 409 (a 4xx: the sender's order, not our fault), applied when delivered again."""
    refund = {"id": "rfd_1", "chargeId": "pay_1", "amount": 1000, "status": "succeeded"}
    early = build_event("refund.succeeded", refund, event_id="evt_refund")
    response = post(client, early)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "unresolved_reference"
    event = WebhookEvent.objects.get()
    assert event.status == "failed" and "pay_1" in event.last_error
    assert post(client, completed()).status_code == 200
    assert post(client, early).status_code == 200
    assert WebhookEvent.objects.get(event_id="evt_refund").status == "processed"
    assert Payment.objects.get().amount_refunded == 1000
    assert [n for n, _ in signal_log].count("refund_succeeded") == 1


def test_celery_mode_records_then_applies(client, settings, django_capture_on_commit_callbacks):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, completed())
    assert response.status_code == 200 and response.json()["status"] == "received"
    assert WebhookEvent.objects.get().status == "processed"
    assert CheckoutSession.objects.get().status == "completed"


def test_replay_command_reapplies_failed_events(client):
    from django.core.management import call_command

    def boom(**kwargs):
        raise RuntimeError("boom")

    signals.checkout_session_completed.connect(boom)
    try:
        post(client, completed())
    finally:
        signals.checkout_session_completed.disconnect(boom)
    assert WebhookEvent.objects.get().status == "failed"
    call_command("plugipay_replay", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert WebhookEvent.objects.get().status == "processed"


# ── properties ────────────────────────────────────────────────────────────────


def sequence():
    """A session's life: created, a declined attempt, paid, refunded, plus late echoes."""
    session = {"id": "cs_p", "amount": 9000, "currency": "IDR", "mode": "test"}
    refund = {
        "id": "rfd_p",
        "chargeId": "pay_ok",
        "amount": 4000,
        "currency": "IDR",
        "mode": "test",
    }
    charge = {
        "checkoutSessionId": "cs_p",
        "amount": 9000,
        "currency": "IDR",
        "mode": "test",
        "method": "card",
    }
    return [
        build_event(
            "checkout_session.created",
            {**session, "status": "open", "updatedAt": "2026-01-01T00:00:00Z"},
        ),
        build_event(
            "payment.failed",
            {**charge, "id": "pay_declined", "status": "failed", "failureCode": "card_declined"},
        ),
        build_event(
            "checkout_session.completed",
            {
                **session,
                "status": "completed",
                "paymentId": "pay_ok",
                "paymentMethod": "card",
                "completedAt": "2026-01-01T00:02:00Z",
                "updatedAt": "2026-01-01T00:02:00Z",
            },
        ),
        build_event("payment.succeeded", {**charge, "id": "pay_ok", "status": "succeeded"}),
        build_event(
            "refund.created", {**refund, "status": "pending", "updatedAt": "2026-01-01T00:03:00Z"}
        ),
        build_event(
            "refund.succeeded",
            {**refund, "status": "succeeded", "updatedAt": "2026-01-01T00:04:00Z"},
        ),
    ]


def record(sent, name, **kwargs):
    sent.append(name)


EXPECTED_SIGNALS = {
    "checkout_session_completed": 1,
    "payment_succeeded": 1,
    "payment_failed": 1,
    "refund_succeeded": 1,
}


@settings(max_examples=40, deadline=None, suppress_health_check=LOADED_MACHINE)
@given(order=st.permutations(range(6)), repeats=st.lists(st.integers(0, 5), max_size=4))
def test_any_order_and_duplication_converges(client, order, repeats):
    events = sequence()
    deliveries = [events[i] for i in order] + [events[i] for i in repeats]
    sent = []
    receivers = {name: functools.partial(record, sent, name) for name in EXPECTED_SIGNALS}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        with transaction.atomic():
            for payload in deliveries:
                post(client, payload)
            for _ in range(len(events)):  # Plugipay redelivers what failed
                for event in WebhookEvent.objects.failed():
                    post(client, event.payload)
            assert not WebhookEvent.objects.failed().exists()
            assert CheckoutSession.objects.get().status == "completed"
            paid = Payment.objects.get(plugipay_id="pay_ok")
            assert (paid.status, paid.amount_refunded) == ("succeeded", 4000)
            assert Payment.objects.get(plugipay_id="pay_declined").status == "failed"
            assert Refund.objects.get().status == "succeeded"
            assert {n: sent.count(n) for n in EXPECTED_SIGNALS} == EXPECTED_SIGNALS
            transaction.set_rollback(True)
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)


@settings(max_examples=200, deadline=None, suppress_health_check=LOADED_MACHINE)
@given(
    body=st.one_of(st.binary(max_size=512), st.text(max_size=256).map(str.encode)),
    headers=st.dictionaries(
        st.sampled_from(["X-Plugipay-Signature", "Plugipay-Signature", "Content-Type"]),
        st.one_of(signature_headers, st.text(max_size=80)).filter(
            lambda v: "\n" not in v and "\r" not in v
        ),
        max_size=3,
    ),
)
def test_fuzzed_requests_never_5xx_and_store_nothing(client, body, headers):
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code < 500
    assert not WebhookEvent.objects.exists()


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_json_values,
    big=st.sampled_from(["", "1e400", "-1E999", "1" * 400 + ".5", "2.5"]),
    depth=st.integers(0, 40),
    ascii_only=st.booleans(),
)
def test_a_body_the_fast_check_passes_holds_nothing_the_walk_refuses(value, big, depth, ascii_only):
    """The raw-body check that lets most events skip the payload walk never lets through
    what the walk refuses (NUL, lone surrogates, NaN or Infinity, nesting too deep)."""
    from django_plugipay.exceptions import InvalidPayload
    from django_plugipay.services.events import _check_storable, _surely_storable
    from django_plugipay.webhooks import parse_event

    for _ in range(depth):
        value = [value]
    event = {"id": "evt_fast", "type": "plugipay.customer.created.v1", "data": {"v": value}}
    # A sender may still encode a lone surrogate's code point as UTF-8 would ("surrogatepass"):
    # such bytes are not UTF-8, though Python's JSON parser alone takes them.
    body = json.dumps(event, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if big:
        body = body[:-2] + f', "n": {big}}}}}'.encode()
    if _surely_storable(body):
        try:
            parsed = parse_event(body)
        except Exception:  # noqa: BLE001 - not an event at all: nothing to store either way
            return
        try:
            _check_storable(parsed)
        except InvalidPayload:
            pytest.fail(f"the fast check passed a body the walk refuses: {body[:200]!r}")


# ── what the queued path stores is what the inline path stores ───────────────────────


def _outcome(client, settings, capture, processing, body):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": processing}
    with capture(execute=True):
        status = post(client, body).status_code
    event = WebhookEvent.objects.get()
    outcome = (status, event.status, json.dumps(event.payload, sort_keys=True))  # 1 != 1.0
    WebhookEvent.objects.all().delete()
    CheckoutSession.objects.all().delete()
    return outcome


@pytest.mark.parametrize(
    "tail",
    [
        '"n": "\\u0000", "n": 1',  # a duplicate key hides what no database stores
        '"n": "\\ud800", "n": 1',
        '"n": 1e-16384',  # 0.0 to Python; more decimals than PostgreSQL's numeric holds
        '"n": 1.' + "0" * 16384,
        '"n": 99E3',  # a float to Python, an int to jsonb
    ],
)
def test_a_body_has_one_outcome_inline_and_queued(
    client, settings, django_capture_on_commit_callbacks, tail
):
    """The event's payload is the body as parsed, serialised again, in either mode."""
    body = json.dumps(completed()).encode()[:-1] + f", {tail}}}".encode()
    capture = django_capture_on_commit_callbacks
    inline = _outcome(client, settings, capture, "inline", body)
    assert inline[:2] == (200, "processed")
    assert _outcome(client, settings, capture, "celery", body) == inline


def test_ingest_webhook_takes_a_bytearray_body_held_to_utf8_like_bytes(settings):
    from django_plugipay.exceptions import InvalidPayload
    from django_plugipay.services import ingest_webhook

    body, headers = signed_webhook(completed(), SECRET)
    ingest_webhook(body=bytearray(body), signature=next(iter(headers.values())))
    assert WebhookEvent.objects.get().payload["id"] == "evt_completed"
    text = json.dumps(completed(event_id="evt_2"), ensure_ascii=False).replace("card", "\ud800")
    with pytest.raises(InvalidPayload):
        parse_event(bytearray(text.encode("utf-8", "surrogatepass")))
