"""Recurring billing end to end: the sandbox's clock renews, retries and cancels; the mirror,
the signals and the owner helpers follow over every route (webhooks in order, shuffled and
duplicated, or none at all and reconciliation)."""

import datetime as dt
from collections import Counter

import pytest
from django.contrib.auth.models import Permission, User
from django.test import RequestFactory
from django.utils import timezone

from django_plugipay import billing, services, signals
from django_plugipay.client import get_client
from django_plugipay.models import Invoice, Payment, Plan, Price, Refund, Subscription
from django_plugipay.views import subscription_required
from tests.teams.models import Team

BILLING_SIGNALS = [
    name
    for name in vars(signals)
    if name.startswith(("subscription_", "invoice_")) or name.startswith("payment_")
]


@pytest.fixture
def sent():
    """Count every billing and payment signal sent, by (signal name, Plugipay id)."""
    counts = Counter()
    receivers = []
    for name in BILLING_SIGNALS:

        def receiver(sender, instance, event, _name=name, **kwargs):
            counts[(_name, instance.plugipay_id)] += 1

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield counts
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def make_price(amount=99_000, trial_days=7) -> Price:
    get_client().create_plan(
        {
            "name": "Member",
            "interval": "month",
            "trialDays": trial_days,
            "prices": [{"currency": "IDR", "model": "flat", "unitAmount": amount}],
            "portalFeatures": {"selfServeCancel": True, "updatePaymentMethod": True},
        }
    )
    [plan] = services.sync_plans()
    return plan.prices.get()


def subscribe_automatically(customer, price):
    """Charged to the sandbox's always-succeeding payment token."""
    return services.subscribe(
        customer=customer,
        price=price,
        collection_method="charge_automatically",
        payment_token_id="ptok_test_success",
    )


def buyer(name="buyer"):
    user = User.objects.create_user(name, f"{name}@example.com", "pw")
    return user, services.get_or_create_customer_for_user(user=user)


class Deliveries:
    """Brings one step's events to the app by one route, so every test reads the same."""

    def __init__(self, sandbox, route):
        self.sandbox, self.route = sandbox, route
        self.now = None  # the sandbox's time, once a subscription tells it
        if route != "webhooks":
            sandbox.hold()

    def until(self, moment, days=0.0):
        """Step to ``moment`` (a period end) plus ``days``."""
        self.step(days=(moment - self.now).total_seconds() / 86400 + days)

    def step(self, days=0.0):
        if days:
            self.sandbox.advance(days * 86400)
            self.now += dt.timedelta(days=days)
        if self.route == "webhooks":
            self.sandbox.flush()
        elif self.route == "shuffled":
            self.sandbox.release(order="shuffle", duplicate=2)
            self.sandbox.flush()
            self.sandbox.hold()
        else:  # webhooks off: only reconciliation
            services.reconcile()


def delta(sent, before):
    return {key: n for key, n in (sent - before).items() if n}


