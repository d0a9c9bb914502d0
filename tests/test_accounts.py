"""Many accounts in one project (DESIGN §6 rule 14): a platform key and a merchant it
provisioned, with the same customer e-mail and order references in both; nothing crosses."""

import enum

import pytest
from django.urls import reverse

from django_plugipay import accounts, durable_receiver, services, signals
from django_plugipay.exceptions import ConfigurationError
from django_plugipay.models import (
    Account,
    CheckoutSession,
    Customer,
    Delivery,
    Payment,
    Refund,
    SyncCursor,
    WebhookEvent,
)
from django_plugipay.services import deliveries
from django_plugipay.testing import build_event, signed_webhook
from tests.conftest import MERCHANT

EMAIL = "same@shop.test"
OPTIONS = {"success_url": "https://shop.test/ok", "cancel_url": "https://shop.test/no"}


def shop(account):
    """A customer with the shared e-mail, a session with the shared order reference, paid."""
    customer = services.create_customer(email=EMAIL, account=account)
    session = services.create_checkout_session(
        amount=120_000,
        currency="IDR",
        customer=customer,
        metadata={"order": "A-1"},
        **OPTIONS,
    )
    return customer, session


def remote(sandbox, kind, object_id):
    return next(o for o in sandbox.state()[kind] if o["id"] == object_id)


def test_two_accounts_never_mix(two_accounts, signal_log, durable):
    sandbox, _secret = two_accounts
    shipped = []
    durable(
        signals.payment_succeeded,
        lambda instance, **kw: shipped.append((instance.plugipay_id, accounts.current().alias)),
    )
    own_customer, own_session = shop(None)
    their_customer, their_session = shop("merchant")
    default, merchant = Account.objects.get(alias="default"), Account.objects.get(alias="merchant")
    assert merchant.plugipay_id == MERCHANT and merchant.platform
    # the API calls were made for each account: the sandbox holds each object in its own
    assert remote(sandbox, "customers", own_customer.plugipay_id)["accountId"] != MERCHANT
    assert remote(sandbox, "customers", their_customer.plugipay_id)["accountId"] == MERCHANT
    assert remote(sandbox, "sessions", their_session.plugipay_id)["accountId"] == MERCHANT
    assert (own_customer.account, their_customer.account) == (default, merchant)
    assert (own_session.account, their_session.account) == (default, merchant)

    sandbox.pay(own_session)
    sandbox.pay(their_session)
    own = Payment.objects.get(checkout_session=own_session)
    theirs = Payment.objects.get(checkout_session=their_session)
    assert (own.account, theirs.account) == (default, merchant)
    assert sorted(shipped) == sorted(
        [(own.plugipay_id, "default"), (theirs.plugipay_id, "merchant")]
    )
    for event in WebhookEvent.objects.all():  # each event stored under the account it names
        expected = merchant if event.payload.get("accountId") == MERCHANT else default
        assert event.account == expected, event.payload.get("accountId")
        assert event.status == "processed", event.last_error
    assert {d.account for d in Delivery.objects.all()} == {default, merchant}
    assert signal_log.names().count("payment_succeeded") == 2

    # a refund of the merchant's payment is the merchant's, at Plugipay too
    refund = services.refund_payment(payment=theirs, amount=20_000, reason="requested_by_customer")
    sandbox.flush()
    refund.refresh_from_db()
    assert refund.account == merchant and refund.status == "succeeded"
    assert remote(sandbox, "refunds", refund.plugipay_id)["accountId"] == MERCHANT
    own.refresh_from_db()
    assert own.amount_refunded == 0 and not Refund.objects.filter(payment=own).exists()

    # sync-on-read fetches each session with its own account (another account's is 404)
    assert services.sync_checkout_session(session=their_session).status == "completed"
    assert services.sync_checkout_session(session=own_session).status == "completed"

    # reconciliation: each account reads its own events, with its own cursor
    assert services.reconcile(account="merchant").events_failed == 0
    assert services.reconcile().events_failed == 0
    assert set(SyncCursor.objects.values_list("account__alias", flat=True)) == {
        "default",
        "merchant",
    }
    # the same e-mail and order reference, one row per account, nothing adopted across
    assert sorted(
        Customer.objects.filter(email=EMAIL).values_list("account__alias", flat=True)
    ) == [
        "default",
        "merchant",
    ]
    sessions = CheckoutSession.objects.filter(metadata__order="A-1")
    assert sorted(sessions.values_list("account__alias", flat=True)) == ["default", "merchant"]
    assert signal_log.names().count("payment_succeeded") == 2  # nothing sent twice
    assert len(shipped) == 2


