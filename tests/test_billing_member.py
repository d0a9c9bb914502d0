"""Billing as a member lives it: one subscription however often Subscribe is pressed, one
entitlement rule over the whole lifecycle (driven by the sandbox clock), the invoice in step
with its subscription, and the way back to the shop after paying."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from django.db import connections

from django_plugipay import billing, services
from django_plugipay.client import get_client
from django_plugipay.models import Invoice, Subscription
from tests.test_billing import buyer, make_price


def in_threads(count, target):
    """Run ``target()`` in ``count`` threads released together; close their connections."""
    barrier = threading.Barrier(count)

    def run(_):
        barrier.wait()
        try:
            return target()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def remote_subscriptions(customer):
    return list(get_client().paginate("/subscriptions", {"customerId": customer.plugipay_id}))


def test_subscribing_twice_returns_the_live_subscription(plugipay_sandbox):
    price = make_price(trial_days=0)
    _user, customer = buyer()
    first = services.subscribe(customer=customer, price=price)
    again = services.subscribe(customer=customer, price=price)
    assert first.created and not again.created
    assert again.subscription.pk == first.subscription.pk
    # The second click still leads to the unpaid first invoice.
    assert again.invoice_url == first.invoice_url and again.invoice_url
    assert len(remote_subscriptions(customer)) == 1

    plugipay_sandbox.pay_invoice(first.invoice)
    assert services.subscribe(customer=customer, price=price).invoice is None  # paid: none due

    # Canceled, the customer may subscribe again: a new generation, a new subscription.
    services.cancel_subscription(subscription=first.subscription, at="now")
    renewed = services.subscribe(customer=customer, price=price)
    assert renewed.created and renewed.subscription.pk != first.subscription.pk
    assert len(remote_subscriptions(customer)) == 2


def test_two_concurrent_clicks_make_one_subscription(plugipay_sandbox):
    """Runs on SQLite by default and on PostgreSQL with DATABASE_URL (row locks there)."""
    price = make_price()
    user, customer = buyer()
    results = in_threads(4, lambda: services.subscribe(customer=customer, price=price))
    assert len({r.subscription.pk for r in results}) == 1
    assert Subscription.objects.filter(customer=customer).count() == 1
    assert len(remote_subscriptions(customer)) == 1
    assert billing.subscribed(user)


def at(plugipay_sandbox, days, now):
    """Move the sandbox clock from day ``now`` to day ``days`` and deliver the webhooks."""
    plugipay_sandbox.advance_days(days - now)
    return days


def state(user, subscription):
    subscription.refresh_from_db()
    invoice = subscription.invoices.order_by("created_at").first()
    return (
        subscription.status,
        invoice.status if invoice else None,
        billing.subscribed(user),
        subscription.is_entitled,
    )


def test_entitlement_timeline_when_the_member_never_pays(plugipay_sandbox):
    """Trial of 7 days, ``send_invoice``: access in the trial, none after it without a
    payment, and it never comes back on its own (incomplete → past due)."""
    price = make_price(trial_days=7)
    user, customer = buyer()
    subscription = services.subscribe(customer=customer, price=price).subscription
    plugipay_sandbox.flush()
    expected = {
        0: ("trialing", None, True),
        7: ("incomplete", "open", False),  # the trial ended: the first invoice is unpaid
        8: ("incomplete", "open", False),
        15: ("past_due", "past_due", False),  # due on day 14; invoice and subscription agree
        22: ("past_due", "past_due", False),
        31: ("past_due", "past_due", False),
        38: ("past_due", "past_due", False),  # renewed a month after the trial: still none
    }
    now = 0
    for day, (status, invoice_status, access) in expected.items():
        now = at(plugipay_sandbox, day, now)
        got = state(user, subscription)
        assert got == (status, invoice_status, access, access), f"day {day}: {got}"
        assert billing.on_trial(user) is (day == 0)


def test_entitlement_timeline_when_the_member_pays(plugipay_sandbox):
    """The same member pays the first invoice on day 8: access from the payment on, through
    the days the unpaid member had none."""
    price = make_price(trial_days=7)
    user, customer = buyer()
    subscription = services.subscribe(customer=customer, price=price).subscription
    plugipay_sandbox.flush()
    now = 0
    for day, access in ((0, True), (7, False), (8, False)):
        now = at(plugipay_sandbox, day, now)
        assert billing.subscribed(user) is access, day
    plugipay_sandbox.pay_invoice(subscription.invoices.get())
    assert state(user, subscription) == ("active", "paid", True, True)
    for day in (15, 22, 31):
        now = at(plugipay_sandbox, day, now)
        assert state(user, subscription) == ("active", "paid", True, True), day
    # A month after the trial the renewal's invoice is issued; unpaid past its due date, the
    # subscription is past due but keeps access: it was paid for before.
    now = at(plugipay_sandbox, 38, now)
    assert state(user, subscription) == ("active", "paid", True, True)
    assert subscription.invoices.order_by("-created_at").first().status == "open"
    now = at(plugipay_sandbox, 45, now)
    assert state(user, subscription) == ("past_due", "paid", True, True)


def test_past_due_on_a_renewal_keeps_access_of_a_member_who_paid(plugipay_sandbox):
    """A paying member whose renewal invoice is overdue keeps access while Plugipay collects
    (dunning); the never-paid member of the test above does not."""
    price = make_price(trial_days=0)
    user, customer = buyer()
    result = services.subscribe(customer=customer, price=price)
    plugipay_sandbox.pay_invoice(result.invoice)
    subscription = result.subscription
    plugipay_sandbox.advance_days(31 + 8)  # renewed on day ~31, that invoice due 7 days later
    subscription.refresh_from_db()
    renewal = subscription.invoices.order_by("-created_at").first()
    assert (subscription.status, renewal.status) == ("past_due", "past_due")
    assert billing.subscribed(user) and subscription.is_entitled


def test_the_invoice_follows_its_subscription_on_read_without_webhooks(plugipay_sandbox):
    """No webhook reaches the app: reading the owner's access syncs the past-due subscription
    and its unpaid invoice together."""
    price = make_price(trial_days=0)
    user, customer = buyer()
    result = services.subscribe(customer=customer, price=price)
    plugipay_sandbox.hold()
    plugipay_sandbox.advance_days(8, deliver=False)
    Subscription.objects.filter(pk=result.subscription.pk).update(read_synced_at=None)
    assert not billing.subscribed(user)
    assert Subscription.objects.get(pk=result.subscription.pk).status == "past_due"
    assert Invoice.objects.get(pk=result.invoice.pk).status == "past_due"


def test_the_hosted_invoice_page_returns_to_the_shop_after_paying(plugipay_sandbox):
    price = make_price(trial_days=0)
    _user, customer = buyer()
    result = services.subscribe(
        customer=customer, price=price, return_url="https://shop.example/members/?from=invoice"
    )
    page = requests.get(result.invoice_url, timeout=10).text
    assert 'data-testid="return"' not in page  # not before paying
    plugipay_sandbox.pay_invoice(result.invoice)
    page = requests.get(result.invoice_url, timeout=10).text
    link = re.search(r'<a class="btn" data-testid="return" href="([^"]+)">([^<]+)</a>', page)
    assert link.groups() == ("https://shop.example/members/?from=invoice", "Return to Sandbox Shop")
    page = requests.get(result.invoice_url, headers={"Accept-Language": "id"}, timeout=10).text
    assert "Kembali ke Sandbox Shop" in page

    # Without return_url there is no such link.
    other = services.subscribe(customer=buyer("other")[1], price=price)
    plugipay_sandbox.pay_invoice(other.invoice)
    assert 'data-testid="return"' not in requests.get(other.invoice_url, timeout=10).text
