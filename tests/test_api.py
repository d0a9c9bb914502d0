"""The DRF API with APIClient, against the sandbox where Plugipay is involved."""

import pytest

pytest.importorskip("rest_framework")

from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from django_plugipay import services
from django_plugipay.models import CheckoutSession, Refund
from tests.factories import CustomerFactory, PaymentFactory, UserFactory

API = "/plugipay/api"


def pricing(request, data):
    """The test project's pricing: every reference costs IDR 75,000 per unit."""
    return {
        "amount": 75_000 * data["quantity"],
        "currency": "IDR",
        "description": f"Order {data['reference']}",
        "metadata": {"order": data["reference"]},
        "success_url": "https://shop.test/ok",
        "cancel_url": "https://shop.test/no",
    }


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def staff_with(*codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/payments/"),
        ("get", "/payments/pay_1/"),
        ("get", "/refunds/rfd_1/"),
        ("get", "/checkout-sessions/cs_1/"),
        ("post", "/checkout-sessions/"),
        ("post", "/payments/pay_1/refunds/"),
    ],
)
def test_anonymous_is_refused(method, path):
    assert getattr(client_for(), method)(API + path).status_code in (401, 403)


@pytest.mark.django_db
def test_checkout_creation_is_404_until_enabled():
    response = client_for(UserFactory()).post(f"{API}/checkout-sessions/", {"reference": "A1"})
    assert response.status_code == 404


def test_checkout_create_then_success_race_reads_completed(plugipay_sandbox, settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_CHECKOUT_PARAMS": "tests.test_api.pricing",
        "API_SYNC_INTERVAL": 0,
    }
    buyer = UserFactory()
    client = client_for(buyer)
    created = client.post(
        f"{API}/checkout-sessions/", {"reference": "A1", "quantity": 2}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["amount"] == 150_000 and body["amount_display"] == "IDR 150,000"
    assert body["id"].startswith("cs_") and body["url"].startswith(plugipay_sandbox.base_url)
    assert CheckoutSession.objects.get().customer.user == buyer
    plugipay_sandbox.hold()  # no webhook yet: the buyer is back before Plugipay tells us
    plugipay_sandbox.pay(body["id"], deliver=False)
    read = client.get(f"{API}/checkout-sessions/{body['id']}/").json()
    assert read["status"] == "completed" and read["payment"].startswith("pay_")


def test_a_first_checkout_with_plugipay_down_is_a_502(plugipay_sandbox, settings):
    """The user's customer is made at Plugipay on the first checkout: when that call fails,
    the answer is the API's 502, as for the checkout itself."""
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_CHECKOUT_PARAMS": "tests.test_api.pricing",
        "MAX_RETRIES": 0,
    }
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/customers")
    client = client_for(UserFactory())
    client.raise_request_exception = False
    answer = client.post(f"{API}/checkout-sessions/", {"reference": "A1"}, format="json")
    assert answer.status_code == 502
    assert (
        client.post(f"{API}/checkout-sessions/", {"reference": "A1"}, format="json").status_code
        == 201
    )


def test_sync_on_read_is_rate_limited(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_SYNC_INTERVAL": 60}
    buyer = UserFactory()
    session = services.create_checkout_session(
        amount=1000,
        currency="IDR",
        success_url="https://a.test",
        cancel_url="https://b.test",
        customer=services.get_or_create_customer_for_user(user=buyer),
    )
    plugipay_sandbox.hold()
    plugipay_sandbox.pay(session, deliver=False)
    read = client_for(buyer).get(f"{API}/checkout-sessions/{session.plugipay_id}/").json()
    assert read["status"] == "open"  # synced at creation, less than 60 s ago


@pytest.mark.django_db
def test_other_users_objects_are_404():
    mine, theirs = UserFactory(), UserFactory()
    payment = PaymentFactory(customer=CustomerFactory(user=theirs))
    payment.checkout_session.customer = payment.customer
    payment.checkout_session.save()
    client = client_for(mine)
    assert client.get(f"{API}/payments/{payment.plugipay_id}/").status_code == 404
    session = payment.checkout_session.plugipay_id
    assert client.get(f"{API}/checkout-sessions/{session}/").status_code == 404
    assert client.get(f"{API}/payments/").json()["results"] == []
    own = client_for(theirs).get(f"{API}/payments/{payment.plugipay_id}/")
    assert own.status_code == 200 and own.json()["id"] == payment.plugipay_id
    assert "pk" not in own.json() and own.json()["amount_display"] == "IDR 250,000"


@pytest.mark.django_db
def test_staff_with_view_permission_see_all_and_filter():
    PaymentFactory.create_batch(3)
    PaymentFactory(status="failed")
    client = client_for(staff_with("view_payment"))
    assert len(client.get(f"{API}/payments/").json()["results"]) == 4
    assert len(client.get(f"{API}/payments/?status=failed").json()["results"]) == 1
    assert client_for(UserFactory(is_staff=True)).get(f"{API}/payments/").json()["results"] == []


@pytest.mark.django_db
def test_cursor_pagination():
    user = UserFactory()
    PaymentFactory.create_batch(25, customer=CustomerFactory(user=user))
    client = client_for(user)
    first = client.get(f"{API}/payments/").json()
    second = client.get(first["next"]).json()
    assert len(first["results"]) == 20 and len(second["results"]) == 5
    assert second["next"] is None
    ids = {p["id"] for p in first["results"]} | {p["id"] for p in second["results"]}
    assert len(ids) == 25


def test_refund_needs_the_permission(plugipay_sandbox):
    payment = plugipay_sandbox.paid_payment()
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    refused = client_for(staff_with("view_payment")).post(url, {"reason": "duplicate"})
    assert refused.status_code == 403 and not Refund.objects.exists()
    allowed = client_for(staff_with("refund_payment")).post(
        url, {"reason": "duplicate", "amount": 1000}
    )
    assert allowed.status_code == 201 and allowed.json()["status"] == "succeeded"


def test_a_refund_not_sent_yet_says_so_without_the_servers_error(plugipay_sandbox, settings):
    """A refund Plugipay could not be reached for stays requested; the API says it is sent
    again by itself, in the reader's language, not the stored note naming the exception."""
    from django.utils import translation

    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 0}
    payment = plugipay_sandbox.paid_payment()
    plugipay_sandbox.fault("http_500", count=5, path_prefix="/api/v1/refunds")
    client = client_for(staff_with("refund_payment"))
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    made = client.post(url, {"reason": "duplicate", "amount": 1000}).json()
    assert made["status"] == "requested"
    assert made["failure_message"] == "Not sent to Plugipay yet; it is sent again automatically."
    assert "Error" not in made["failure_message"]
    assert "Error" in Refund.objects.get().failure_message  # staff read the cause
    with translation.override("id"):
        read = client.get(f"{API}/payments/{payment.plugipay_id}/", HTTP_ACCEPT_LANGUAGE="id")
        shown = read.json()["refunds"][0]
    assert shown["failure_message"].startswith("Belum dikirim ke Plugipay")


