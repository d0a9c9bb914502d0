"""Signed events with hostile values, each once found by fuzzing: never a 5xx.

Rule under test (docs/explanation/security.md, exactly-once.md): nothing a sender controls is
ever a 5xx; a signed event with bad values is stored ``failed`` and answered 4xx.
"""

import pytest

from django_plugipay import services
from django_plugipay.exceptions import APIError
from django_plugipay.models import Customer, WebhookEvent
from django_plugipay.services import events
from django_plugipay.specs import all_specs, spec_for
from django_plugipay.testing import build_event, signed_webhook

pytestmark = pytest.mark.django_db
SECRET = "whsec_plugipay_testing"
URL = "/plugipay/webhook/"


def post(client, payload):
    body, headers = signed_webhook(payload, SECRET)
    return client.post(URL, body, content_type="application/json", headers=headers)


def seed(client, *names):
    """Apply the spec examples (customer, plan, price, session, subscription, invoice,
    payment, …) so that every reference of a later event resolves."""
    for i, spec in enumerate(all_specs()):
        if names and spec.name not in names:
            continue
        event = build_event(f"{spec.name}.updated", dict(spec.example), event_id=f"evt_seed_{i}")
        assert post(client, event).status_code == 200


def assert_failed_4xx(response, event_id):
    assert response.status_code < 500, response.content
    assert 400 <= response.status_code < 500, response.content
    assert WebhookEvent.objects.get(event_id=event_id).status == "failed"


# 1. A time that leaves datetime's range once converted to UTC ───────────────────────
#    SQLite: OverflowError when Django converts it to naive UTC → 500.
#    PostgreSQL: "-23:59" is refused (time zone displacement out of range) → 500; "+01:00" on
#    0001-01-01 is stored as 1 BC, which psycopg cannot read back, so the row is unreadable.


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize(
    ("resource", "key"),
    [
        ("checkout_session", "completedAt"),
        ("payment", "paidAt"),
        ("subscription", "currentPeriodEnd"),
        ("invoice", "dueAt"),
        ("payout", "processedAt"),
        ("receipt", "issuedAt"),
        ("ledger_entry", "postedAt"),
    ],
)
def test_an_out_of_range_time_in_an_object_is_never_a_5xx(client, resource, key, value):
    seed(client)
    spec = spec_for(resource)
    obj = {**spec.example, key: value}
    response = post(client, build_event(f"{resource}.updated", obj, event_id="evt_time"))
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert WebhookEvent.objects.get(event_id="evt_time").status == "failed"
    # whatever was stored can be read back, and the object's next event is applied
    list(spec.model.objects.filter(plugipay_id=spec.example["id"]).values())
    later = {**spec.example, "updatedAt": "2026-06-01T00:00:00Z"}
    assert (
        post(client, build_event(f"{resource}.updated", later, event_id="evt_next")).status_code
        < 500
    )


# 2. The same in the envelope's occurredAt ─────────────────────────────────────────────
#    SQLite (both values) and PostgreSQL ("-23:59"): 503 and nothing stored — Plugipay is told
#    to deliver again, for 72 hours, and the event never appears in the admin.


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_an_out_of_range_occurred_at_is_never_a_5xx(client, value):
    event = build_event("customer.updated", spec_for("customer").example, event_id="evt_occ")
    event["occurredAt"] = value
    response = post(client, event)
    assert response.status_code < 500, response.content
    assert WebhookEvent.objects.filter(event_id="evt_occ").exists()
    list(WebhookEvent.objects.filter(event_id="evt_occ").values())  # readable


# 3. Values the spec accepts but a database constraint refuses: IntegrityError → 500 ───


def test_a_price_model_outside_the_choices_is_4xx_and_stored_failed(client):
    seed(client, "customer", "plan", "price")
    obj = {**spec_for("price").example, "model": "per_seat"}
    response = post(client, build_event("price.updated", obj, event_id="evt_model"))
    assert_failed_4xx(response, "evt_model")


def test_a_flat_price_becoming_tiered_is_not_a_500(client):
    """``tiered`` is one of the model's own choices."""
    seed(client, "customer", "plan", "price")
    obj = {**spec_for("price").example, "model": "tiered", "updatedAt": "2026-02-01T00:00:00Z"}
    response = post(client, build_event("price.updated", obj, event_id="evt_tiered"))
    assert response.status_code < 500, response.content


def test_a_second_succeeded_payment_of_one_session_is_not_a_500(client):
    seed(client, "customer", "checkout_session", "payment")
    obj = {**spec_for("payment").example, "id": "pay_other"}  # same session cs_v, succeeded
    response = post(client, build_event("payment.succeeded", obj, event_id="evt_pay2"))
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert WebhookEvent.objects.get(event_id="evt_pay2").status == "failed"