def test_a_row_of_one_account_refuses_another_accounts_news(two_accounts, client):
    sandbox, secret = two_accounts
    _customer, session = shop(None)
    forged = build_event(
        "checkout_session.completed",
        {"id": session.plugipay_id, "status": "expired", "amount": 120_000, "currency": "IDR"},
    )
    forged["accountId"] = MERCHANT
    body, headers = signed_webhook(forged, secret)
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 422, response.content
    session.refresh_from_db()
    assert session.status == "open"
    assert WebhookEvent.objects.get(event_id=forged["id"]).status == "failed"


def test_an_event_for_an_unknown_account_is_stored_failed_and_refused(two_accounts, client):
    _sandbox, secret = two_accounts
    event = build_event("customer.created", {"id": "cus_stranger", "email": "x@shop.test"})
    event["accountId"] = "acc_nobody"
    body, headers = signed_webhook(event, secret)
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_account"
    stored = WebhookEvent.objects.get(event_id=event["id"])
    assert stored.status == "failed" and "acc_nobody" in stored.last_error
    assert not Customer.objects.filter(plugipay_id="cus_stranger").exists()
    # a bad signature stays 401 and stores nothing
    body, headers = signed_webhook({**event, "id": "evt_unsigned"}, "whsec_wrong")
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 401
    assert not WebhookEvent.objects.filter(event_id="evt_unsigned").exists()


def test_the_per_account_url_verifies_with_that_accounts_secrets_alone(two_accounts, client):
    sandbox, secret = two_accounts
    event = build_event("customer.created", {"id": "cus_routed", "email": EMAIL})
    event["accountId"] = MERCHANT
    body, headers = signed_webhook(event, secret)
    url = reverse("plugipay:webhook_account", args=["merchant"])
    assert (
        client.post(url, body, content_type="application/json", headers=headers).status_code == 200
    )
    assert Customer.objects.get(plugipay_id="cus_routed").account.alias == "merchant"
    body, headers = signed_webhook({**event, "id": "evt_other"}, sandbox.webhook_secret)
    assert (
        client.post(url, body, content_type="application/json", headers=headers).status_code == 401
    )


def test_a_single_account_project_routes_every_event_to_the_default_account(db, client, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": ["whsec_one"]}
    event = build_event("customer.created", {"id": "cus_one", "email": EMAIL})
    event["accountId"] = "acc_whatever"
    body, headers = signed_webhook(event, "whsec_one")
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 200
    assert Customer.objects.get(plugipay_id="cus_one").account.alias == "default"


def test_an_unnamed_accounts_id_is_learned_from_its_first_event(db, client, settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "WEBHOOK_SECRETS": ["whsec_one"],
        "ACCOUNTS": {"brand_b": {"API_KEY": "sk_test_b", "WEBHOOK_SECRETS": ["whsec_b"]}},
    }
    event = build_event("customer.created", {"id": "cus_b", "email": EMAIL})
    event["accountId"] = "acc_brand_b"
    body, headers = signed_webhook(event, "whsec_b")
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 200, response.content
    assert Account.objects.get(alias="brand_b").plugipay_id == "acc_brand_b"
    assert Customer.objects.get(plugipay_id="cus_b").account.alias == "brand_b"


def _configure_sg(settings, sandbox, entry):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **sandbox.platform_settings(),
        "ACCOUNTS": {"sg": {**entry, "NAME": "Singapore"}},
    }