@pytest.mark.parametrize("route", ["webhooks", "shuffled", "reconcile"])
def test_trial_active_renewals_past_due_dunning_canceled(plugipay_sandbox, sent, route):
    price = make_price()
    user, customer = buyer()
    deliver = Deliveries(plugipay_sandbox, route)
    result = subscribe_automatically(customer, price)
    sub = result.subscription
    deliver.now = sub.current_period_start
    assert sub.status == "trialing" and result.invoice_url is None
    assert billing.subscribed(user) and billing.on_trial(user)
    deliver.step()
    assert dict(sent) == {("subscription_created", sub.plugipay_id): 1}

    # The trial ends: charged, active.
    before = sent.copy()
    deliver.step(days=8)
    sub.refresh_from_db()
    assert sub.status == "active" and not billing.on_trial(user) and billing.subscribed(user)
    first = sub.invoices.get()
    assert first.status == "paid" and first.amount_paid == 99_000
    charge = Payment.objects.get(invoice=first)
    assert charge.status == "succeeded" and charge.customer == customer
    assert delta(sent, before) == {
        ("subscription_activated", sub.plugipay_id): 1,
        ("invoice_paid", first.plugipay_id): 1,
        ("payment_succeeded", charge.plugipay_id): 1,
    }

    # Two renewals, each paid: the renewal job's event carries only the period.
    for renewal in (1, 2):
        start = sub.current_period_start
        before = sent.copy()
        deliver.until(sub.current_period_end, days=0.5)
        sub.refresh_from_db()
        assert sub.status == "active" and sub.current_period_start > start
        invoice = sub.invoices.order_by("-created_at").first()
        assert invoice.status == "paid" and sub.invoices.count() == 1 + renewal
        got = delta(sent, before)
        assert got.pop(("subscription_renewed", sub.plugipay_id)) == 1
        assert got.pop(("invoice_paid", invoice.plugipay_id)) == 1
        assert list(got.values()) == [1]  # the renewal's charge: payment_succeeded once

    # The card starts declining: the next renewal goes past due.
    get_client().update_subscription(
        sub.plugipay_id, {"defaultPaymentTokenId": "ptok_test_decline"}
    )
    before = sent.copy()
    deliver.until(sub.current_period_end, days=0.5)
    sub.refresh_from_db()
    unpaid = sub.invoices.order_by("-created_at").first()
    assert sub.status == "past_due" and unpaid.is_unpaid and unpaid.collection_attempts == 1
    got = delta(sent, before)
    assert got.pop(("subscription_past_due", sub.plugipay_id)) == 1
    assert got.pop(("invoice_payment_failed", unpaid.plugipay_id)) == 1
    assert list(got.values()) == [1]  # payment_failed for the declined charge
    assert billing.subscribed(user)  # access continues while Plugipay retries

    # Dunning: retries on days 3 and 5 fail; the last (day 7) fails and cancels.
    for days, attempts in ((2.6, 2), (2, 3)):
        before = sent.copy()
        deliver.step(days=days)
        unpaid.refresh_from_db()
        assert unpaid.collection_attempts == attempts
        assert delta(sent, before).get(("invoice_payment_failed", unpaid.plugipay_id)) == 1
    before = sent.copy()
    deliver.step(days=2)
    sub.refresh_from_db()
    assert sub.status == "canceled" and sub.canceled_reason == "failed_payment"
    assert delta(sent, before).get(("subscription_canceled", sub.plugipay_id)) == 1
    assert not billing.subscribed(user)

    # Over the whole life: each transition's signal exactly once.
    assert sent[("subscription_created", sub.plugipay_id)] == 1
    assert sent[("subscription_activated", sub.plugipay_id)] == 1
    assert sent[("subscription_renewed", sub.plugipay_id)] == 2
    assert sent[("subscription_past_due", sub.plugipay_id)] == 1
    assert sent[("subscription_canceled", sub.plugipay_id)] == 1
    assert sent[("invoice_payment_failed", unpaid.plugipay_id)] == 4

    # Everything delivered again, reordered, changes nothing.
    if route != "reconcile":
        before = sent.copy()
        plugipay_sandbox.control("POST", "deliveries/hold")
        for event in plugipay_sandbox.events():
            get_client().request("POST", "/events/replay", json_body={"eventIds": [event["id"]]})
        plugipay_sandbox.release(order="reverse", duplicate=2)
        plugipay_sandbox.flush()
        assert delta(sent, before) == {}


