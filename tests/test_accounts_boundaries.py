"""What one account's webhook secret, rows or this process's cache of the accounts can do to
another account: nothing."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_plugipay.models import CheckoutSession
from tests.conftest import MERCHANT
from tests.test_accounts import shop


@pytest.mark.django_db(transaction=True)
def test_event_signed_with_default_secret_never_completes_the_merchants_session(
    two_accounts, client
):
    from django.conf import settings
    from django.core.management import CommandError, call_command

    from django_plugipay.testing import build_event, signed_webhook

    _c, theirs = shop("merchant")  # the merchant's open checkout
    assert theirs.status != "completed"
    # forged by whoever holds the DEFAULT account's webhook secret (not the merchant's)
    default_secret = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    obj = {
        "id": theirs.plugipay_id,
        "status": "completed",
        "amount": theirs.amount,
        "currency": "IDR",
        "paymentId": "pay_forged",
        "paymentMethod": "card",
        "mode": "test",
        "metadata": {},
    }
    event = build_event("checkout_session.completed", obj, event_id="evt_forged")
    event["accountId"] = MERCHANT
    body, headers = signed_webhook(event, default_secret)
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 422
    with contextlib.suppress(CommandError):  # refused again: it stays failed
        call_command("plugipay_replay")  # routine: after fixing some unrelated failure
    theirs = CheckoutSession.objects.get(pk=theirs.pk)
    assert theirs.status != "completed", "merchant's checkout completed by another account's secret"


def completed(session_id, event_id):
    from django_plugipay.testing import build_event

    obj = {
        "id": session_id,
        "status": "completed",
        "amount": 5000,
        "currency": "IDR",
        "paymentId": f"pay_{session_id}",
        "paymentMethod": "card",
        "mode": "test",
        "metadata": {},
    }
    event = build_event("checkout_session.completed", obj, event_id=event_id)
    event["accountId"] = MERCHANT
    return event


@pytest.mark.django_db(transaction=True)
def test_without_accounts_an_event_is_the_default_accounts_whatever_was_cached(
    plugipay_sandbox, settings, client
):
    from django_plugipay import accounts, services
    from django_plugipay.models import CheckoutSession
    from django_plugipay.testing import signed_webhook

    settings.PLUGIPAY = {**settings.PLUGIPAY, **plugipay_sandbox.platform_settings()}
    services.provision_account(
        account_id=MERCHANT, brand_name="Merchant", business_email="owner@merchant.test"
    )
    secret = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    assert "ACCOUNTS" not in settings.PLUGIPAY or not settings.PLUGIPAY["ACCOUNTS"]

    def deliver(session_id, event_id):
        body, headers = signed_webhook(completed(session_id, event_id), secret)
        response = client.post(
            reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
        )
        assert response.status_code == 200, response.status_code
        return CheckoutSession.objects.get(plugipay_id=session_id).account.alias

    accounts.forget(tables=False)  # a fresh worker: the accounts not read yet
    first = deliver("cs_one", "evt_one")
    accounts.every()  # anything that reads the accounts (a sweep, the admin)
    second = deliver("cs_two", "evt_two")
    assert (first, second) == ("default", "default")


@pytest.mark.django_db(transaction=True)
def test_account_keyword_with_a_user_whose_model_has_an_account_fk(two_accounts, django_user_model):
    from django_plugipay import accounts, services

    user = django_user_model.objects.create_user(username="ana", email="ana@x.test")
    # what a user model with ``account = models.ForeignKey("saas.Account", ...)`` carries
    user.__dict__["account_id"] = accounts.default_account_pk()
    customer = services.get_or_create_customer_for_user(user=user, account="merchant")
    assert customer.account.alias == "merchant"


@pytest.mark.django_db(transaction=True)
def test_multi_tenant_md_block_with_a_user_whose_model_has_an_account_fk(
    two_accounts, django_user_model
):
    """multi-tenant.md: ``with acting_for("merchant"): get_or_create_customer_for_user(...)``
    makes the merchant's customer, whatever ``account_id`` the project's own user row has."""
    from django_plugipay import accounts, services

    user = django_user_model.objects.create_user(username="budi", email="budi@x.test")
    user.__dict__["account_id"] = accounts.default_account_pk()
    with accounts.acting_for("merchant"):
        customer = services.get_or_create_customer_for_user(user=user)
    assert customer.account.alias == "merchant"


def session_event(n, account_id):
    from django_plugipay.testing import build_event

    obj = {
        "id": f"cs_cost{n}",
        "status": "open",
        "amount": 5000,
        "currency": "IDR",
        "mode": "test",
        "metadata": {},
    }
    event = build_event("checkout_session.created", obj, event_id=f"evt_cost{n}")
    event["accountId"] = account_id
    return event


@pytest.mark.django_db
def test_applying_a_default_account_event_reads_no_account_rows(settings):
    from django_plugipay import accounts
    from django_plugipay.services.events import parse_event, process_event

    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {
            "sg": {"KEY_ID": "pk_test_sg", "SECRET": "sk_test_sg", "WEBHOOK_SECRETS": ["whsec_sg"]}
        },
    }
    accounts.every()  # accounts read once, as any process has
    process_event(parse_event(session_event(0, "acc_platform_default")), source="sync")
    with CaptureQueriesContext(connection) as queries:
        process_event(parse_event(session_event(1, "acc_platform_default")), source="sync")
    on_accounts = [q["sql"] for q in queries if "django_plugipay_account" in q["sql"]]
    assert not on_accounts, "\n".join(q["sql"][:150] for q in queries)
