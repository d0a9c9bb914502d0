"""The admin: read-only mirrors, the refund flow, operations and constant query counts."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_plugipay import services
from django_plugipay.models import Refund, WebhookEvent
from tests.factories import (
    InvoiceFactory,
    PaymentFactory,
    RefundFactory,
    UserFactory,
    WebhookEventFactory,
)

CHANGELIST = "/admin/django_plugipay/payment/"


def staff(*codenames):
    user = UserFactory(is_staff=True)
    codes = (
        "view_payment",
        "view_checkoutsession",
        "view_refund",
        "view_customer",
        "view_webhookevent",
        *codenames,
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codes))
    return user


def refund_url(payment):
    return reverse("admin:django_plugipay_payment_refund", args=[payment.pk])


@pytest.mark.django_db
def test_without_the_permission_no_action_and_403(client):
    payment = PaymentFactory()
    client.force_login(staff())
    page = client.get(CHANGELIST)
    assert page.status_code == 200 and "refund_payments" not in page.content.decode()
    assert (
        "Refund</a>"
        not in client.get(
            reverse("admin:django_plugipay_payment_change", args=[payment.pk])
        ).content.decode()
    )
    assert client.get(refund_url(payment)).status_code == 403
    assert (
        client.post(refund_url(payment), {"post": "yes", "reason": "duplicate"}).status_code == 403
    )
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_mirrors_are_read_only(client):
    payment = PaymentFactory()
    client.force_login(staff("change_payment", "add_payment", "delete_payment"))
    change = client.get(reverse("admin:django_plugipay_payment_change", args=[payment.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert client.get("/admin/django_plugipay/payment/add/").status_code == 403


@pytest.mark.django_db
def test_confirmation_page_shows_amounts_and_prefills_the_remainder(client):
    payment = PaymentFactory(amount=250_000, amount_refunded=50_000)
    RefundFactory(payment=payment, amount=50_000, status="succeeded")
    RefundFactory(payment=payment, amount=20_000, status="pending")
    client.force_login(staff("refund_payment"))
    html = client.get(refund_url(payment)).content.decode()
    assert "IDR 250,000" in html and "IDR 50,000" in html and "IDR 20,000" in html
    assert "IDR 180,000" in html and 'value="180000"' in html
    assert "Yes, refund" in html and "No, go back" in html


def test_partial_refund_through_the_page(plugipay_sandbox, client):
    payment = plugipay_sandbox.paid_payment(250_000)
    user = staff("refund_payment")
    client.force_login(user)
    response = client.post(
        refund_url(payment), {"post": "yes", "amount": "100,000", "reason": "requested_by_customer"}
    )
    assert response.status_code == 302
    plugipay_sandbox.flush()
    refund = Refund.objects.get()
    assert refund.amount == 100_000 and refund.status == "succeeded"
    assert refund.requested_by == user
    payment.refresh_from_db()
    assert payment.amount_refunded == 100_000
    entry = LogEntry.objects.get()
    assert "IDR 100,000" in entry.get_change_message() and entry.user == user


def test_full_refund_from_the_action(plugipay_sandbox, client):
    payment = plugipay_sandbox.paid_payment(40_000)
    client.force_login(staff("refund_payment"))
    confirm = client.post(
        CHANGELIST, {"action": "refund_payments", "_selected_action": [payment.pk]}
    )
    assert confirm.status_code == 200 and "Refund selected payments" in confirm.content.decode()
    done = client.post(
        CHANGELIST,
        {
            "action": "refund_payments",
            "_selected_action": [payment.pk],
            "post": "yes",
            "amount": "40000",  # the pre-filled remainder, as the browser submits it
            "reason": "duplicate",
        },
        follow=True,
    )
    assert "Requested 1 refund" in done.content.decode()
    payment.refresh_from_db()
    assert payment.is_refunded


@pytest.mark.parametrize("emptied", ["", "   "])
def test_an_emptied_amount_is_asked_for_again_not_read_as_everything_left(
    plugipay_sandbox, client, emptied
):
    """The one-payment form is pre-filled with the remainder; a clerk who clears it has not
    said how much, so the page asks again and nothing is refunded."""
    payment = plugipay_sandbox.paid_payment(40_000)
    client.force_login(staff("refund_payment"))
    page = client.post(
        CHANGELIST,
        {
            "action": "refund_payments",
            "_selected_action": [payment.pk],
            "post": "yes",
            "amount": emptied,
            "reason": "duplicate",
        },
    )
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()
    assert not Refund.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("250001", "more than the IDR 250,000 left to refund"),
        ("0", "above zero"),
        ("12.5", "at most 0 decimal places"),
        ("lots", "is not an amount"),
    ],
)
def test_bad_amounts_are_shown_inline(client, amount, message):
    payment = PaymentFactory(amount=250_000)
    client.force_login(staff("refund_payment"))
    response = client.post(
        refund_url(payment), {"post": "yes", "amount": amount, "reason": "duplicate"}
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_other_needs_a_description(client):
    payment = PaymentFactory()
    client.force_login(staff("refund_payment"))
    response = client.post(refund_url(payment), {"post": "yes", "reason": "other"})
    assert "Describe the reason" in response.content.decode()
    assert not Refund.objects.exists()


def test_mixed_selection_refunds_what_it_can_and_lists_the_rest(plugipay_sandbox, client):
    good = plugipay_sandbox.paid_payment(10_000)
    failed = PaymentFactory(status="failed")
    done = PaymentFactory(amount=5_000, amount_refunded=5_000)
    RefundFactory(payment=done, amount=5_000)
    client.force_login(staff("refund_payment"))
    ids = [good.pk, failed.pk, done.pk]
    confirm = client.post(CHANGELIST, {"action": "refund_payments", "_selected_action": ids})
    html = confirm.content.decode()
    assert "is failed; only succeeded payments can be refunded" in html
    assert "Nothing is left to refund" in html
    result = client.post(
        CHANGELIST,
        {
            "action": "refund_payments",
            "_selected_action": ids,
            "post": "yes",
            "reason": "fraudulent",
        },
        follow=True,
    )
    text = result.content.decode()
    assert "Requested 1 refund" in text and "Skipped 2 payments" in text
    assert list(Refund.objects.filter(payment=good).values_list("amount", flat=True)) == [10_000]


def test_cancel_sessions_and_resync_actions(plugipay_sandbox, client):
    session = services.create_checkout_session(
        amount=1000, currency="IDR", success_url="https://a.test", cancel_url="https://b.test"
    )
    client.force_login(staff("change_checkoutsession"))
    url = "/admin/django_plugipay/checkoutsession/"
    confirm = client.post(url, {"action": "cancel_sessions", "_selected_action": [session.pk]})
    assert "Cancel these sessions" in confirm.content.decode()
    client.post(url, {"action": "cancel_sessions", "_selected_action": [session.pk], "post": "yes"})
    session.refresh_from_db()
    assert session.status == "canceled"
    client.post(url, {"action": "resync", "_selected_action": [session.pk], "post": "yes"})


@pytest.mark.django_db
def test_event_page_and_reprocess(client):
    from django_plugipay.testing import build_event

    payload = build_event("customer.created", {"id": "cus_1", "email": "a@b.c"})
    event = WebhookEvent.objects.create(
        event_id=payload["id"],
        type=payload["type"],
        kind="customer.created",
        payload=payload,
        status="failed",
        attempts=2,
        last_error="boom",
    )
    client.force_login(staff("change_webhookevent"))
    page = client.get(reverse("admin:django_plugipay_webhookevent_change", args=[event.pk]))
    html = page.content.decode()
    assert "boom" in html and "&quot;email&quot;: &quot;a@b.c&quot;" in html
    client.post(
        "/admin/django_plugipay/webhookevent/",
        {"action": "reprocess_events", "_selected_action": [event.pk], "post": "yes"},
    )
    event.refresh_from_db()
    assert event.status == "processed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        CHANGELIST,
        "/admin/django_plugipay/refund/",
        "/admin/django_plugipay/checkoutsession/",
        "/admin/django_plugipay/customer/",
        "/admin/django_plugipay/webhookevent/",
        "/admin/django_plugipay/plan/",
        "/admin/django_plugipay/price/",
        "/admin/django_plugipay/subscription/",
        "/admin/django_plugipay/invoice/",
    ],
)
def test_changelist_queries_do_not_grow_with_rows(client, url):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    def add_rows(count):  # a refund → payment → session → customer chain and its event each
        for refund in RefundFactory.create_batch(count):
            WebhookEventFactory(object_id=refund.payment.plugipay_id)
        # invoice payments: each brings its subscription, price, plan, customer and user
        for invoice in InvoiceFactory.create_batch(count):
            PaymentFactory(invoice=invoice, checkout_session=None, customer=invoice.customer)

    def queries(rows):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        assert response.context["cl"].result_count >= rows  # the page really lists them
        return len(captured)

    add_rows(10)
    at_ten = queries(10)
    add_rows(90)
    assert queries(100) == at_ten


@pytest.mark.django_db
def test_metadata_search(client):
    other = PaymentFactory().checkout_session
    session = PaymentFactory().checkout_session
    session.metadata = {"order": "1042"}
    session.save()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    html = client.get("/admin/django_plugipay/checkoutsession/?q=order:1042").content.decode()
    assert session.plugipay_id in html and other.plugipay_id not in html
    # the payments list finds the order's payment by its session's metadata
    payments = client.get(f"{CHANGELIST}?q=order:1042")
    assert [p.pk for p in payments.context["cl"].result_list] == [session.payments.get().pk]
    # stray spaces around the colon, and the refunds list by the order of their payment
    refund = RefundFactory(payment=session.payments.get())
    RefundFactory(payment=other.payments.get())
    for term in ("order: 1042", " order:1042 ", "order :1042"):
        found = client.get(CHANGELIST, {"q": term}).context["cl"].result_list
        assert [p.pk for p in found] == [session.payments.get().pk], term
    refunds = client.get("/admin/django_plugipay/refund/", {"q": "order:1042"})
    assert [r.pk for r in refunds.context["cl"].result_list] == [refund.pk]
    email = session.payments.get().customer.email
    refunds = client.get("/admin/django_plugipay/refund/", {"q": email})
    assert [r.pk for r in refunds.context["cl"].result_list] == [refund.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "term", ["order__contains:1", "contains:1", "order__regex:(", "a__b__c:1", "isnull:x", "o'r:1"]
)
@pytest.mark.parametrize("path", ["checkoutsession", "payment", "customer"])
def test_a_metadata_search_names_a_key_never_a_lookup(client, path, term):
    """Whatever precedes the colon is a metadata key: no lookup the database lacks, no 500."""
    session = PaymentFactory().checkout_session
    session.metadata = {term.partition(":")[0]: term.partition(":")[2]}
    session.save()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(f"/admin/django_plugipay/{path}/", {"q": term})
    assert response.status_code == 200
    if path != "customer":
        assert response.context["cl"].result_count == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("ledgerentry", "posted_at"),
        ("payment", "created_at"),
        ("webhookevent", "received_at"),
        ("receipt", "issued_at"),
    ],
)
@pytest.mark.parametrize("year", ["2147483648", "-2147483649", "9999", "0"])
def test_a_date_hierarchy_year_no_date_holds_is_a_bad_lookup_not_a_500(
    admin_client, path, field, year
):
    page = admin_client.get(f"/admin/django_plugipay/{path}/", {f"{field}__year": year})
    assert page.status_code == 302 and page.url.endswith("?e=1")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("metadata", "term"),
    [
        ({"order": 1042}, "order:1042"),  # a number, as Plugipay's JSON may carry it
        ({"paid": True}, "paid:true"),  # a boolean
        ({"1": "x"}, "1:x"),  # a key that looks like a number
        ({"2024": "q1"}, "2024:q1"),
        ({"-1": "x"}, "-1:x"),
        ({'a"b': "x"}, 'a"b:x'),  # a key with a double quote
        ({"é": "x"}, "é:x"),  # unicode
        ({"a.b": "x"}, "a.b:x"),  # a dot
    ],
)
def test_a_metadata_search_finds_the_key_as_written(client, metadata, term):
    session = PaymentFactory().checkout_session
    session.metadata = metadata
    session.save()
    PaymentFactory()  # another session, not matching
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get("/admin/django_plugipay/checkoutsession/", {"q": term})
    assert response.status_code == 200
    assert [s.pk for s in response.context["cl"].result_list] == [session.pk]


@pytest.mark.django_db
def test_a_json_null_is_not_the_text_null(client):
    session = PaymentFactory().checkout_session
    session.metadata = {"coupon": None}
    session.save()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get("/admin/django_plugipay/checkoutsession/", {"q": "coupon:null"})
    assert response.context["cl"].result_count == 0


@pytest.mark.django_db
def test_links_go_only_to_pages_the_staff_member_may_open(client):
    """A clerk who may refund payments (and so view them) but not view sessions or the event
    log sees the payment's session and events as text, not as links that answer 403."""
    refund = RefundFactory()
    payment, session = refund.payment, refund.payment.checkout_session
    WebhookEventFactory(kind="payment.succeeded", object_id=payment.plugipay_id)
    session_url = reverse("admin:django_plugipay_checkoutsession_change", args=[session.pk])
    refund_url_ = reverse("admin:django_plugipay_refund_change", args=[refund.pk])
    payment_url = reverse("admin:django_plugipay_payment_change", args=[payment.pk])
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="refund_payment"))
    refund.requested_by = clerk  # who asked: shown, not linked to a user page they cannot open
    refund.save()
    user_url = reverse("admin:auth_user_change", args=[clerk.pk])
    client.force_login(clerk)
    page = client.get(payment_url).content.decode()
    assert session.plugipay_id in page and f'href="{session_url}"' not in page
    assert clerk.get_username() in page and f'href="{user_url}"' not in page
    assert f'href="{user_url}"' not in client.get(refund_url_).content.decode()
    assert "/admin/django_plugipay/webhookevent/" not in page
    assert f'href="{refund_url_}"' in page  # refund_payment implies viewing refunds
    listed = client.get(CHANGELIST).content.decode()
    assert f'href="{session_url}"' not in listed
    for url in (refund_url_, payment_url):
        assert client.get(url).status_code == 200
    assert client.get(session_url).status_code == 403

    client.force_login(UserFactory(is_staff=True, is_superuser=True))  # every link
    page = client.get(payment_url).content.decode()
    assert f'href="{session_url}"' in page
    assert "/admin/django_plugipay/webhookevent/" in page
    assert f'href="{user_url}"' in page


