"""One home for policy: permission names, staff and ownership rules, refund eligibility and
import-string settings each live in one place, and the admin, the API and the views agree."""

import datetime as dt
import re
from importlib.util import find_spec
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from django_plugipay import billing, permissions, services
from django_plugipay.admin.refunds import RefundForm
from django_plugipay.conf import app_settings
from django_plugipay.exceptions import RefundError
from django_plugipay.models import (
    CheckoutSession,
    Customer,
    Invoice,
    Payment,
    Refund,
    Subscription,
)
from django_plugipay.money import MAX_AMOUNT
from django_plugipay.testing import build_event
from tests.factories import (
    CheckoutSessionFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentFactory,
    RefundFactory,
    UserFactory,
    WebhookEventFactory,
)

#: the API's tests; the rest runs where DRF is not installed too (the nodrf tox env)
needs_drf = pytest.mark.skipif(find_spec("rest_framework") is None, reason="DRF is not installed")


PACKAGE = Path(__file__).resolve().parent.parent / "django_plugipay"

# (what, pattern, the one module allowed to write it)
WRITTEN_ONCE = [
    (
        "a permission name",
        r"""["']django_plugipay\.(view|add|change|delete|refund|confirm|manage)_""",
        "permissions.py",
    ),
    ("a permission constant", r"^\s*[A-Z_]*PERMISSION\s*=", "permissions.py"),
    ("a permission check", r"\.has_perm\(|\bis_staff\b", "permissions.py"),
    ("a signature header name", r"""["'](X-)?Plugipay-Signature["']""", "webhooks.py"),
    ("the tolerance default", r"(?i)\b300\b.*tolerance|tolerance.*\b300\b", "webhooks.py"),
    ("an import-string resolution", r"\bimport_string\b", "conf.py"),
    ("a refund eligibility message", r"only succeeded payments|Describe the reason", None),
]


def sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" not in path.parts:
            yield path, path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("what", "pattern", "home"), WRITTEN_ONCE, ids=lambda v: str(v))
def test_policy_is_written_once(what, pattern, home):
    found = {
        str(path.relative_to(PACKAGE))
        for path, text in sources()
        for line in text.splitlines()
        if re.search(pattern, line.split("  # ")[0]) and not line.lstrip().startswith("#")
    }
    if home is None:  # the refund rule's messages: only in the one eligibility function
        assert found == {"services/refunds.py"}, f"{what} written in {sorted(found)}"
    else:
        assert found <= {home}, f"{what} written outside {home}: {sorted(found - {home})}"


# ── ownership: one mode rule everywhere ─────────────────────────────────────


@pytest.mark.django_db
@needs_drf
def test_every_owner_filter_reads_the_configured_mode_only():
    from rest_framework.test import APIClient

    user = UserFactory()
    mine = CustomerFactory(user=user, mode="test")
    old = CustomerFactory(user=user, mode="live")  # the same person's other-mode customer
    sessions = [CheckoutSessionFactory(customer=c, mode=c.mode) for c in (mine, old)]
    rows = {
        Customer: (mine, old),
        CheckoutSession: sessions,
        Payment: [PaymentFactory(checkout_session=s, mode=s.mode) for s in sessions],
        Invoice: [InvoiceFactory(customer=c, mode=c.mode) for c in (mine, old)],
    }
    rows[Refund] = [RefundFactory(payment=p) for p in rows[Payment]]
    assert app_settings.MODE == "test"
    for model, (test_row, _live_row) in rows.items():
        assert list(model.objects.for_user(user)) == [test_row], model.__name__
    assert list(billing.customers(user)) == list(Customer.objects.for_user(user)) == [mine]
    assert list(Subscription.objects.for_user(user)) == []

    api = APIClient()
    api.force_authenticate(user)
    listed = [p["id"] for p in api.get("/plugipay/api/payments/").json()["results"]]
    assert listed == [rows[Payment][0].plugipay_id]


@pytest.mark.django_db
def test_staff_read_every_row_only_with_the_view_permission():
    owner = UserFactory()
    invoice = InvoiceFactory(customer=CustomerFactory(user=owner))
    plain_staff = UserFactory(is_staff=True)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    assert permissions.can_read(owner, invoice)
    assert not permissions.can_read(plain_staff, invoice)
    assert permissions.can_read(viewer, invoice)
    assert not permissions.can_read(UserFactory(), invoice)


@pytest.mark.django_db
def test_invoice_document_refuses_staff_without_the_view_permission(client):
    invoice = InvoiceFactory(customer=CustomerFactory(user=UserFactory()))
    client.force_login(UserFactory(is_staff=True))
    url = reverse("plugipay:invoice_document", args=[invoice.plugipay_id])
    assert client.get(url).status_code == 404  # as the API: no view permission, no row