def test_send_invoice_subscribed_on_the_first_request_after_paying(plugipay_sandbox, sent):
    price = make_price(trial_days=0)
    user, customer = buyer()
    plugipay_sandbox.hold()  # no webhook reaches the app in this test
    result = services.subscribe(customer=customer, price=price)
    assert result.subscription.status == "incomplete"
    assert result.invoice_url == result.invoice.hosted_url and "/i/" in result.invoice_url
    assert not billing.subscribed(user)

    plugipay_sandbox.pay_invoice(result.invoice, deliver=False)
    # The buyer spent a minute on the invoice page, and a webhook about the subscription has
    # just refreshed its mirror row (still incomplete): the buyer's return must sync anyway.
    Subscription.objects.filter(pk=result.subscription.pk).update(
        read_synced_at=timezone.now() - dt.timedelta(minutes=1), synced_at=timezone.now()
    )
    assert billing.subscribed(user)  # synced on read: the buyer is back before the webhook
    sub = billing.subscription(user)
    assert sub.status == "active"
    assert sent[("subscription_activated", sub.plugipay_id)] == 1

    view = subscription_required(lambda request: "members")
    request = RequestFactory().get("/members/")
    request.user = user
    assert view(request) == "members"

    plugipay_sandbox.release(order="shuffle", duplicate=2)
    plugipay_sandbox.flush()
    assert sent[("subscription_activated", sub.plugipay_id)] == 1  # the webhook: a no-op
    assert sent[("invoice_paid", result.invoice.plugipay_id)] == 1


def test_cancel_at_period_end_keeps_access_until_the_period_ends(plugipay_sandbox, sent):
    price = make_price(trial_days=0)
    user, customer = buyer()
    result = services.subscribe(customer=customer, price=price)
    plugipay_sandbox.pay_invoice(result.invoice)
    sub = billing.subscription(user)
    assert sub.status == "active" and not billing.on_grace_period(user)

    sub = services.cancel_subscription(subscription=sub, at="period_end", reason="user_request")
    plugipay_sandbox.flush()
    assert sub.cancel_at == sub.current_period_end and sub.status == "active"
    assert billing.subscribed(user) and billing.on_grace_period(user)
    assert sent[("subscription_canceled", sub.plugipay_id)] == 0

    plugipay_sandbox.advance_days(20)
    assert billing.on_grace_period(user)
    plugipay_sandbox.advance_days(11)  # past the period end: Plugipay cancels
    assert not billing.subscribed(user) and not billing.on_grace_period(user)
    sub.refresh_from_db()
    assert sub.status == "canceled"
    assert sent[("subscription_canceled", sub.plugipay_id)] == 1


def test_a_team_owns_a_subscription(plugipay_sandbox, sent):
    price = make_price(trial_days=14)
    customer = services.create_customer(email="ops@team.example", name="Team A")
    team = Team.objects.create(name="A", plugipay_customer=customer)
    other = Team.objects.create(name="B")
    member = User.objects.create_user("member")
    services.subscribe(customer=customer, price=price)
    plugipay_sandbox.flush()
    assert billing.subscribed(team) and billing.on_trial(team)
    assert billing.subscribed(team, plan=price.plan)
    assert billing.subscribed(team, plan=price.plan.plugipay_id)
    assert not billing.subscribed(other) and billing.subscription(other) is None
    assert not billing.subscribed(member)  # a user is an owner of its own
    assert billing.subscription(team).customer == customer

    view = subscription_required(
        lambda request: "team page", owner=lambda request: request.user.teams.first()
    )
    team.members.add(member)
    request = RequestFactory().get("/team/")
    request.user = member
    assert view(request) == "team page"

    plugipay_sandbox.advance_days(15)  # the trial ends: an invoice to pay (send_invoice)
    assert list(billing.invoices(team).values_list("status", flat=True)) == ["open"]
    assert billing.subscription(team).status == "incomplete"
    assert not billing.subscribed(team)


