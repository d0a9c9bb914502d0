"""The admin's pages for accounts whose rows live in databases of their own
(``ACCOUNT_DATABASE``): staff choose the database, and every page of the app's models — the
lists, a row's page, a refund — reads and acts there, for the row's own account."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from django_plugipay.accounts import acting_for
from django_plugipay.admin.databases import SESSION_KEY
from django_plugipay.admin.tokens import FIELD
from django_plugipay.models import Payment, Refund
from tests.factories import PaymentFactory
from tests.test_accounts import shop
from tests.test_tenant_safety import merchant_in_tenant_db  # noqa: F401, F811 - a fixture

CHOOSE = reverse("admin:django_plugipay_database")
PAYMENTS = reverse("admin:django_plugipay_payment_changelist")
INDEX = reverse("admin:app_list", kwargs={"app_label": "django_plugipay"})

pytestmark = pytest.mark.django_db(databases=["default", "tenant"], transaction=True)


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("boss", "boss@shop.test", "pw")
    client.force_login(user)
    return client


def paid_in_both(sandbox):
    """A paid payment in each database, with the same pk (the case the choice exists for):
    ``(ours, the merchant's)``."""
    _c, own_session = shop(None)
    _c, their_session = shop("merchant")
    sandbox.pay(own_session)
    sandbox.pay(their_session)
    theirs = Payment.objects.using("tenant").get()
    own = Payment.objects.using("default").filter(pk=theirs.pk).first()
    if own is None:  # the databases' sequences differ: made
        own = PaymentFactory(pk=theirs.pk)
    return own, theirs


def choose(client, database, next_url=PAYMENTS):
    return client.post(CHOOSE, {"database": database, "next": next_url})


def test_the_lists_read_the_database_the_staff_member_chose(tenancy, staff):
    """The default database until another is chosen; the chooser names each database's
    accounts; the choice holds for every page of the session, the index too."""
    PaymentFactory(plugipay_id="pay_ours")
    with acting_for("t"):
        PaymentFactory(plugipay_id="pay_tenants")
    page = staff.get(PAYMENTS).content.decode()
    assert "pay_ours" in page and "pay_tenants" not in page
    assert 'id="plugipay-database"' in page
    assert re.search(r'<option value="tenant"[^>]*>t \(database tenant\)</option>', page)
    assert re.search(r'<option value="default" selected>default, u \(database default\)', page)

    moved = choose(staff, "tenant")
    assert moved.status_code == 302 and moved.url == PAYMENTS
    page = staff.get(PAYMENTS).content.decode()
    assert "pay_tenants" in page and "pay_ours" not in page
    assert '<option value="tenant" selected>' in page
    assert 'id="plugipay-database"' in staff.get(INDEX).content.decode()

    tenants = Payment.objects.using("tenant").get()
    change = reverse("admin:django_plugipay_payment_change", args=[tenants.pk])
    assert "pay_tenants" in staff.get(change).content.decode()

    # a lookup popup of another model's form (raw_id_fields) lists the default database's
    # rows, the ones that form saves and validates
    popup = staff.get(PAYMENTS, {"_popup": "1", "_to_field": "id"}).content.decode()
    assert "pay_ours" in popup and "pay_tenants" not in popup

    choose(staff, "default")
    assert "pay_ours" in staff.get(PAYMENTS).content.decode()


def test_a_refund_from_the_tenant_database_refunds_the_tenants_payment(
    merchant_in_tenant_db,  # noqa: F811 - the fixture imported above
    staff,
):
    """Both databases hold a payment with the same pk: the refund page, in the chosen
    database, refunds the merchant's, with the merchant's credentials, and leaves ours."""
    sandbox, _secret = merchant_in_tenant_db
    own, theirs = paid_in_both(sandbox)

    choose(staff, "tenant")
    url = reverse("admin:django_plugipay_payment_refund", args=[theirs.pk])
    page = staff.get(url)
    assert page.status_code == 200 and theirs.plugipay_id in page.content.decode()
    token = page.context["token"]
    done = staff.post(url, {"post": "yes", "amount": "700", "reason": "duplicate", FIELD: token})
    assert done.status_code == 302
    sandbox.flush()
    refund = Refund.objects.using("tenant").get()
    assert (refund.payment_id, refund.amount, refund.status) == (theirs.pk, 700, "succeeded")
    assert refund.account.alias == "merchant"
    assert not Refund.objects.using("default").exists()
    own.refresh_from_db(using="default")
    assert own.amount_refunded == 0
    # the payouts' balance is the chosen database's account's, not the default account's
    payouts = staff.get(reverse("admin:django_plugipay_payout_changelist"))
    assert payouts.context["balance_account"].alias == "merchant"
    # the admin log keeps entries by pk in the default database: each row's history is its own
    history = reverse("admin:django_plugipay_payment_history", args=[theirs.pk])
    assert "[tenant] Requested a refund" in staff.get(history).content.decode()
    choose(staff, "default")
    assert "Requested a refund" not in staff.get(history).content.decode()


def test_an_unknown_database_or_a_foreign_next_changes_nothing_unsafe(tenancy, staff):
    """A database no account uses is not remembered; ``next`` off this site goes to the
    app's index; the chooser takes only POST."""
    response = choose(staff, "elsewhere", next_url="https://evil.test/")
    assert response.status_code == 302 and response.url == INDEX
    assert SESSION_KEY not in staff.session
    assert staff.get(CHOOSE).status_code == 405


def test_one_database_shows_no_chooser(staff):
    """A project without ``ACCOUNT_DATABASE`` sees the admin it always had."""
    PaymentFactory(plugipay_id="pay_ours")
    page = staff.get(PAYMENTS).content.decode()
    assert "pay_ours" in page and "plugipay-database" not in page
    assert "plugipay-database" not in staff.get(INDEX).content.decode()


def test_a_chosen_database_no_longer_served_falls_back_to_the_default(tenancy, settings, rf):
    """The settings changed since the choice (the tenant database dropped from the hook): the
    pages read the default database again, and a posted database no account uses is none."""
    from django_plugipay.admin import databases

    request = rf.get(PAYMENTS)
    request.session = {SESSION_KEY: "tenant"}
    assert databases.chosen(request).alias == "tenant"
    settings.PLUGIPAY = {**settings.PLUGIPAY, "ACCOUNT_DATABASE": None}
    assert databases.chosen(request) is None
    posted = rf.post(PAYMENTS, {databases.FIELD: "elsewhere"})
    posted.session = {}
    assert databases.chosen(posted) is None


def test_a_page_acts_in_the_database_it_was_opened_in(merchant_in_tenant_db, staff):  # noqa: F811
    """A refund page opened with the tenant database chosen and submitted after the staff
    member chose the default one in another tab refunds the payment the page showed (its
    form posts the database it was opened in), never the default database's with its pk."""
    sandbox, _secret = merchant_in_tenant_db
    _own, theirs = paid_in_both(sandbox)
    choose(staff, "tenant")
    url = reverse("admin:django_plugipay_payment_refund", args=[theirs.pk])
    page = staff.get(url)
    assert theirs.plugipay_id in page.content.decode()
    posted = re.search(r'name="plugipay_database" value="(\w+)"', page.content.decode())[1]
    assert posted == "tenant"
    choose(staff, "default")  # another tab
    confirm = {"post": "yes", "amount": "700", "reason": "duplicate"}
    done = staff.post(
        url, {**confirm, FIELD: page.context["token"], "plugipay_database": posted}, follow=True
    )
    sandbox.flush()
    assert not Refund.objects.using("default").exists()
    assert Refund.objects.using("tenant").get().payment_id == theirs.pk
    # the page it lands on (the payment's) shows the payment refunded, from that database
    assert theirs.plugipay_id in done.content.decode()
    # the home page's recent actions name the database of the row they link to
    home = staff.get(reverse("admin:index")).content.decode()
    assert f"[tenant] {theirs.plugipay_id}" in home


def test_the_ledger_export_reads_the_chosen_database(tenancy, staff):
    """The CSV export is streamed after the view returns: it is read in the chosen database
    too."""
    from django_plugipay.models import LedgerEntry

    def entry(plugipay_id, tx_id):
        return LedgerEntry.objects.create(
            plugipay_id=plugipay_id,
            tx_id=tx_id,
            code="cash",
            direction="debit",
            amount=100,
            currency="IDR",
        )

    entry("le_ours", "tx_ours")
    with acting_for("t"):
        entry("le_tenants", "tx_tenants")
    choose(staff, "tenant")
    listed = staff.get(reverse("admin:django_plugipay_ledgerentry_changelist"))
    link = listed.context["export_url"]
    assert "plugipay_database=tenant" in link
    choose(staff, "default")  # another tab: the link on the tenant's page still exports its
    export = staff.get(link)
    assert export["Content-Disposition"] == 'attachment; filename="plugipay-ledger-tenant.csv"'
    text = b"".join(export.streaming_content).decode()
    assert "tx_tenants" in text and "tx_ours" not in text


def test_a_database_that_cannot_be_read_is_said_and_left(tenancy, staff):
    """The chosen database is away: the page says so and the pages read the default database
    again, instead of a 500."""
    from django.db import connections

    PaymentFactory(plugipay_id="pay_ours")
    choose(staff, "tenant")
    tenant = connections["tenant"]
    name = tenant.settings_dict["NAME"]
    tenant.close()
    tenant.settings_dict["NAME"] = "/nonexistent/directory/tenant.sqlite3"
    try:
        away = staff.get(PAYMENTS, follow=True)
    finally:
        tenant.close()
        tenant.settings_dict["NAME"] = name
    assert away.status_code == 200
    assert "cannot be read" in away.content.decode()
    assert staff.session[SESSION_KEY] == "default"
    assert "pay_ours" in staff.get(PAYMENTS).content.decode()


def test_the_chooser_comes_back_to_the_list_with_its_filters(tenancy, staff):
    """The chooser's form goes back to the list it was on with its filters and search, but
    not its page number (the other database may have fewer pages)."""
    page = staff.get(PAYMENTS, {"status__exact": "succeeded", "q": "pay", "p": "3"})
    back = re.search(r'name="next" value="([^"]*)"', page.content.decode())[1]
    assert back == f"{PAYMENTS}?status__exact=succeeded&amp;q=pay"
    response = choose(staff, "tenant", next_url=back.replace("&amp;", "&"))
    assert response.url == f"{PAYMENTS}?status__exact=succeeded&q=pay"