def test_idempotent_refund_post(plugipay_sandbox):
    payment = plugipay_sandbox.paid_payment()
    client = client_for(staff_with("refund_payment"))
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    body = {"amount": 2500, "reason": "requested_by_customer"}
    first = client.post(url, body, format="json", headers={"Idempotency-Key": "k-1"})
    again = client.post(url, body, format="json", headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and Refund.objects.count() == 1
    other = client.post(
        url, {**body, "amount": 2600}, format="json", headers={"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409 and Refund.objects.count() == 1
    assert len(plugipay_sandbox.state()["refunds"]) == 1


def test_over_refund_is_400_with_a_clear_message(plugipay_sandbox):
    payment = plugipay_sandbox.paid_payment(10_000)
    response = client_for(staff_with("refund_payment")).post(
        f"{API}/payments/{payment.plugipay_id}/refunds/", {"amount": 10_001, "reason": "duplicate"}
    )
    assert response.status_code == 400
    assert "more than the IDR 10,000 left to refund" in response.json()["amount"][0]
    other = client_for(staff_with("refund_payment")).post(
        f"{API}/payments/{payment.plugipay_id}/refunds/", {"reason": "other"}
    )
    assert other.status_code == 400 and "description" in other.json()


@pytest.mark.django_db
def test_refund_detail_for_owner():
    user = UserFactory()
    payment = PaymentFactory(customer=CustomerFactory(user=user))
    refund = payment.refunds.create(
        plugipay_id="rfd_x", amount=500, currency="IDR", status="succeeded"
    )
    body = client_for(user).get(f"{API}/refunds/{refund.plugipay_id}/").json()
    assert body["payment"] == payment.plugipay_id and body["amount_display"] == "IDR 500"
    assert client_for(UserFactory()).get(f"{API}/refunds/rfd_x/").status_code == 404


def test_schema_generates_without_warnings(capsys):
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    schema = SchemaGenerator(urlconf="django_plugipay.api.urls").get_schema(public=True)
    assert GENERATOR_STATS._warn_cache == {} and GENERATOR_STATS._error_cache == {}
    assert "/payments/{id}/refunds/" in schema["paths"]
    assert {
        "/subscriptions/",
        "/subscriptions/{id}/cancel/",
        "/invoices/",
        "/portal-sessions/",
    } <= set(schema["paths"])


@pytest.mark.parametrize("amount", ["250.000", "1_000", "1e3", "2,500", True, 1.5])
def test_a_refund_amount_in_minor_units_is_digits_only(plugipay_sandbox, amount):
    """DRF's integer field reads "250.000" as 250: a client writing its locale's grouping
    meant 250,000, so text other than digits is refused, never read as another amount."""
    payment = plugipay_sandbox.paid_payment(300_000)
    response = client_for(staff_with("refund_payment")).post(
        f"{API}/payments/{payment.plugipay_id}/refunds/",
        {"amount": amount, "reason": "duplicate"},
        format="json",
    )
    assert response.status_code == 400 and "amount" in response.json()
    assert not Refund.objects.exists()


def test_a_refund_amount_as_a_string_of_digits_is_read(plugipay_sandbox):
    payment = plugipay_sandbox.paid_payment(300_000)
    response = client_for(staff_with("refund_payment")).post(
        f"{API}/payments/{payment.plugipay_id}/refunds/",
        {"amount": "250000", "reason": "duplicate"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert Refund.objects.get().amount == 250_000


def test_a_checkout_priced_beyond_the_limit_is_refused_before_the_customer_is_made(
    plugipay_sandbox, settings
):
    """The 400 on ``quantity`` comes before anything is written at Plugipay or here."""
    from django_plugipay.models import Customer

    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_CHECKOUT_PARAMS": "tests.test_api.pricing"}
    response = client_for(UserFactory()).post(
        f"{API}/checkout-sessions/", {"reference": "A1", "quantity": 10**12}, format="json"
    )
    assert response.status_code == 400 and "quantity" in response.json()
    assert not Customer.objects.exists() and not plugipay_sandbox.state()["customers"]