def test_pause_resume_change_price_and_void(plugipay_sandbox, sent):
    price = make_price(trial_days=0)
    plan = price.plan
    get_client().request(
        "POST",
        f"/plans/{plan.plugipay_id}/prices",
        json_body={"currency": "IDR", "model": "flat", "unitAmount": 149_000},
    )
    services.sync_plans()
    bigger = plan.prices.exclude(pk=price.pk).get()
    user, customer = buyer()
    result = subscribe_automatically(customer, price)
    sub = result.subscription
    assert sub.status == "active"
    sub = services.pause_subscription(subscription=sub)
    assert sub.status == "paused" and sub.paused_at is not None
    sub = services.resume_subscription(subscription=sub)
    assert sub.status == "active" and sub.paused_at is None
    sub = services.change_subscription_price(subscription=sub, price=bigger)
    assert sub.price == bigger
    plugipay_sandbox.flush()
    key = sub.plugipay_id
    assert sent[("subscription_paused", key)] == 1
    assert sent[("subscription_resumed", key)] == 1
    assert sent[("subscription_activated", key)] == 2  # created active, then resumed
    assert sent[("subscription_updated", key)] == 1

    remote = get_client().request(
        "POST",
        "/invoices",
        json_body={
            "customerId": customer.plugipay_id,
            "currency": "IDR",
            "status": "open",
            "lines": [{"description": "Setup", "quantity": 1, "unitAmount": 50_000}],
        },
    )[0]
    invoice = services.sync_invoice(invoice=Invoice(plugipay_id=remote["id"]))
    assert invoice.status == "open" and invoice.subscription is None
    invoice = services.void_invoice(invoice=invoice)
    plugipay_sandbox.flush()
    assert invoice.status == "void" and sent[("invoice_voided", invoice.plugipay_id)] == 1

    sub = services.cancel_subscription(subscription=sub, at="now")
    plugipay_sandbox.flush()
    assert sub.status == "canceled" and sent[("subscription_canceled", key)] == 1


def test_an_invoice_payment_refunds_through_the_refund_path(plugipay_sandbox, sent):
    price = make_price(trial_days=0)
    user, customer = buyer()
    result = services.subscribe(customer=customer, price=price)
    plugipay_sandbox.pay_invoice(result.invoice)
    invoice = services.sync_invoice(invoice=result.invoice)
    payment = Payment.objects.get(invoice=invoice)
    assert payment.checkout_session is None and payment.amount == 99_000
    refund = services.refund_payment(payment=payment, amount=9_000, reason="requested_by_customer")
    plugipay_sandbox.flush()
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == "succeeded" and refund.data["sourceType"] == "invoice"
    payment.refresh_from_db()
    assert payment.amount_refunded == 9_000


def test_portal_redirects_to_a_fresh_session(plugipay_sandbox, client, settings):
    make_price()
    user, customer = buyer()
    client.force_login(user)
    response = client.get("/plugipay/billing/portal/?next=/account/")
    assert response.status_code == 302 and "/portal/" in response["Location"]
    [session] = plugipay_sandbox.state()["portal_sessions"]
    assert session["customerId"] == customer.plugipay_id
    assert session["returnUrl"] == "http://testserver/account/"

    settings.PLUGIPAY = {**settings.PLUGIPAY, "PORTAL_RETURN_URL": "/billing/"}
    client.get("/plugipay/billing/portal/?next=https://evil.example/steal")
    returns = [s["returnUrl"] for s in plugipay_sandbox.state()["portal_sessions"]]
    assert "http://testserver/billing/" in returns and not any("evil" in r for r in returns)

    client.logout()
    assert client.get("/plugipay/billing/portal/").status_code == 302  # to the login page
    stranger = User.objects.create_user("stranger")
    client.force_login(stranger)
    assert client.get("/plugipay/billing/portal/").status_code == 404


def test_invoice_document_only_for_its_owner_and_staff(plugipay_sandbox, client):
    price = make_price(trial_days=0)
    user, customer = buyer()
    invoice = services.subscribe(customer=customer, price=price).invoice
    url = f"/plugipay/billing/invoices/{invoice.plugipay_id}/document/"
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    html = client.get(url + "?format=html")
    assert invoice.number.encode() in b"".join(html.streaming_content)
    client.force_login(User.objects.create_user("other"))
    assert client.get(url).status_code == 404
    staff = User.objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 404  # staff, but not allowed to view invoices
    staff.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client.force_login(User.objects.get(pk=staff.pk))  # a fresh permission cache
    assert client.get(url).status_code == 200
    assert client.get("/plugipay/billing/invoices/inv_nope/document/").status_code == 404