def _provision_sg():
    return services.provision_account(
        account_id="acc_sg", brand_name="Singapore", business_email="sg@shop.test"
    )


def test_an_alias_configured_before_its_id_becomes_the_account_provisioned_for_it(
    plugipay_sandbox, settings
):
    """multi-tenant.md's "sg" first (no acc_ id), a sync for it, then the account provisioned
    and "sg" configured on behalf of it: one row, the cursor moved to it."""
    _configure_sg(settings, plugipay_sandbox, {"API_KEY": "sk_test_sg"})
    first = accounts.get_account("sg")
    assert first.plugipay_id is None
    SyncCursor.objects.create(account=first, name="events")
    provisioned = _provision_sg()
    customer = services.create_customer(email=EMAIL, account=provisioned)
    _configure_sg(settings, plugipay_sandbox, {"ON_BEHALF_OF": "acc_sg"})

    with accounts.acting_for("sg") as found:
        assert (found.pk, found.plugipay_id) == (provisioned.pk, "acc_sg")
    row = Account.objects.get(alias="sg")
    assert (row.pk, row.plugipay_id, row.platform) == (provisioned.pk, "acc_sg", True)
    assert not Account.objects.filter(pk=first.pk).exists()
    assert SyncCursor.objects.get(name="events").account_id == row.pk
    customer.refresh_from_db()
    assert customer.account_id == row.pk


def test_two_rows_with_data_for_one_alias_are_a_configuration_error(plugipay_sandbox, settings):
    _configure_sg(settings, plugipay_sandbox, {"API_KEY": "sk_test_sg"})
    Customer.objects.create(plugipay_id="cus_old", email=EMAIL, account=accounts.get_account("sg"))
    provisioned = _provision_sg()
    services.create_customer(email=EMAIL, account=provisioned)
    _configure_sg(settings, plugipay_sandbox, {"ON_BEHALF_OF": "acc_sg"})

    with pytest.raises(ConfigurationError) as raised:
        accounts.sync_accounts()
    message = str(raised.value)
    assert "'sg' (pk " in message and "'acc_sg' (pk " in message
    assert "Customer: 1" in message and "under another alias" in message
    assert Account.objects.filter(alias__in=["sg", "acc_sg"]).count() == 2


def test_an_alias_of_another_accounts_id_is_a_configuration_error(plugipay_sandbox, settings):
    _configure_sg(settings, plugipay_sandbox, {"API_KEY": "sk_test_sg", "ACCOUNT_ID": "acc_old"})
    accounts.sync_accounts()
    _provision_sg()
    _configure_sg(settings, plugipay_sandbox, {"ON_BEHALF_OF": "acc_sg"})
    with pytest.raises(ConfigurationError, match="belongs to the Account row of acc_old"):
        accounts.sync_accounts()


def test_client_for_sends_on_behalf_of_for_a_platform_account(db, settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": ["whsec_m"]}},
    }
    client = services.client_for("m")
    assert client.on_behalf_of == "acc_m"
    assert client._headers("GET", "/api/v1/customers", b"", None)["X-Plugipay-On-Behalf-Of"] == (
        "acc_m"
    )
    assert services.client_for(None).on_behalf_of is None


@pytest.fixture
def durable():
    connected = []

    def connect(signal, func):
        name = f"tests.accounts_{len(connected)}"
        durable_receiver(signal, name=name)(func)
        connected.append((signal, name))

    yield connect
    for signal, name in connected:
        deliveries.disconnect(signal, name=name)


