"""Many accounts in one sandbox, driven by the unmodified official SDK (forjio-plugipay):
platform keys, partner workspaces, on-behalf-of scoping, per-account events, signatures and
idempotency keys, partner usage, hosted pages, control routes and the dashboard's switcher."""

import json
import uuid

import plugipay
import pytest
import requests

from django_plugipay.testing import wait_for
from plugipay_sandbox.__main__ import build_parser
from tests.sandbox.conftest import WEBHOOK_SECRET, Receiver

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

OWN_ACCOUNT = "acc_01SANDBOX00000000000000000"


def fresh_id():
    return "acc_" + uuid.uuid4().hex[:16]


@pytest.fixture
def provision(platform):
    def make(partner="partner-a", discount_rate=0.02, **kwargs):
        account_id = fresh_id()
        platform.admin.provision_workspace(
            account_id=account_id,
            partner=partner,
            discount_rate=discount_rate,
            brand_name=kwargs.get("brand_name", f"Shop {account_id[-4:]}"),
            business_email=kwargs.get("business_email", "owner@shop.test"),
        )
        return platform.for_merchant(account_id), account_id

    return make


def state(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/state", timeout=10).json()["data"]


def open_session(client, amount):
    return client.checkout_sessions.create(
        amount=amount,
        currency="IDR",
        methods=["card"],
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
    )


def paid_session(client, control, amount):
    session = open_session(client, amount)
    card = {"card": "4242424242424242"}
    status, body = control("POST", f"checkout-sessions/{session['id']}/pay", card)
    assert status == 200 and body["data"]["outcome"] == "succeeded", body
    return session, body["data"]["payment"]


def test_provisioning_through_the_admin_routes(platform, sandbox):
    account_id = fresh_id()
    workspace = platform.admin.provision_workspace(
        account_id=account_id,
        partner="partner-a",
        discount_rate=0.02,
        brand_name="Toko Ada",
        business_email="ada@toko.test",
    )
    assert workspace["accountId"] == account_id and workspace["brandName"] == "Toko Ada"
    assert workspace["workspaceId"].startswith("ws_")
    fetched = platform.admin.get_workspace(account_id)
    assert fetched.raw == workspace.raw
    # the workspace id names the same account, on the admin routes and in the header
    assert platform.admin.get_workspace(workspace["workspaceId"])["accountId"] == account_id
    by_workspace = platform.for_merchant(workspace["workspaceId"])
    assert by_workspace.customers.create(email="w@toko.test")["accountId"] == account_id
    with pytest.raises(plugipay.PlugipayError) as info:
        platform.admin.get_workspace("acc_nobody")
    assert info.value.status == 404
    assert account_id in [a["id"] for a in state(sandbox)["accounts"]]


def test_a_merchant_key_is_refused_and_nothing_is_created(sdk, provision, sandbox):
    _client, account_id = provision()
    before = state(sandbox)
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.admin.provision_workspace(account_id=fresh_id(), partner="p", discount_rate=0.1)
    assert info.value.status == 403
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.admin.partner_usage(partner="p", from_="2020-01-01", to="2030-01-01")
    assert info.value.status == 403
    acting = sdk.for_merchant(account_id)
    with pytest.raises(plugipay.PlugipayError) as info:
        acting.customers.create(email="sneaky@shop.test")
    assert info.value.status == 403
    with pytest.raises(plugipay.PlugipayError) as info:
        plugipay.PlugipayClient(
            key_id="pk_test_sandbox",
            secret="sk_test_sandbox",
            base_url=sandbox.base_url,
            on_behalf_of=OWN_ACCOUNT,  # even its own account: the header is for platforms
        ).webhook_endpoints.create(url="https://shop.test/hook")
    assert info.value.status == 403
    after = state(sandbox)
    assert after["accounts"] == before["accounts"]
    assert after["customers"] == before["customers"] and after["events"] == before["events"]
    assert after["endpoints"] == before["endpoints"]


def test_an_unknown_account_in_the_header_is_404(platform):
    with pytest.raises(plugipay.PlugipayError) as info:
        platform.for_merchant("acc_nobody").customers.list()
    assert info.value.status == 404


def test_objects_are_scoped_to_their_account(sdk, platform, provision, control):
    shop_a, account_a = provision()
    shop_b, account_b = provision()
    mine = sdk.customers.create(email="same@buyer.test")
    theirs = shop_a.customers.create(email="same@buyer.test", external_id="u-1")
    # the same externalId is free in another account
    other = shop_b.customers.create(email="same@buyer.test", external_id="u-1")
    assert (mine["accountId"], theirs["accountId"], other["accountId"]) == (
        OWN_ACCOUNT,
        account_a,
        account_b,
    )
    assert account_a in theirs["arn"]
    for client, own, foreign in ((sdk, mine, theirs), (shop_a, theirs, other)):
        assert [c["id"] for c in client.customers.list().data] == [own["id"]]
        with pytest.raises(plugipay.PlugipayError) as info:
            client.customers.get(foreign["id"])
        assert info.value.status == 404
    # a platform key without the header acts for the merchant key's own account
    assert [c["id"] for c in platform.customers.list().data] == [mine["id"]]

    session, payment = paid_session(shop_a, control, 120_000)
    assert payment["accountId"] == account_a
    assert shop_a.checkout_sessions.get(session["id"])["status"] == "completed"
    for client in (sdk, shop_b):
        assert session["id"] not in [s["id"] for s in client.checkout_sessions.list().data]
        with pytest.raises(plugipay.PlugipayError) as info:
            client.checkout_sessions.get(session["id"])
        assert info.value.status == 404
        with pytest.raises(plugipay.PlugipayError) as info:
            client.refunds.create(
                source_type="checkout_session", source_id=session["id"], amount=1_000
            )
        assert info.value.status == 404
    refund = shop_a.refunds.create(
        source_type="checkout_session", source_id=session["id"], amount=20_000
    )
    assert refund["accountId"] == account_a
    assert [r["id"] for r in shop_a.refunds.list().data] == [refund["id"]]
    assert sdk.refunds.list().data == []


def test_billing_objects_are_scoped(sdk, provision, control, sandbox):
    shop_a, account_a = provision()
    plan = shop_a.plans.create(name="Pro", interval="month", amount=99_000, currency="IDR")
    assert plan["accountId"] == account_a
    assert plan["id"] in [p["id"] for p in shop_a.plans.list().data]
    assert plan["id"] not in [p["id"] for p in sdk.plans.list().data]
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.plans.get(plan["id"])
    assert info.value.status == 404
    customer = shop_a.customers.create(email="sub@shop.test")
    mine = sdk.customers.create(email="sub@shop.test")
    # a plan of another account cannot be subscribed to, nor its customer billed
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.subscriptions.create(
            customer_id=mine["id"], plan_id=plan["id"], price_id=plan["prices"][0]["id"]
        )
    assert info.value.status in (400, 404)
    invoice = shop_a.invoices.create(
        customer_id=customer["id"],
        currency="IDR",
        lines=[{"description": "Setup", "quantity": 1, "unitAmount": 50_000}],
    )
    assert invoice["accountId"] == account_a
    assert invoice["id"] not in [i["id"] for i in sdk.invoices.list().data]
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.invoices.get(invoice["id"])
    assert info.value.status == 404
    # what the clock creates (a trial's end: the first invoice) belongs to the account too
    trial = shop_a.plans.create(
        name="Trial", interval="month", amount=10_000, currency="IDR", trial_days=1
    )
    subscription = shop_a.subscriptions.create(
        customer_id=customer["id"],
        plan_id=trial["id"],
        price_id=trial["prices"][0]["id"],
        collection_method="send_invoice",
    )
    control("POST", "clock/advance", {"seconds": 2 * 24 * 3600})
    billed = [i for i in state(sandbox)["invoices"] if i["subscriptionId"] == subscription["id"]]
    assert billed and {i["accountId"] for i in billed} == {account_a}
    assert billed[0]["id"] in [i["id"] for i in shop_a.invoices.list().data]
    assert not {i["id"] for i in billed} & {i["id"] for i in sdk.invoices.list().data}


def test_events_and_signatures_are_per_account(sdk, provision, control, receiver, sandbox):
    shop_a, account_a = provision()
    theirs = Receiver()
    try:
        endpoint = shop_a.webhook_endpoints.create(url=theirs.url, events=["*"])
        assert endpoint["accountId"] == account_a
        assert endpoint["id"] not in [e["id"] for e in sdk.webhook_endpoints.list()]
        assert [e["id"] for e in shop_a.webhook_endpoints.list()] == [endpoint["id"]]
        session, _payment = paid_session(shop_a, control, 75_000)
        control("POST", "deliveries/flush")
        wait_for(lambda: len(theirs.deliveries) >= 3, message="account A's deliveries")
        for headers, body in theirs.deliveries:
            event = plugipay.verify_webhook(
                body, headers.get("X-Plugipay-Signature"), endpoint["secret"]
            )
            assert event.raw["accountId"] == account_a
            with pytest.raises(plugipay.PlugipaySignatureError):
                plugipay.verify_webhook(body, headers.get("X-Plugipay-Signature"), WEBHOOK_SECRET)
        types = [json.loads(body)["type"] for _, body in theirs.deliveries]
        assert "plugipay.checkout_session.completed.v1" in types
        # the merchant key's own endpoint (the command line's) hears nothing of account A
        assert all(json.loads(body)["accountId"] == OWN_ACCOUNT for _, body in receiver.deliveries)
        assert not any(session["id"] in body.decode() for _, body in receiver.deliveries)
        events = shop_a.events.list(limit=50).data
        assert events and {e["accountId"] for e in events} == {account_a}
        assert all(e["id"] not in {x["id"] for x in sdk.events.list(limit=50).data} for e in events)
        with pytest.raises(plugipay.PlugipayError) as info:
            sdk.events.get(events[0]["id"])
        assert info.value.status == 404
        sent = [d for d in state(sandbox)["deliveries"] if d["endpointId"] == endpoint["id"]]
        assert sent and {d["accountId"] for d in sent} == {account_a}
    finally:
        theirs.server.shutdown()


def test_docs_style_events_name_the_account_workspace(provision, control, platform):
    _shop, account_id = provision()
    control("POST", "config", {"eventStyle": "docs"})
    workspace = platform.admin.get_workspace(account_id)["workspaceId"]
    customer = platform.for_merchant(account_id).customers.create(email="d@shop.test")
    status, body = control("GET", "state")
    event = next(e for e in body["data"]["events"] if e["object"]["id"] == customer["id"])
    status, rendered = control("GET", f"events/{event['id']}/body")
    assert status == 200
    text = json.dumps(rendered)
    assert workspace in text and "acc_01SANDBOX" not in text


def test_idempotency_keys_are_per_account(sandbox, provision):
    _shop, account_id = provision()
    key_id, secret = "pk_test_platform", "sk_test_platform"
    client = plugipay.PlugipayClient(key_id=key_id, secret=secret, base_url=sandbox.base_url)

    def create(on_behalf_of=None):
        return client.request(
            method="POST",
            path="/api/v1/customers",
            body={"email": "idem@shop.test"},
            idempotency_key="k-1",
            on_behalf_of=on_behalf_of,
        )

    own, theirs = create(), create(account_id)
    assert own["id"] != theirs["id"] and theirs["accountId"] == account_id
    assert create(account_id)["id"] == theirs["id"] and create()["id"] == own["id"]


def test_partner_usage(platform, provision, control):
    partner = "partner-" + uuid.uuid4().hex[:6]
    shop_a, account_a = provision(partner=partner, discount_rate=0.02)
    shop_b, account_b = provision(partner=partner, discount_rate=1.5)  # a percentage
    shop_c, _account_c = provision(partner="someone-else", discount_rate=0.5)
    paid_session(shop_a, control, 100_000)
    paid_session(shop_a, control, 50_001)
    paid_session(shop_b, control, 20_000)
    paid_session(shop_c, control, 999_000)
    open_session(shop_a, 70_000)  # never paid: not a transaction
    report = platform.admin.partner_usage(partner=partner, from_="2020-01-01", to="2099-12-31")
    lines = {line["accountId"]: line for line in report["lines"]}
    assert set(lines) == {account_a, account_b}
    assert lines[account_a]["transactionCount"] == 2
    assert lines[account_a]["grossVolume"] == 150_001
    assert lines[account_a]["discountRate"] == 0.02
    assert lines[account_a]["fee"] == 3_000  # 150,001 × 2 % = 3,000.02, whole rupiah
    assert (lines[account_b]["transactionCount"], lines[account_b]["fee"]) == (1, 300)
    assert report["total"] == 3_300
    empty = platform.admin.partner_usage(partner=partner, from_="2020-01-01", to="2020-01-31")
    assert {line["grossVolume"] for line in empty["lines"]} == {0}


def test_hosted_pages_and_control_routes_serve_every_account(provision, control, sandbox):
    shop_a, account_a = provision(brand_name="Warung Sebelah")
    session = open_session(shop_a, 42_000)
    page = requests.get(session["hostedUrl"], timeout=10)
    assert page.status_code == 200 and "Warung Sebelah" in page.text
    status, body = control("POST", f"checkout-sessions/{session['id']}/expire")
    assert status == 200
    assert shop_a.checkout_sessions.get(session["id"])["status"] == "expired"
    expired = [e for e in shop_a.events.list(limit=20).data if "expired" in e["type"]]
    assert expired and expired[0]["accountId"] == account_a
    customer = shop_a.customers.create(email="portal@shop.test", name="Ani")
    lines = [{"description": "Setup", "quantity": 1, "unitAmount": 30_000}]
    draft = shop_a.invoices.create(customer_id=customer["id"], currency="IDR", lines=lines)
    invoice = shop_a.invoices.finalize(draft["id"])
    page = requests.get(invoice["hostedInvoiceUrl"], timeout=10)
    assert page.status_code == 200 and "Warung Sebelah" in page.text
    status, body = control("POST", f"invoices/{invoice['id']}/pay", {"card": "4242424242424242"})
    assert status == 200, body
    paid = shop_a.invoices.get(invoice["id"])
    assert paid["status"] == "paid"
    charge = next(p for p in state(sandbox)["payments"] if p["id"] == paid["chargeId"])
    assert charge["accountId"] == account_a
    portal = shop_a.portal_sessions.create(
        customer_id=customer["id"], return_url="https://shop.test/account"
    )
    page = requests.get(portal["url"], timeout=10)
    assert page.status_code == 200 and "Warung Sebelah" in page.text


def test_dashboard_account_switcher(sdk, provision, sandbox):
    shop_a, account_a = provision(brand_name="Toko Switch")
    theirs = shop_a.customers.create(email="switch-a@shop.test")
    mine = sdk.customers.create(email="switch-own@shop.test")
    everything = requests.get(f"{sandbox.base_url}/dashboard/customers", timeout=10).text
    assert theirs["id"] in everything and mine["id"] in everything
    assert "Toko Switch" in everything and 'data-testid="account-switcher"' in everything
    only_a = requests.get(
        f"{sandbox.base_url}/dashboard/customers", params={"account": account_a}, timeout=10
    ).text
    assert theirs["id"] in only_a and mine["id"] not in only_a
    assert f'href="/dashboard/events?account={account_a}"' in only_a
    assert f'<option value="{account_a}" selected>' in only_a
    indonesian = requests.get(
        f"{sandbox.base_url}/dashboard/customers",
        params={"account": account_a, "lang": "id"},
        timeout=10,
    ).text
    assert "Semua akun" in indonesian
    # an object's own page, whatever was chosen, names the object's account in the switcher
    detail = requests.get(f"{sandbox.base_url}/dashboard/customers/{theirs['id']}", timeout=10)
    assert detail.status_code == 200 and f'<option value="{account_a}" selected>' in detail.text


def test_config_names_the_own_account_and_platform_keys(control):
    status, body = control("GET", "config")
    assert body["data"]["accountId"] == OWN_ACCOUNT
    assert body["data"]["platformKeyIds"] == ["pk_test_platform"]


def test_platform_key_flag():
    args = build_parser().parse_args(
        ["--platform-key", "pk_test_pf:sk_test_pf", "--platform-key", "pk_live_pf:sk_live_pf"]
    )
    assert dict(args.platform_key) == {"pk_test_pf": "sk_test_pf", "pk_live_pf": "sk_live_pf"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--platform-key", "no-secret"])