def test_catalog_sync_mirrors_plans_and_prices(plugipay_sandbox):
    price = make_price()
    plan = price.plan
    assert (plan.name, plan.interval, plan.trial_days) == ("Member", "month", 7)
    assert plan.portal_features["selfServeCancel"] is True
    assert (price.currency, price.model, price.unit_amount) == ("IDR", "flat", 99_000)
    get_client().request("POST", f"/plans/{plan.plugipay_id}/archive", json_body={})
    plugipay_sandbox.flush()
    plan.refresh_from_db()
    assert not plan.active and Plan.objects.active().count() == 0
    assert Price.objects.active().count() == 0


@pytest.mark.django_db
def test_subscribing_after_a_price_change_returns_the_live_subscription_to_the_plan(
    plugipay_sandbox,
):
    """The plan's price replaced (``plugipay_plans`` after a price change) while the buyer's
    first invoice is unpaid: **Pay now** (subscribing again) returns that subscription and its
    invoice, not a second subscription with a new trial at the new price."""
    old = make_price(trial_days=0)
    _user, customer = buyer()
    first = services.subscribe(customer=customer, price=old)
    assert first.subscription.status == "incomplete" and first.invoice is not None
    get_client().request(
        "POST",
        f"/plans/{old.plan.plugipay_id}/prices",
        json_body={"currency": "IDR", "model": "flat", "unitAmount": 89_000},
    )
    get_client().request("PATCH", f"/prices/{old.plugipay_id}", json_body={"active": False})
    services.sync_plans()
    new = Price.objects.active().get(plan=old.plan)
    assert new.pk != old.pk
    again = services.subscribe(customer=customer, price=new)
    assert not again.created
    assert again.subscription.pk == first.subscription.pk
    assert again.invoice_url == first.invoice_url
    assert Subscription.objects.filter(customer=customer).count() == 1


def test_two_prices_of_one_plan_subscribed_at_once_make_one_live_subscription(
    plugipay_sandbox, monkeypatch
):
    """Two calls at once for two prices of one plan (a page still offering the replaced price
    and one the new; monthly and yearly clicked together) both pass the check before either is
    mirrored: they send the plan's one key, Plugipay makes one subscription, and the call it
    refused (the key sent with another body) returns that subscription, not a second."""
    from django_plugipay.services import billing as billing_service

    first_price = make_price(trial_days=0)
    get_client().request(
        "POST",
        f"/plans/{first_price.plan.plugipay_id}/prices",
        json_body={"currency": "IDR", "model": "flat", "unitAmount": 89_000},
    )
    services.sync_plans()
    second_price = Price.objects.filter(plan=first_price.plan).exclude(pk=first_price.pk).get()
    _user, customer = buyer()
    real, nested, started = billing_service.get_client, [], []

    class AtTheSameTime:
        """The first call's request is in flight when the second call checks and sends."""

        def __getattr__(self, name):
            return getattr(real(), name)

        def create_subscription(self, body, idempotency_key=None):
            if not started:
                started.append(True)
                nested.append(services.subscribe(customer=customer, price=second_price))
            return real().create_subscription(body, idempotency_key=idempotency_key)

    monkeypatch.setattr(billing_service, "get_client", lambda *a, **k: AtTheSameTime())
    outer = services.subscribe(customer=customer, price=first_price)
    [live] = Subscription.objects.filter(customer=customer).live()
    assert nested[0].created and not outer.created
    assert outer.subscription.pk == nested[0].subscription.pk == live.pk
