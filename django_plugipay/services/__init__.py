"""Every write path of the app: views, admin, DRF, tasks and commands call these."""

from django_plugipay.services.accounts import client_for, provision_account
from django_plugipay.services.apply import sync_object
from django_plugipay.services.billing import (
    Subscribed,
    cancel_subscription,
    change_subscription_price,
    create_portal_session,
    email_invoice,
    invoice_document,
    pause_subscription,
    resume_subscription,
    subscribe,
    sync_invoice,
    sync_plans,
    sync_subscription,
    void_invoice,
)
from django_plugipay.services.checkout import (
    cancel_checkout_session,
    confirm_checkout_session,
    create_checkout_session,
    sync_checkout_session,
)
from django_plugipay.services.customers import create_customer, get_or_create_customer_for_user
from django_plugipay.services.deliveries import (
    durable_receiver,
    resolve_deliveries,
    retry_deliveries,
    run_deliveries,
)
from django_plugipay.services.events import (
    apply_event,
    apply_queued_events,
    apply_recorded_event,
    ingest_webhook,
    process_event,
    replay_failed_events,
    requeue_stranded_events,
)
from django_plugipay.services.plans import EnsuredPlan, ensure_plans
from django_plugipay.services.reconcile import ReconcileResult, reconcile
from django_plugipay.services.refunds import (
    refund_payment,
    refundable_amount,
    submit_refund,
    submit_stranded_refunds,
    sync_refund,
)
from django_plugipay.services.sweeper import sweep, sweep_soon

__all__ = [
    "client_for",
    "provision_account",
    "EnsuredPlan",
    "ReconcileResult",
    "Subscribed",
    "cancel_subscription",
    "change_subscription_price",
    "create_portal_session",
    "email_invoice",
    "ensure_plans",
    "invoice_document",
    "pause_subscription",
    "resume_subscription",
    "subscribe",
    "sync_invoice",
    "sync_plans",
    "sync_subscription",
    "void_invoice",
    "apply_event",
    "apply_queued_events",
    "apply_recorded_event",
    "cancel_checkout_session",
    "confirm_checkout_session",
    "create_checkout_session",
    "create_customer",
    "durable_receiver",
    "get_or_create_customer_for_user",
    "ingest_webhook",
    "process_event",
    "reconcile",
    "refund_payment",
    "refundable_amount",
    "replay_failed_events",
    "requeue_stranded_events",
    "resolve_deliveries",
    "retry_deliveries",
    "run_deliveries",
    "submit_refund",
    "submit_stranded_refunds",
    "sweep",
    "sweep_soon",
    "sync_checkout_session",
    "sync_object",
    "sync_refund",
]