# ── the admin: the refund permission is enough to refund ────────────────────


def refunder():
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="refund_payment"))
    return user


def test_can_refund_payments_alone_reaches_the_refund_button_and_refunds(plugipay_sandbox, client):
    payment = plugipay_sandbox.paid_payment(30_000)
    client.force_login(refunder())
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/django_plugipay/payment/").status_code == 200
    change = client.get(reverse("admin:django_plugipay_payment_change", args=[payment.pk]))
    refund_url = reverse("admin:django_plugipay_payment_refund", args=[payment.pk])
    assert change.status_code == 200 and refund_url in change.content.decode()
    assert client.get(refund_url).status_code == 200
    done = client.post(
        refund_url, {"post": "yes", "amount": "30000", "reason": "requested_by_customer"}
    )
    assert done.status_code == 302
    assert Refund.objects.get(payment=payment).amount == 30_000
    assert client.get(done["Location"]).status_code == 200  # back on the payment's page


@pytest.mark.django_db
def test_can_confirm_transfers_alone_opens_the_session(client):
    session = CheckoutSessionFactory(status="pending_review")
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="confirm_payment"))
    client.force_login(user)
    url = reverse("admin:django_plugipay_checkoutsession_change", args=[session.pk])
    assert client.get(url).status_code == 200
    assert client.get("/admin/django_plugipay/payment/").status_code == 403  # nothing more


@pytest.mark.django_db
def test_the_refund_reason_starts_blank_and_is_required(client):
    payment = PaymentFactory()
    client.force_login(refunder())
    url = reverse("admin:django_plugipay_payment_refund", args=[payment.pk])
    page = client.get(url).content.decode()
    select = page.split('name="reason"', 1)[1].split("</select>", 1)[0]
    first = re.findall(r"<option[^>]*>", select)[0]
    assert 'value=""' in first and "selected" in first
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_activity_follows_plugipay_sequence_within_one_second(client):
    payment = PaymentFactory()
    refund = RefundFactory(payment=payment, requested_by=None)
    second = "2026-01-01T00:00:00Z"
    when = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    # Delivered (and stored) in the wrong order, both stamped with the same second.
    for kind, status, event_id in [
        ("refund.succeeded", "succeeded", "evt_01JGKRN0000000000000000002"),
        ("refund.created", "pending", "evt_01JGKRN0000000000000000001"),
    ]:
        body = {"id": refund.plugipay_id, "status": status}
        WebhookEventFactory(
            kind=kind,
            object_id=refund.plugipay_id,
            occurred_at=when,
            payload=build_event(kind, body, event_id=event_id, occurred_at=second),
        )
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    html = client.get(reverse("admin:django_plugipay_refund_change", args=[refund.pk]))
    text = html.content.decode()
    assert text.index("refund.created") < text.index("refund.succeeded")


# ── one refund-eligibility rule ──────────────────────────────────────────────

REFUSED = [
    ({"reason": "other", "description": " "}, "description", "Describe the reason"),
    ({"reason": "duplicate", "amount": MAX_AMOUNT + 1}, "amount", "too large"),
    ({"reason": "nonsense"}, "reason", None),
]


@needs_drf
@pytest.mark.django_db
@pytest.mark.parametrize(("request_", "field", "message"), REFUSED)
def test_service_form_and_serializer_refuse_alike(request_, field, message):
    from django_plugipay.api.serializers import RefundRequestSerializer

    payment = PaymentFactory(amount=250_000)
    with pytest.raises(RefundError) as refused:
        services.refund_payment(payment=payment, **request_)
    assert refused.value.field == field
    form_data = {**request_, "amount": str(request_.get("amount", ""))}
    form = RefundForm(form_data, payment=payment, remaining=payment.remaining_to_refund())
    assert not form.is_valid() and field in form.errors
    serializer = RefundRequestSerializer(data=request_, context={"payment": payment})
    assert not serializer.is_valid() and field in serializer.errors
    if message:
        assert message in refused.value.message
        assert message in form.errors[field][0]
        assert message in str(serializer.errors[field][0])
    assert not Refund.objects.exists()


# ── import strings resolved in conf.py ───────────────────────────────────────


def test_import_string_settings_resolve_in_conf(settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_CHECKOUT_PARAMS": "tests.urls.no_such_callable"}
    with pytest.raises(ImproperlyConfigured, match=r"PLUGIPAY\['API_CHECKOUT_PARAMS'\]"):
        app_settings.API_CHECKOUT_PARAMS  # noqa: B018 - the property resolves the path
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_SUBSCRIBE_PARAMS": "django_plugipay.money.to_minor",
    }
    from django_plugipay.money import to_minor

    assert app_settings.API_SUBSCRIBE_PARAMS is to_minor
