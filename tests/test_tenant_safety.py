"""Many accounts, some in their own databases: nothing of one account reaches another, and
what the docs show works there too."""

from __future__ import annotations

import pytest
from django.db import connection  # noqa: F401 - read by a skipif condition
from django.urls import reverse

from django_plugipay import services
from django_plugipay.accounts import acting_for
from django_plugipay.models import Customer, Payment, Refund
from tests.conftest import MERCHANT
from tests.test_accounts import shop

TENANT_DB = "tests.test_tenant_safety.merchant_database"


def merchant_database(alias):
    return "tenant" if alias == "merchant" else None


@pytest.fixture
def merchant_in_tenant_db(two_accounts, settings):
    """two_accounts, with the merchant's rows in the ``tenant`` database (multi-tenant.md)."""
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {**settings.PLUGIPAY, "ACCOUNT_DATABASE": TENANT_DB}
    return two_accounts


def session_completed(amount):
    from django_plugipay.testing import build_event

    obj = {
        "id": "cs_theirs",
        "status": "completed",
        "amount": amount,
        "currency": "IDR",
        "paymentId": "pay_theirs",
        "paymentMethod": "card",
        "mode": "test",
        "metadata": {},
    }
    event = build_event("checkout_session.completed", obj, event_id="evt_theirs")
    event["accountId"] = MERCHANT
    return event


