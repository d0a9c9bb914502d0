"""The Activity section of the payment, checkout session and refund admin pages."""

import datetime as dt
import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from django_plugipay.models import Payment
from tests.factories import PaymentFactory, RefundFactory, UserFactory, WebhookEventFactory
from tests.test_admin import staff

T0 = timezone.now() - dt.timedelta(hours=1)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def log(user, obj, message, when=None):
    """An admin log entry on ``obj`` by ``user`` (at ``when``, else now)."""
    entry = LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=str(obj),
        action_flag=CHANGE,
        change_message=message,
    )
    if when is not None:
        LogEntry.objects.filter(pk=entry.pk).update(action_time=when)


def change_page(client, obj):
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return client.get(url)


def activity_rows(html):
    section = html.split('class="plugipay-activity"', 1)[1].split("</table>", 1)[0]
    return [re.sub(r"<[^>]+>", " ", row) for row in section.split("<tr>")[2:]]


@pytest.fixture
def history():
    """A paid payment, partly refunded by a staff member, with its events and an admin action."""
    payment = PaymentFactory(amount=250_000)
    session = payment.checkout_session
    alice = UserFactory(username="alice", is_staff=True)
    refund = RefundFactory(payment=payment, amount=50_000, requested_by=alice)
    Payment.objects.filter(pk=payment.pk).update(amount_refunded=50_000)
    refund.__class__.objects.filter(pk=refund.pk).update(created_at=at(3))
    for minute, kind, object_id in [
        (1, "checkout_session.completed", session.plugipay_id),
        (2, "payment.succeeded", payment.plugipay_id),
        (4, "refund.succeeded", refund.plugipay_id),
    ]:
        WebhookEventFactory(kind=kind, object_id=object_id, occurred_at=at(minute))
    WebhookEventFactory(kind="payment.succeeded", object_id="pay_someone_else")
    log(alice, payment, "Re-synced from Plugipay", when=at(5))
    return payment, session, refund


@pytest.mark.django_db
def test_payment_activity_oldest_first_with_event_links_and_who(client, history):
    payment, _session, refund = history
    client.force_login(staff())
    html = change_page(client, payment).content.decode()
    rows = activity_rows(html)
    assert len(rows) == 5
    assert "checkout_session.completed" in rows[0] and "payment.succeeded" in rows[1]
    assert "Refund of IDR 50,000 requested" in rows[2] and "alice" in rows[2]
    assert "refund.succeeded" in rows[3]
    assert "Re-synced from Plugipay" in rows[4] and "alice" in rows[4]
    assert "pay_someone_else" not in html
    assert re.search(
        r'href="/admin/django_plugipay/webhookevent/\d+/change/">payment.succeeded', html
    )


@pytest.mark.django_db
def test_the_admin_log_line_of_a_refund_request_is_not_listed_twice(client):
    payment = PaymentFactory()
    alice = UserFactory(username="alice", is_staff=True)
    refund = RefundFactory(payment=payment, requested_by=alice)
    for user in (alice, UserFactory(username="bob")):
        log(user, payment, f"Requested a refund ({user.username})", when=refund.created_at)
    client.force_login(staff())
    rows = activity_rows(change_page(client, payment).content.decode())
    assert len(rows) == 2
    assert "requested" in rows[0] + rows[1] and "(bob)" in rows[0] + rows[1]
    assert "(alice)" not in rows[0] + rows[1]


@pytest.mark.django_db
def test_session_and_refund_pages_show_their_activity(client, history):
    _payment, session, refund = history
    client.force_login(staff())
    session_rows = activity_rows(change_page(client, session).content.decode())
    assert len(session_rows) == 5 and "checkout_session.completed" in session_rows[0]
    refund_rows = activity_rows(change_page(client, refund).content.decode())
    assert len(refund_rows) == 2
    assert "requested" in refund_rows[0] and "refund.succeeded" in refund_rows[1]


def queries_for(client, obj):
    change_page(client, obj)  # warm per-process caches (content types), whatever ran before
    with CaptureQueriesContext(connection) as captured:
        assert change_page(client, obj).status_code == 200
    return len(captured)


@pytest.mark.django_db
def test_query_count_is_the_same_for_1_and_50_events(client):
    client.force_login(staff())
    counts = {}
    for n in (1, 50):
        payment = PaymentFactory()
        refunds = [RefundFactory(payment=payment, requested_by=UserFactory()) for _ in range(n)]
        for i in range(n):
            WebhookEventFactory(object_id=payment.plugipay_id, occurred_at=at(i))
            WebhookEventFactory(kind="refund.succeeded", object_id=refunds[i].plugipay_id)
            log(UserFactory(), payment, f"action {i}")
        counts[n] = (
            queries_for(client, payment),
            queries_for(client, payment.checkout_session),
            queries_for(client, refunds[0]),
        )
        assert len(activity_rows(change_page(client, payment).content.decode())) == 4 * n
    assert counts[1] == counts[50]


@pytest.mark.django_db
def test_events_of_one_instant_follow_the_session_then_its_payment(client):
    """Plugipay stamps a session's completion and its payment's success with one instant:
    whatever their ids, the session's events come first, each in its lifecycle order."""
    from django_plugipay.testing import build_event

    payment = PaymentFactory()
    session = payment.checkout_session
    same = at(1)
    for event_id, kind, object_id, status in [
        ("evt_1", "payment.succeeded", payment.plugipay_id, "succeeded"),
        ("evt_2", "checkout_session.completed", session.plugipay_id, "completed"),
        ("evt_3", "checkout_session.created", session.plugipay_id, "open"),
    ]:
        body = build_event(kind, {"id": object_id, "status": status}, event_id=event_id)
        WebhookEventFactory(kind=kind, object_id=object_id, occurred_at=same, payload=body)
    client.force_login(staff())
    rows = activity_rows(change_page(client, payment).content.decode())
    kinds = [k for row in rows for k in re.findall(r"[a-z_]+\.[a-z_]+", row) if "." in k]
    assert kinds == [
        "checkout_session.created",
        "checkout_session.completed",
        "payment.succeeded",
    ]


@pytest.mark.django_db
def test_the_status_badges_speak_the_admin_s_language(admin_client):
    payment = PaymentFactory()  # succeeded, nothing refunded
    WebhookEventFactory(object_id=payment.plugipay_id, status="processed")
    with translation.override("id"):
        listing = admin_client.get("/admin/django_plugipay/payment/").content.decode()
        page = admin_client.get(
            f"/admin/django_plugipay/payment/{payment.pk}/change/"
        ).content.decode()
    assert ">berhasil</span>" in listing and ">succeeded</span>" not in listing
    assert ">diproses</span>" in page and ">processed</span>" not in page
