"""factory_boy factories for the mirror models."""

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_plugipay.models import (
    CheckoutSession,
    Customer,
    Invoice,
    Payment,
    Plan,
    Price,
    Refund,
    Subscription,
    WebhookEvent,
)
from django_plugipay.testing import build_event


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    plugipay_id = factory.Sequence(lambda n: f"cus_{n:026d}")
    email = factory.Sequence(lambda n: f"buyer{n}@example.com")


class CheckoutSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CheckoutSession

    plugipay_id = factory.Sequence(lambda n: f"cs_{n:026d}")
    customer = factory.SubFactory(CustomerFactory)
    amount = 250_000
    currency = "IDR"
    status = "open"


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    plugipay_id = factory.Sequence(lambda n: f"pay_{n:026d}")
    checkout_session = factory.SubFactory(
        CheckoutSessionFactory, status="completed", amount=factory.SelfAttribute("..amount")
    )
    customer = factory.SelfAttribute("checkout_session.customer")
    amount = 250_000
    currency = "IDR"
    status = "succeeded"
    method = "card"
    paid_at = factory.LazyFunction(timezone.now)


class RefundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Refund

    payment = factory.SubFactory(PaymentFactory)
    plugipay_id = factory.Sequence(lambda n: f"rfd_{n:026d}")
    amount = 10_000
    currency = "IDR"
    reason = "requested_by_customer"
    status = "succeeded"
    idempotency_key = factory.Sequence(lambda n: f"idem_test_{n}")


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan

    plugipay_id = factory.Sequence(lambda n: f"plan_{n:026d}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    trial_days = 7


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    plugipay_id = factory.Sequence(lambda n: f"price_{n:026d}")
    plan = factory.SubFactory(PlanFactory)
    currency = "IDR"
    unit_amount = 99_000


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    plugipay_id = factory.Sequence(lambda n: f"sub_{n:026d}")
    customer = factory.SubFactory(CustomerFactory, user=factory.SubFactory(UserFactory))
    price = factory.SubFactory(PriceFactory)
    plan = factory.SelfAttribute("price.plan")
    status = "active"
    current_period_start = factory.LazyFunction(timezone.now)
    current_period_end = factory.LazyAttribute(
        lambda s: s.current_period_start + dt.timedelta(days=30)
    )


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    plugipay_id = factory.Sequence(lambda n: f"inv_{n:026d}")
    subscription = factory.SubFactory(SubscriptionFactory)
    customer = factory.SelfAttribute("subscription.customer")
    number = factory.Sequence(lambda n: f"INV-{n:05d}")
    status = "paid"
    currency = "IDR"
    subtotal = 99_000
    total = 99_000
    amount_paid = 99_000


class WebhookEventFactory(factory.django.DjangoModelFactory):
    """A processed ``payment.succeeded`` event about ``object_id``."""

    class Meta:
        model = WebhookEvent

    object_id = factory.Sequence(lambda n: f"pay_{n:026d}")
    payload = factory.LazyAttribute(
        lambda e: build_event("payment.succeeded", {"id": e.object_id, "status": "succeeded"})
    )
    event_id = factory.LazyAttribute(lambda e: e.payload["id"])
    type = factory.LazyAttribute(lambda e: e.payload["type"])
    kind = "payment.succeeded"
    mode = "test"
    status = "processed"
    attempts = 1


def paid_sessions(sandbox, count: int) -> None:
    """``count`` checkout sessions paid in the sandbox, their webhooks held there (not sent)."""
    from django_plugipay import services

    sandbox.hold()
    for i in range(count):
        session = services.create_checkout_session(
            amount=10_000 + i,
            currency="IDR",
            success_url="https://shop.test/ok",
            cancel_url="https://shop.test/no",
        )
        sandbox.pay(session, deliver=False)