@pytest.mark.django_db(transaction=True)
def test_an_event_signed_with_another_accounts_secret_is_applied_only_when_its_own_signs_it(
    two_accounts, client
):
    """Signed with the default account's secret but naming the merchant (secrets swapped in
    the settings, or one misused): 422 ``unknown_account``, and a replay refuses it again, for
    either account. The merchant's own delivery of that event, signed with its secret, applies
    it for the merchant, with the body it vouched for (not the one recorded before)."""
    from django.conf import settings
    from django.core.management import CommandError, call_command

    from django_plugipay.models import CheckoutSession, WebhookEvent
    from django_plugipay.testing import signed_webhook

    _sandbox, merchant_secret = two_accounts
    url = reverse("plugipay:webhook")
    body, headers = signed_webhook(session_completed(5000), settings.PLUGIPAY["WEBHOOK_SECRETS"][0])
    response = client.post(url, body, content_type="application/json", headers=headers)
    assert response.status_code == 422
    with pytest.raises(CommandError):
        call_command("plugipay_replay")
    assert not CheckoutSession.objects.filter(plugipay_id="cs_theirs").exists()
    assert not Payment.objects.filter(plugipay_id="pay_theirs").exists()

    body, headers = signed_webhook(session_completed(6000), merchant_secret)
    response = client.post(url, body, content_type="application/json", headers=headers)
    assert response.status_code == 200, response.content
    session = CheckoutSession.objects.get(plugipay_id="cs_theirs")
    assert (session.account.plugipay_id, session.amount) == (MERCHANT, 6000)
    event = WebhookEvent.objects.get(event_id="evt_theirs")
    assert (event.account.plugipay_id, event.status) == (MERCHANT, "processed")


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_a_users_customer_is_made_in_a_tenant_database_without_its_users(
    merchant_in_tenant_db, django_user_model
):
    """multi-tenant.md's ``acting_for`` block: the customer row goes to the tenant database,
    which has no users of the project; its link to the user has no constraint there."""
    user = django_user_model.objects.create_user(username="ana", email="ana@x.test")
    with acting_for("merchant"):
        customer = services.get_or_create_customer_for_user(user=user)
    assert Customer.objects.using("tenant").get(pk=customer.pk).user_id == user.pk


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_api_refund_of_a_tenant_database_payment_is_made(
    merchant_in_tenant_db, client, admin_user, settings
):
    """The refund's ``requested_by`` (a user of the default database) may be set on a row of
    a tenant database: the router allows the relation."""
    sandbox, _secret = merchant_in_tenant_db
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_ACCOUNT": lambda request: "merchant"}
    _c, session = shop("merchant")
    sandbox.pay(session)
    payment = Payment.objects.using("tenant").get()
    client.force_login(admin_user)
    client.raise_request_exception = False
    response = client.post(
        reverse("plugipay-api:payment-refund-create", args=[payment.plugipay_id]),
        {"amount": 1000, "reason": "requested_by_customer"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.status_code


@pytest.mark.django_db(transaction=True)
def test_refund_with_another_accounts_name_is_refused_not_recorded(two_accounts):
    """``refund_payment(payment=<the default account's>, account="merchant")`` is refused:
    no refund row of one account on another's payment, nothing sent for the merchant."""
    sandbox, _secret = two_accounts
    _c, own_session = shop(None)
    sandbox.pay(own_session)
    own = Payment.objects.get(checkout_session=own_session)
    with pytest.raises(ValueError, match="account"):
        services.refund_payment(payment=own, amount=1000, reason="duplicate", account="merchant")
    assert not Refund.objects.filter(payment=own).exclude(account=own.account).exists()


@pytest.mark.skipif("connection.vendor != 'postgresql'")  # SQLite locks nothing: it cannot fail
@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_the_readme_receiver_for_a_tenant_database_account(
    merchant_in_tenant_db, django_user_model
):
    """README / tutorial step 5: a payment_succeeded receiver that locks the project's own row
    (`Order.objects.select_for_update().get(pk=...)`, here a User: any default-database model)
    works for an account routed to a tenant database too: receivers run in a transaction on
    the default database (PostgreSQL: select_for_update outside one raises)."""
    from django.dispatch import receiver

    from django_plugipay.signals import payment_succeeded

    user = django_user_model.objects.create_user(username="budi")

    @receiver(payment_succeeded, weak=False, dispatch_uid="tenant_reader.fulfil")
    def fulfil(sender, instance, event, **kwargs):
        django_user_model.objects.select_for_update().get(pk=user.pk)

    sandbox, _secret = merchant_in_tenant_db
    try:
        _c, session = shop("merchant")
        sandbox.pay(session)
        assert Payment.objects.using("tenant").filter(status="succeeded").exists()
    finally:
        payment_succeeded.disconnect(dispatch_uid="tenant_reader.fulfil")


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_refund_naming_another_account_never_refunds_that_accounts_payment(
    merchant_in_tenant_db,
):
    """With ACCOUNT_DATABASE, the payment's pk may name another buyer's payment in the
    merchant's database: ``account=`` naming another account than the row's is refused."""
    sandbox, _secret = merchant_in_tenant_db
    _c, own_session = shop(None)
    _c, their_session = shop("merchant")
    sandbox.pay(own_session)
    sandbox.pay(their_session)
    own = Payment.objects.using("default").get()
    theirs = Payment.objects.using("tenant").get()
    with pytest.raises(ValueError, match="account"):  # own.pk may name theirs in its database
        services.refund_payment(payment=own, amount=777, reason="duplicate", account="merchant")
    sandbox.flush()
    theirs.refresh_from_db(using="tenant")
    assert theirs.amount_refunded == 0
    assert not Refund.objects.using("tenant").exists()


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_plugipay_sync_goes_on_past_an_account_whose_database_is_away(tenancy, monkeypatch):
    """multi-tenant.md: one account's failure, its database away included, is said with its
    alias and does not stop the others; the command then exits non-zero naming it."""
    from django.core.management import CommandError, call_command
    from django.db import OperationalError

    from django_plugipay import accounts as accounts_module
    from django_plugipay.management.commands import plugipay_sync
    from django_plugipay.services.reconcile import ReconcileResult

    reconciled = []

    def reconcile(**kwargs):
        alias = accounts_module.current().alias
        if alias == "t":
            raise OperationalError('connection to server at "127.0.0.1", port 5999 failed')
        reconciled.append(alias)
        return ReconcileResult()

    monkeypatch.setattr(plugipay_sync.services, "reconcile", reconcile)
    monkeypatch.setattr(plugipay_sync.services, "run_deliveries", lambda **kw: 0)
    with pytest.raises(CommandError, match="Not synced: accounts t"):
        call_command("plugipay_sync")
    assert "u" in reconciled, reconciled


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_a_tenant_database_accounts_receipt_opens_for_staff(merchant_in_tenant_db, client):
    """The receipt page looks in every database the accounts' rows are kept in."""
    from django.contrib.auth.models import Permission

    from django_plugipay.models import Receipt
    from tests.factories import UserFactory

    sandbox, _secret = merchant_in_tenant_db
    _c, session = shop("merchant")
    sandbox.pay(session)
    services.sync_receipts(account="merchant")
    assert Receipt.objects.using("tenant").exists() and not Receipt.objects.exists()
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_receipt"))
    client.force_login(staff)
    for plugipay_id in (session.plugipay_id, Receipt.objects.using("tenant").get().plugipay_id):
        pdf = client.get(reverse("plugipay:receipt_document", args=[plugipay_id]))
        assert pdf.status_code == 200, plugipay_id
        assert b"".join(pdf.streaming_content).startswith(b"%PDF")


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_deleting_a_user_clears_its_links_in_the_tenant_database_too(
    merchant_in_tenant_db, django_user_model
):
    """A user's customer and the refunds they asked for in a tenant database (no constraint
    there) lose the link when the user is deleted, as those of the default database do; the
    rows themselves stay."""
    from tests.factories import RefundFactory

    user = django_user_model.objects.create_user(username="citra", email="citra@x.test")
    keep = django_user_model.objects.create_user(username="dewi", email="dewi@x.test")
    with acting_for("merchant"):
        customer = services.get_or_create_customer_for_user(user=user)
        other = services.get_or_create_customer_for_user(user=keep)
        refund = RefundFactory(requested_by=user)
    assert Refund.objects.using("tenant").filter(pk=refund.pk).exists()
    user.delete()
    tenant = Customer.objects.using("tenant")
    assert tenant.get(pk=customer.pk).user_id is None
    assert tenant.get(pk=other.pk).user_id == keep.pk
    assert Refund.objects.using("tenant").get(pk=refund.pk).requested_by_id is None

    from django.db import transaction

    def delete_then_fail():
        with transaction.atomic():
            keep.delete()
            raise RuntimeError("rolled back: the user stays, and so do its links")

    kept = keep.pk
    with pytest.raises(RuntimeError):
        delete_then_fail()
    assert tenant.get(pk=other.pk).user_id == kept


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_deleting_a_user_through_a_proxy_model_clears_its_tenant_links(
    merchant_in_tenant_db, django_user_model
):
    """A user deleted through a proxy of the user model (a "Staff" admin, say) is sent with
    the proxy: its links in the tenant database are cleared all the same."""
    from django_plugipay.accounts import watch_user_deletions

    class StaffMember(django_user_model):
        class Meta:
            proxy = True
            app_label = "teams"

    watch_user_deletions()  # as at start-up, when a project's proxies are loaded
    user = django_user_model.objects.create_user(username="eka", email="eka@x.test")
    with acting_for("merchant"):
        customer = services.get_or_create_customer_for_user(user=user)
    StaffMember.objects.get(pk=user.pk).delete()
    assert Customer.objects.using("tenant").get(pk=customer.pk).user_id is None
