"""A project's custom user model (UUID primary key, e-mail login): customers, the owner
helpers, the admin's refund (``requested_by``) and the API's idempotency keys.

Run with ``--ds=tests.settings_uuid_users`` (tests/test_project_settings.py does, in a
subprocess); skipped under the default settings.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from django_plugipay import billing, services
from django_plugipay.models import Refund

pytestmark = pytest.mark.skipif(
    settings.AUTH_USER_MODEL != "uuid_users.User",
    reason="needs --ds=tests.settings_uuid_users",
)
PASSWORD = "uuid-users-password"


def test_customers_owner_helpers_and_the_admin_refund(plugipay_sandbox, client):
    User = get_user_model()
    buyer = User.objects.create_user("ana@example.com", PASSWORD)
    customer = services.get_or_create_customer_for_user(user=buyer)
    assert customer.user == buyer and customer.external_id == f"user:{buyer.pk}"
    assert services.get_or_create_customer_for_user(user=buyer) == customer
    assert list(billing.customers(buyer)) == [customer]
    assert not billing.subscribed(buyer) and list(billing.invoices(buyer)) == []
    payment = plugipay_sandbox.paid_payment(100_000, customer=customer)

    staff = User.objects.create_superuser("staff@example.com", PASSWORD)
    login = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert login.status_code == 302, login.content
    url = f"/admin/django_plugipay/payment/{payment.pk}/refund/"
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {"post": "yes", "amount": "40000", "reason": "requested_by_customer", "description": ""},
    )
    assert response.status_code == 302
    plugipay_sandbox.flush()
    refund = Refund.objects.get()
    assert refund.requested_by == staff and refund.status == "succeeded"
    for page in (
        "/admin/django_plugipay/refund/",
        f"/admin/django_plugipay/refund/{refund.pk}/change/",
        f"/admin/django_plugipay/payment/{payment.pk}/change/",
    ):
        shown = client.get(page)
        assert shown.status_code == 200 and staff.email in shown.content.decode(), page


@pytest.mark.skipif(not settings.HAS_DRF, reason="needs djangorestframework")
def test_api_idempotency_keys_of_a_uuid_user_stay_distinct(plugipay_sandbox):
    from rest_framework.test import APIClient

    staff = get_user_model().objects.create_superuser("staff@example.com", PASSWORD)
    client = APIClient()
    client.force_authenticate(staff)
    payment = plugipay_sandbox.paid_payment(100_000)
    url = f"/plugipay/api/payments/{payment.plugipay_id}/refunds/"
    body = {"amount": 10_000, "reason": "requested_by_customer"}
    for key in ("order-2026-12-04-000017-refund-first", "order-2026-12-04-000017-refund-second"):
        response = client.post(url, body, format="json", headers={"Idempotency-Key": key})
        assert response.status_code == 201, response.content
    assert Refund.objects.count() == 2


@pytest.mark.django_db
def test_rows_read_by_uuid_in_either_form_with_one_compiled_statement():
    """``db.read_many`` compiles a statement once per model and row count: a UUID given as a
    ``UUID`` or as text is sent as the database stores it, whichever form came first."""
    from django_plugipay.db import read_many

    User = get_user_model()
    users = [User.objects.create_user(f"u{n}@example.com", PASSWORD) for n in range(2)]
    expected = {user.pk for user in users}
    for form in (lambda pk: pk.hex, str, lambda pk: pk):  # the stored form first
        assert set(read_many(User, [form(user.pk) for user in users])) == expected