def test_a_payment_naming_an_unknown_session_is_not_a_500(client, plugipay_sandbox):
    """The session is fetched first (out of order); Plugipay does not know it either: 4xx."""
    seed(client, "customer", "checkout_session", "payment")
    obj = {**spec_for("payment").example, "checkoutSessionId": "cs_unknown"}
    response = post(client, build_event("payment.updated", obj, event_id="evt_paysess"))
    assert response.status_code < 500, response.content


def test_a_refund_larger_than_its_payment_is_4xx_and_stored_failed(client):
    seed(client, "customer", "checkout_session", "payment")
    obj = {**spec_for("refund").example, "amount": 5001}  # the payment is 5000
    response = post(client, build_event("refund.succeeded", obj, event_id="evt_big_refund"))
    assert_failed_4xx(response, "evt_big_refund")


# 4. A currency with a trailing newline passes the regex ("$" matches before "\n") ─────


def test_a_currency_with_a_trailing_newline_is_4xx_and_stored_failed(client):
    seed(client, "customer")
    cs = {
        **spec_for("checkout_session").example,
        "currency": "IDR\n",
        "status": "open",
        "paymentId": None,
    }
    response = post(client, build_event("checkout_session.created", cs, event_id="evt_cur"))
    assert response.status_code < 500, response.content
    if response.status_code < 300:  # applied: then the column holds a three-letter code
        from django_plugipay.models import CheckoutSession

        assert CheckoutSession.objects.get(plugipay_id="cs_v").currency == "IDR"
    else:
        assert WebhookEvent.objects.get(event_id="evt_cur").status == "failed"


# 5. Integers the spec allows (≤ 2**63-1) in PositiveIntegerField columns ────────────────


@pytest.mark.parametrize(
    ("resource", "key"),
    [("plan", "trialDays"), ("plan", "intervalCount"), ("invoice", "collectionAttempts")],
)
def test_an_integer_beyond_the_column_is_4xx_and_stored_failed(client, resource, key):
    seed(client)
    obj = {**spec_for(resource).example, key: 2**31, "updatedAt": "2026-03-01T00:00:00Z"}
    response = post(client, build_event(f"{resource}.updated", obj, event_id="evt_int"))
    assert response.status_code < 500, response.content  # PostgreSQL: integer is 32-bit


# 6. A reference Plugipay does not know (its fetch answers 404) ──────────────────────────


@pytest.mark.parametrize(
    ("resource", "key"),
    [
        ("subscription", "customerId"),
        ("subscription", "planId"),
        ("invoice", "subscriptionId"),
        ("price", "planId"),
    ],
)
def test_a_reference_plugipay_answers_404_for_is_not_a_500(client, monkeypatch, resource, key):
    def not_found(self, plugipay_id):
        raise APIError(f"No such object: {plugipay_id}", status=404, code="not_found")

    for spec in all_specs():
        if spec.fetchable:
            monkeypatch.setattr(type(spec), "fetch", not_found)
    seed(client)
    obj = {**spec_for(resource).example, key: "xyz_does_not_exist"}
    response = post(client, build_event(f"{resource}.updated", obj, event_id="evt_ref"))
    assert response.status_code < 500, response.content
    assert WebhookEvent.objects.get(event_id="evt_ref").status == "failed"


# 7. Queued mode: the out-of-range occurredAt is a 503 there too (record_event cannot store it)


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_queued_an_out_of_range_occurred_at_is_never_a_5xx(
    client, settings, django_capture_on_commit_callbacks, value
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    event = build_event("customer.updated", spec_for("customer").example, event_id="evt_qocc")
    event["occurredAt"] = value
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, event)
    assert response.status_code < 500, response.content
    assert WebhookEvent.objects.filter(event_id="evt_qocc").exists()


def test_a_failed_event_with_an_out_of_range_occurred_at_stays_readable(client):
    """PostgreSQL: stored as 1 BC, which psycopg cannot read: the failed event is stored but
    the admin's list, replay and every full read of the row raise DataError."""
    event = build_event("customer.updated", {"email": "a@example.com"}, event_id="evt_bc")
    event["occurredAt"] = "0001-01-01T00:00:00+01:00"
    response = post(client, event)
    assert response.status_code < 500, response.content
    assert WebhookEvent.objects.get(event_id="evt_bc").status == "failed"


@pytest.mark.parametrize(
    ("zone", "value"),
    [("Asia/Jakarta", "9999-12-31T23:00:00Z"), ("America/Sao_Paulo", "0001-01-01T00:00:00Z")],
)
def test_a_time_at_the_edge_is_never_a_5xx_in_local_time_either(client, settings, zone, value):
    """USE_TZ = False stores naive local time: a time a few hours from the end of what a
    datetime holds would overflow there."""
    settings.USE_TZ, settings.TIME_ZONE = False, zone
    event = build_event("customer.updated", spec_for("customer").example, event_id="evt_edge")
    event["occurredAt"] = value
    response = post(client, event)
    assert response.status_code < 500, response.content
    assert WebhookEvent.objects.filter(event_id="evt_edge").exists()