@pytest.mark.django_db
def test_context_added_after_the_admin_view_reaches_the_page():
    """The app's admin views return their TemplateResponse unrendered (Django's pattern: a
    subclass, or a template response middleware, may still add to it)."""
    from django.contrib import admin
    from django.test import RequestFactory

    from django_plugipay.admin import PaymentAdmin
    from django_plugipay.models import Payment

    class ProjectPaymentAdmin(PaymentAdmin):
        def changelist_view(self, request, extra_context=None):
            response = super().changelist_view(request, extra_context)
            response.context_data["title"] = "Totals added by the project"
            return response

    request = RequestFactory().get("/admin/django_plugipay/payment/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    response = ProjectPaymentAdmin(Payment, admin.site).changelist_view(request)
    response.render()  # what Django's handler does after the view and template middleware
    assert "Totals added by the project" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/django_plugipay/payment/abc/refund/",
        "/admin/django_plugipay/checkoutsession/abc/confirm/",
        "/admin/django_plugipay/receipt/abc/email/",
        "/admin/django_plugipay/payment/999999/refund/",
    ],
)
@pytest.mark.django_db
def test_a_page_of_one_object_with_an_id_that_is_none_is_a_404(client, path):
    """An id that cannot be a row's (``abc`` for a number) is a 404 as a missing one is, not
    a 500; and staff without the page's permission get a 403 before any lookup."""
    client.force_login(staff("refund_payment", "confirm_payment", "change_receipt"))
    client.raise_request_exception = False
    assert client.get(path).status_code == 404
    assert client.post(path, {"post": "yes", "reason": "duplicate"}).status_code == 404
    client.force_login(staff())
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("amount", ["20000", "15000"])  # the pre-filled remainder; over half
def test_a_refund_page_submitted_twice_says_its_first_outcome_whatever_the_amount(
    plugipay_sandbox, client, amount
):
    """faults.md: a double submit finds the refund the first submit made and says so. The
    page pre-fills the whole remainder, so the common double click is of a full refund: the
    second submit is answered "already requested from this page", not checked against the
    remainder the first one used ("Nothing is left to refund"), and sends nothing."""
    from django_plugipay.admin import tokens

    payment = plugipay_sandbox.paid_payment(20_000)
    client.force_login(staff("refund_payment"))
    data = {"action": "refund_payments", "_selected_action": [payment.pk]}
    token = client.post(CHANGELIST, data).context["token"]
    confirm = {**data, "post": "yes", "amount": amount, "reason": "duplicate", tokens.FIELD: token}
    first = client.post(CHANGELIST, confirm, follow=True)
    assert "Requested 1 refund" in first.content.decode()
    again = client.post(CHANGELIST, confirm, follow=True)
    assert "already requested from this page" in again.content.decode()
    assert "Nothing is left" not in again.content.decode()
    plugipay_sandbox.flush()
    assert Refund.objects.count() == 1 and len(plugipay_sandbox.state()["refunds"]) == 1