def test_the_admin_shows_and_filters_by_account_once_there_are_several(db, client, settings):
    from tests.factories import PaymentFactory, UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    PaymentFactory(plugipay_id="pay_own")
    changelist = reverse("admin:django_plugipay_payment_changelist")
    assert "account__id__exact" not in client.get(changelist).content.decode()
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": ["whsec_m"], "NAME": "M"}},
    }
    with accounts.acting_for("m"):
        theirs = PaymentFactory(plugipay_id="pay_theirs")
    merchant = Account.objects.get(alias="m")
    assert theirs.account == merchant and theirs.checkout_session.account == merchant
    page = client.get(changelist, {"account__id__exact": merchant.pk}).content.decode()
    assert "pay_theirs" in page and "pay_own" not in page
    change = client.get(reverse("admin:django_plugipay_payment_change", args=[theirs.pk]))
    assert "field-account" in change.content.decode()


def tenant_database(alias):
    """The ``ACCOUNT_DATABASE`` hook of the test: account ``t`` lives in ``tenant``."""
    return "tenant" if alias == "t" else None


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_an_accounts_events_go_to_its_tenants_database(client, settings, signal_log):
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "WEBHOOK_SECRETS": ["whsec_one"],
        "ACCOUNTS": {"t": {"API_KEY": "sk_test_t", "WEBHOOK_SECRETS": ["whsec_t"]}},
        "ACCOUNT_DATABASE": "tests.test_accounts.tenant_database",
    }
    deliveries = []
    for event_id, account_id, secret in (
        ("evt_t", "acc_t", "whsec_t"),
        ("evt_d", None, "whsec_one"),
    ):
        session = {"id": f"cs_{event_id}", "status": "completed", "amount": 5000, "currency": "IDR"}
        event = build_event(
            "checkout_session.completed",
            {**session, "paymentId": f"pay_{event_id}"},
            event_id=event_id,
        )
        if account_id:
            event["accountId"] = account_id
        body, headers = signed_webhook(event, secret)
        deliveries.append(
            client.post(
                reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
            )
        )
    assert [r.status_code for r in deliveries] == [200, 200], [r.content for r in deliveries]
    tenant = Payment.objects.using("tenant")
    assert list(tenant.values_list("plugipay_id", flat=True)) == ["pay_evt_t"]
    assert list(Payment.objects.using("default").values_list("plugipay_id", flat=True)) == [
        "pay_evt_d"
    ]
    assert WebhookEvent.objects.using("tenant").get().event_id == "evt_t"
    assert WebhookEvent.objects.using("default").get().event_id == "evt_d"
    assert tenant.get().account_id == Account.objects.get(alias="t").pk
    assert signal_log.names().count("payment_succeeded") == 2
    with accounts.acting_for("t"):  # the services read the tenant's rows for it
        assert Payment.objects.get().plugipay_id == "pay_evt_t"


def test_a_users_customer_and_billing_lookups_stay_in_their_account(two_accounts):
    from django_plugipay import billing
    from tests.factories import UserFactory

    sandbox, _secret = two_accounts
    user = UserFactory(email=EMAIL)
    own = services.get_or_create_customer_for_user(user=user)
    theirs = services.get_or_create_customer_for_user(user=user, account="merchant")
    assert own != theirs and theirs.account.alias == "merchant"
    assert remote(sandbox, "customers", theirs.plugipay_id)["accountId"] == MERCHANT
    assert list(billing.customers(user)) == [own]
    with accounts.acting_for("merchant"):
        assert list(billing.customers(user)) == [theirs]
        assert services.get_or_create_customer_for_user(user=user) == theirs


def test_plugipay_sync_reconciles_the_account_named(two_accounts):
    from io import StringIO

    from django.core.management import call_command

    sandbox, _secret = two_accounts
    sandbox.hold()  # nothing delivered: reconciliation brings it
    customer = services.create_customer(email=EMAIL, account="merchant")
    Customer.objects.filter(pk=customer.pk).delete()
    call_command("plugipay_sync", account="merchant", stdout=StringIO())
    assert Customer.objects.get(plugipay_id=customer.plugipay_id).account.alias == "merchant"
    cursor = SyncCursor.objects.get(name="events", account__alias="merchant")
    assert cursor.last_event_id
    assert not SyncCursor.objects.filter(account__alias="default").exists()


