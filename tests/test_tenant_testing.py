"""A project's tests of its default account, once it keeps a tenant's rows in a database of
its own (``ACCOUNT_DATABASE``): the sandbox fixture asks for the default database alone."""

from __future__ import annotations

from django_plugipay.models import Payment


def test_a_default_account_payment_with_a_tenant_database_the_test_may_not_use(
    tenancy, plugipay_sandbox
):
    """Copying the account rows into the tenant's database, which this test may not touch,
    waits for that tenant's own work instead of failing the default account's."""
    payment = plugipay_sandbox.paid_payment(amount=250_000)
    assert Payment.objects.using("default").get(pk=payment.pk).status == "succeeded"
