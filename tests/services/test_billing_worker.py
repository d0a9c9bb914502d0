"""Renewals and reconciliation of subscriptions on a real Celery worker (Redis, PostgreSQL)."""

from django_plugipay import services, tasks
from django_plugipay.client import get_client
from django_plugipay.models import Subscription
from django_plugipay.testing import wait_for

DAY = 86400


def test_renewals_applied_by_the_worker_from_webhooks_and_reconciliation(
    plugipay_sandbox, celery_worker, signal_log, settings
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    get_client().create_plan(
        {
            "name": "Member",
            "interval": "month",
            "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 99_000}],
            "portalFeatures": {"selfServeCancel": True},
        }
    )
    [plan] = services.sync_plans()
    customer = services.create_customer(email="member@example.com")
    sub = services.subscribe(
        customer=customer,
        price=plan.prices.get(),
        collection_method="charge_automatically",
        payment_token_id="ptok_test_success",
    ).subscription
    assert sub.status == "active"
    plugipay_sandbox.flush()

    def period_moved(previous):
        return lambda: Subscription.objects.get(pk=sub.pk).current_period_start > previous

    # Webhooks recorded by the view, applied by the worker; the renewal event carries only
    # the period, so the worker fetches the subscription first.
    start = sub.current_period_start
    plugipay_sandbox.advance(31 * DAY)
    plugipay_sandbox.flush()
    wait_for(period_moved(start), timeout=60, message="the worker to apply the renewal")

    # Webhooks off: the reconcile task on the worker heals the second renewal.
    start = Subscription.objects.get(pk=sub.pk).current_period_start
    plugipay_sandbox.hold()
    plugipay_sandbox.advance(31 * DAY)
    tasks.reconcile.delay()
    wait_for(period_moved(start), timeout=60, message="the worker's reconciliation")

    wait_for(
        lambda: signal_log.committed().count(("subscription_renewed", sub.plugipay_id)) == 2,
        timeout=30,
        message="both renewals signalled",
    )
    logged = signal_log.committed()
    assert logged.count(("subscription_renewed", sub.plugipay_id)) == 2
    assert logged.count(("subscription_activated", sub.plugipay_id)) == 1
    invoices = Subscription.objects.get(pk=sub.pk).invoices.all()
    assert len(invoices) == 3 and all(i.status == "paid" for i in invoices)
    for invoice in invoices:
        assert logged.count(("invoice_paid", invoice.plugipay_id)) == 1