def test_a_staff_refund_in_the_admin_is_made_with_the_rows_account(two_accounts, client):
    from tests.factories import UserFactory

    sandbox, _secret = two_accounts
    _customer, session = shop("merchant")
    sandbox.pay(session)
    payment = Payment.objects.get(checkout_session=session)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        reverse("admin:django_plugipay_payment_refund", args=[payment.pk]),
        {"post": "yes", "amount": "20,000", "reason": "requested_by_customer"},
    )
    assert response.status_code == 302
    sandbox.flush()
    refund = Refund.objects.get()
    assert refund.status == "succeeded" and refund.account.alias == "merchant"
    assert remote(sandbox, "refunds", refund.plugipay_id)["accountId"] == MERCHANT


def test_plugipay_webhooks_manages_the_account_named(two_accounts, live_server):
    from io import StringIO

    from django.core.management import call_command

    sandbox, _secret = two_accounts
    out = StringIO()
    call_command("plugipay_webhooks", "--account", "merchant", "list", stdout=out)
    endpoints = [e for e in sandbox.state()["endpoints"] if e["accountId"] == MERCHANT]
    assert [e["id"] for e in endpoints] and all(e["id"] in out.getvalue() for e in endpoints)
    others = [e["id"] for e in sandbox.state()["endpoints"] if e["accountId"] != MERCHANT]
    assert others and not any(other in out.getvalue() for other in others)


class _PrintsAsDefault(enum.Enum):
    ALIAS = "default"

    def __str__(self):
        return self.value


@pytest.mark.parametrize(
    "configured",
    [
        None,
        {},
        "brand_b",
        {"default": {"KEY_ID": "k"}},
        {"brand_b": "not a dict"},
        {"brand_b": {"WEBHOOK_SECRETS": ["whsec_b"]}},
        {"default": {}, "brand_b": {}},
        {_PrintsAsDefault.ALIAS: {"KEY_ID": "k"}},  # replaces the default entry
    ],
)
def test_many_accounts_says_what_the_built_accounts_say(settings, configured):
    """The webhook view's cheap question, answered as the whole ``ACCOUNTS`` would."""
    from django_plugipay.conf import app_settings

    settings.PLUGIPAY = {**settings.PLUGIPAY, "ACCOUNTS": configured}
    assert app_settings.many_accounts is (len(app_settings.ACCOUNTS) > 1)


def test_two_accounts_may_each_refund_with_the_same_idempotency_key(two_accounts):
    """Plugipay scopes an idempotency key to the account: a merchant's key is not taken by
    another merchant's refund (refused as a mismatch), and each retry replays its own."""
    sandbox, _secret = two_accounts
    _c, own_session = shop(None)
    _c, their_session = shop("merchant")
    sandbox.pay(own_session)
    sandbox.pay(their_session)
    own = Payment.objects.get(checkout_session=own_session)
    theirs = Payment.objects.get(checkout_session=their_session)
    request = {"amount": 10_000, "reason": "requested_by_customer", "idempotency_key": "order-1"}
    mine = services.refund_payment(payment=own, **request)
    other = services.refund_payment(payment=theirs, **request)
    assert mine.pk != other.pk and not other.replayed
    assert (mine.account.alias, other.account.alias) == ("default", "merchant")
    again = services.refund_payment(payment=theirs, **request)
    assert again.pk == other.pk and again.replayed
    sandbox.flush()
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}
    own.refresh_from_db()
    theirs.refresh_from_db()
    assert own.amount_refunded == theirs.amount_refunded == 10_000
