"""``plugipay_doctor`` with several accounts (each line names its account) and the partner
usage report, against the sandbox."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from django_plugipay import services
from tests.conftest import MERCHANT
from tests.test_accounts import shop
from tests.test_doctor import doctor, line


def test_the_doctor_checks_every_account_and_names_it(two_accounts):
    status, output = doctor()
    assert status == 0, output
    for name in ("credentials", "clock", "webhook endpoint", "test event"):
        assert line(output, f"{name} [default]").startswith("[ok]"), output
    assert line(output, "credentials [merchant]").startswith("[ok]"), output
    assert f"on behalf of {MERCHANT}" in line(output, "credentials [merchant]")
    assert line(output, "webhook endpoint [merchant]").startswith("[ok]"), output


def test_an_accounts_missing_endpoint_and_refused_credentials_are_its_own_lines(
    two_accounts, settings
):
    services.provision_account(
        account_id="acc_second_shop", brand_name="Second", business_email="o@second.test"
    )
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {
            **settings.PLUGIPAY["ACCOUNTS"],
            "second": {"ON_BEHALF_OF": "acc_second_shop", "WEBHOOK_SECRETS": ["whsec_x"]},
            "stranger": {"ON_BEHALF_OF": "acc_nobody_here", "WEBHOOK_SECRETS": ["whsec_y"]},
        },
    }
    status, output = doctor()
    assert status == 1, output
    assert line(output, "credentials [merchant]").startswith("[ok]"), output
    assert line(output, "webhook endpoint [merchant]").startswith("[ok]"), output
    second = line(output, "webhook endpoint [second]")
    assert second.startswith("[FAIL]") and "plugipay_webhooks --account second" in second
    stranger = line(output, "credentials [stranger]")
    assert stranger.startswith("[FAIL]") and "PLUGIPAY['ACCOUNTS']['stranger']" in stranger
    assert line(output, "webhook endpoint [stranger]").startswith("[skip]")
    assert "webhook endpoint [second]" in output.splitlines()[-1]


def test_partner_usage_reports_each_partner_account(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, **plugipay_sandbox.platform_settings()}
    for account_id, partner in (("acc_usage_one", "p1"), ("acc_usage_two", "p1")):
        services.provision_account(
            account_id=account_id,
            brand_name=account_id,
            business_email="o@usage.test",
            partner=partner,
            discount_rate=0.02,
        )
    services.provision_account(
        account_id="acc_usage_other", brand_name="other", business_email="o@o.test", partner="p2"
    )
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"one": {"ON_BEHALF_OF": "acc_usage_one"}},
    }
    _customer, session = shop("one")
    plugipay_sandbox.pay(session)
    today = timezone.now().date()
    usage = services.partner_usage(partner="p1", start=today, end=today + dt.timedelta(days=1))
    lines = {line.account_id: line for line in usage.lines}
    assert set(lines) == {"acc_usage_one", "acc_usage_two"}
    assert (lines["acc_usage_one"].transaction_count, lines["acc_usage_one"].gross_volume) == (
        1,
        120_000,
    )
    assert lines["acc_usage_one"].discount_rate == 0.02
    assert lines["acc_usage_one"].fee > 0 and lines["acc_usage_two"].transaction_count == 0
    assert usage.fee == sum(line.fee for line in usage.lines) and usage.currency == "IDR"
    # another period: nothing taken then
    earlier = services.partner_usage(partner="p1", end=today - dt.timedelta(days=1))
    assert earlier.transaction_count == 0 and earlier.fee == 0
    # ``end`` is exclusive: the day before today, up to today, holds nothing (a partner is
    # billed for a day in one period only)
    yesterday = services.partner_usage(partner="p1", start=today - dt.timedelta(days=1), end=today)
    assert yesterday.transaction_count == 0 and yesterday.fee == 0