# A redelivery of a recorded event, queued for the worker, with another body that is invalid:
# the first body recorded wins, as inline (it once marked the recorded event failed, and the
# worker's batch then never applied it).


def test_queued_redelivery_with_an_invalid_body_does_not_fail_the_recorded_event(
    client, settings, django_capture_on_commit_callbacks
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    good = build_event("customer.updated", dict(spec_for("customer").example), event_id="evt_1")
    other = build_event(
        "customer.updated", {**spec_for("customer").example, "email": 5}, event_id="evt_1"
    )
    with django_capture_on_commit_callbacks(execute=False):  # the worker has not run yet
        assert post(client, good).status_code == 200
        second = post(client, other)
    event = WebhookEvent.objects.get(event_id="evt_1")
    assert event.payload["data"]["object"]["email"] == "a@example.com"  # first body recorded
    services.apply_queued_events()  # what the worker's batch task does
    event.refresh_from_db()
    assert (event.status, event.last_error) == ("processed", "")
    assert Customer.objects.get(plugipay_id="cus_v").email == "a@example.com"
    assert second.status_code == 200  # as inline mode answers a duplicate of a recorded event


def test_queued_an_invalid_body_racing_the_first_delivery_does_not_fail_it(
    client, settings, django_capture_on_commit_callbacks, monkeypatch
):
    """Delivery A (valid) records the event, queued for the worker, just before delivery B
    (invalid body) stores its failure: B leaves A's event as it is."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    good = build_event("customer.updated", dict(spec_for("customer").example), event_id="evt_r")
    bad = build_event(
        "customer.updated", {**spec_for("customer").example, "email": 5}, event_id="evt_r"
    )
    real = events._record_failure
    first = []

    def a_commits_first(parsed, source, exc, **kwargs):
        if not first:
            first.append(post(client, good).status_code)  # A, just before B's write
        return real(parsed, source, exc, **kwargs)

    monkeypatch.setattr(events, "_record_failure", a_commits_first)
    with django_capture_on_commit_callbacks(execute=False):  # the worker has not run yet
        second = post(client, bad)
    assert first == [200]
    services.apply_queued_events()  # what the worker's batch task does
    event = WebhookEvent.objects.get(event_id="evt_r")
    assert (event.status, event.last_error) == ("processed", ""), (
        second.status_code,
        event.status,
        event.last_error[:80],
    )
    assert Customer.objects.filter(plugipay_id="cus_v").exists()


@pytest.mark.parametrize("error", ["RuntimeError", "IntegrityError"])
def test_a_receivers_own_database_error_is_the_500_of_a_failing_receiver(client, error):
    """A receiver (the project's code) breaking one of its own tables' constraints is a
    failing receiver (500, applied again on the next delivery), not a 422 blaming the event."""
    import django.db

    from django_plugipay import signals

    exc_type = getattr(django.db, error, None) or RuntimeError

    def receiver(sender, **kwargs):
        raise exc_type('duplicate key value violates unique constraint "shop_order_pkey"')

    signals.webhook_received.connect(receiver, dispatch_uid="review3")
    try:
        event = build_event(
            "customer.updated", dict(spec_for("customer").example), event_id="evt_x"
        )
        response = post(client, event)
    finally:
        signals.webhook_received.disconnect(dispatch_uid="review3")
    assert response.status_code == 500, response.json()


@pytest.mark.parametrize("mode", ["inline", "celery"])
def test_an_invalid_redelivery_of_a_failed_event_applies_the_recorded_one(
    client, settings, mode, django_capture_on_commit_callbacks
):
    """The recorded body (valid) failed in a receiver; the redelivery's own body is invalid.
    Inline mode applies the recorded event again (the first body wins); queued mode should too."""
    from django_plugipay import signals

    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": mode}
    broken = [True]

    def receiver(sender, **kwargs):
        if broken[0]:
            raise RuntimeError("printer jammed")

    good = build_event("customer.updated", dict(spec_for("customer").example), event_id="evt_f")
    bad = build_event(
        "customer.updated", {**spec_for("customer").example, "email": 5}, event_id="evt_f"
    )
    signals.webhook_received.connect(receiver, dispatch_uid="review3f")
    try:
        with django_capture_on_commit_callbacks(execute=True):  # no worker: applied in-process
            post(client, good)
        assert WebhookEvent.objects.get(event_id="evt_f").status == "failed"
        broken[0] = False
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, bad)
    finally:
        signals.webhook_received.disconnect(dispatch_uid="review3f")
    event = WebhookEvent.objects.get(event_id="evt_f")
    assert (response.status_code, event.status) == (200, "processed")
