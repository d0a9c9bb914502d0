"""Billing in the admin and the DRF API: the catalog sync, subscription and invoice operations
behind confirmation pages and permissions, the user's subscriptions, subscribing and the portal."""

import pytest

pytest.importorskip("rest_framework")

from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.test import APIClient

from django_plugipay import services
from django_plugipay.client import PlugipayClient
from django_plugipay.models import Invoice, Plan, Price, Subscription
from tests.factories import UserFactory

API = "/plugipay/api"
MEMBER = {
    "name": "Member",
    "interval": "month",
    "trialDays": 7,
    "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 99_000, "taxMode": "inclusive"}],
    "portalFeatures": {"selfServeCancel": True, "updatePaymentMethod": True},
}


def member_price(**plan):
    PlugipayClient.from_settings().request("POST", "/plans", json_body={**MEMBER, **plan})
    services.sync_plans()
    return Price.objects.select_related("plan").get(plan__name=plan.get("name", "Member"))


def subscriber(price, *, trial_days=None, username=None):
    user = UserFactory(**({"username": username} if username else {}))
    customer = services.get_or_create_customer_for_user(user=user)
    result = services.subscribe(customer=customer, price=price, trial_days=trial_days)
    return user, result.subscription, result.invoice_url


def staff(*codenames):
    user = UserFactory(is_staff=True)
    codes = ("view_plan", "view_price", "view_subscription", "view_invoice", *codenames)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codes))
    return user


def post_action(client, model, action, objects, **extra):
    return client.post(
        f"/admin/django_plugipay/{model}/",
        {"action": action, "_selected_action": [o.pk for o in objects], **extra},
        follow=True,
    )


# ── admin ─────────────────────────────────────────────────────────────────────


def test_sync_catalog_action_needs_no_selection(plugipay_sandbox, client):
    PlugipayClient.from_settings().request("POST", "/plans", json_body=MEMBER)
    client.force_login(staff())
    page = client.post(
        "/admin/django_plugipay/plan/", {"action": "sync_catalog", "index": 0}, follow=True
    )
    assert page.status_code == 200
    assert Plan.objects.get().name == "Member"
    assert Price.objects.get().unit_amount == 99_000
    listing = client.get("/admin/django_plugipay/price/").content.decode()
    assert "IDR 99,000" in listing


def test_cancel_at_period_end_behind_a_confirmation_page(plugipay_sandbox, client):
    _, subscription, _ = subscriber(member_price())
    user = staff("manage_subscription")
    client.force_login(user)
    confirm = client.post(
        "/admin/django_plugipay/subscription/",
        {"action": "cancel_at_period_end", "_selected_action": [subscription.pk]},
    )
    html = confirm.content.decode()
    assert "Cancel these subscriptions when their current period ends" in html
    subscription.refresh_from_db()
    assert subscription.cancel_at is None
    done = post_action(client, "subscription", "cancel_at_period_end", [subscription], post="yes")
    assert "1 subscription will cancel at period end." in done.content.decode()
    subscription.refresh_from_db()
    assert subscription.cancel_at is not None and subscription.status == "trialing"
    assert LogEntry.objects.get().user == user
    listing = client.get("/admin/django_plugipay/subscription/").content.decode()
    assert "trialing, cancels" in listing


def test_cancel_now_pause_and_resume(plugipay_sandbox, client):
    price = member_price()
    _, paused, _ = subscriber(price)
    _, gone, _ = subscriber(price)
    client.force_login(staff("manage_subscription"))
    post_action(client, "subscription", "pause_subscriptions", [paused], post="yes")
    paused.refresh_from_db()
    assert paused.status == "paused"
    post_action(client, "subscription", "resume_subscriptions", [paused], post="yes")
    paused.refresh_from_db()
    assert paused.status != "paused"
    post_action(client, "subscription", "cancel_now", [gone], post="yes")
    gone.refresh_from_db()
    assert gone.status == "canceled"


def test_subscription_actions_need_the_permission(plugipay_sandbox, client):
    _, subscription, _ = subscriber(member_price())
    client.force_login(staff())
    listing = client.get("/admin/django_plugipay/subscription/").content.decode()
    assert "cancel_now" not in listing and "pause_subscriptions" not in listing
    post_action(client, "subscription", "cancel_now", [subscription], post="yes")
    subscription.refresh_from_db()
    assert subscription.status == "trialing"
    invoices = client.get("/admin/django_plugipay/invoice/").content.decode()
    assert "void_invoices" not in invoices and "email_invoices" not in invoices


def test_invoice_list_page_void_and_email(plugipay_sandbox, client):
    _, subscription, pay_url = subscriber(member_price(), trial_days=0)
    assert pay_url
    invoice = Invoice.objects.get(subscription=subscription)
    client.force_login(staff("manage_invoice", "manage_subscription"))
    listing = client.get("/admin/django_plugipay/invoice/").content.decode()
    assert "IDR 99,000" in listing
    assert reverse("plugipay:invoice_document", args=[invoice.plugipay_id]) in listing
    page = client.get(reverse("admin:django_plugipay_invoice_change", args=[invoice.pk]))
    assert page.status_code == 200 and invoice.plugipay_id in page.content.decode()
    sub_page = client.get(
        reverse("admin:django_plugipay_subscription_change", args=[subscription.pk])
    )
    assert (invoice.number or invoice.plugipay_id) in sub_page.content.decode()
    emailed = post_action(client, "invoice", "email_invoices", [invoice], post="yes")
    assert "1 invoice emailed." in emailed.content.decode()
    confirm = post_action(client, "invoice", "void_invoices", [invoice])
    assert "Void these invoices?" in confirm.content.decode()
    voided = post_action(client, "invoice", "void_invoices", [invoice], post="yes")
    assert "1 invoice voided." in voided.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == "void"
    again = post_action(client, "invoice", "void_invoices", [invoice])
    assert "Nothing selected qualifies." in again.content.decode()


def test_an_invoice_payment_is_refunded_from_the_payment_page(plugipay_sandbox, client):
    _, subscription, _ = subscriber(member_price(), trial_days=0)
    invoice = Invoice.objects.get(subscription=subscription)
    plugipay_sandbox.control(
        "POST", f"invoices/{invoice.plugipay_id}/pay", {"card": "4242424242424242"}
    )
    plugipay_sandbox.flush()
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    payment = invoice.payments.get()
    client.force_login(staff("view_payment", "refund_payment"))
    url = reverse("admin:django_plugipay_payment_refund", args=[payment.pk])
    assert "IDR 99,000" in client.get(url).content.decode()
    client.post(url, {"post": "yes", "amount": "9,000", "reason": "requested_by_customer"})
    plugipay_sandbox.flush()
    refund = payment.refunds.get()
    assert refund.amount == 9_000 and refund.status == "succeeded"


# ── DRF ───────────────────────────────────────────────────────────────────────


def allow_member(request, price):
    """The test project's subscribe hook: only the Member plan, tagged with the user."""
    if price.plan.name != "Member":
        return None
    return {"trial_days": 0, "metadata": {"user": str(request.user.pk)}}


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_subscribing_is_404_until_enabled():
    response = api(UserFactory()).post(f"{API}/subscriptions/", {"price": "price_x"})
    assert response.status_code == 404


def test_a_first_subscription_with_plugipay_down_is_a_502(plugipay_sandbox, settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_SUBSCRIBE_PARAMS": "tests.test_billing_surface.allow_member",
        "MAX_RETRIES": 0,
    }
    price = member_price()
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/customers")
    client = api(UserFactory())
    client.raise_request_exception = False
    body = {"price": price.plugipay_id}
    assert client.post(f"{API}/subscriptions/", body, format="json").status_code == 502
    assert client.post(f"{API}/subscriptions/", body, format="json").status_code == 201


def test_subscribe_pay_and_read_through_the_api(plugipay_sandbox, settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_SUBSCRIBE_PARAMS": "tests.test_billing_surface.allow_member",
    }
    price = member_price()
    other = member_price(name="Secret")
    buyer = UserFactory()
    client = api(buyer)
    refused = client.post(f"{API}/subscriptions/", {"price": other.plugipay_id}, format="json")
    assert refused.status_code == 403
    unknown = client.post(f"{API}/subscriptions/", {"price": "price_nope"}, format="json")
    assert unknown.status_code == 403
    created = client.post(f"{API}/subscriptions/", {"price": price.plugipay_id}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["pay_url"].startswith(plugipay_sandbox.base_url)
    assert body["subscription"]["plan_name"] == "Member"
    subscription = Subscription.objects.get(plugipay_id=body["subscription"]["id"])
    assert subscription.customer.user == buyer and subscription.metadata["user"] == str(buyer.pk)
    again = client.post(f"{API}/subscriptions/", {"price": price.plugipay_id}, format="json")
    assert again.status_code == 200  # the live subscription again, not a second one
    assert again.json() == body

    listed = client.get(f"{API}/subscriptions/").json()
    assert [s["id"] for s in listed] == [subscription.plugipay_id]
    invoices = client.get(f"{API}/invoices/").json()["results"]
    assert invoices[0]["total_display"] == "IDR 99,000"
    assert invoices[0]["subscription"] == subscription.plugipay_id
    assert api(UserFactory()).get(f"{API}/subscriptions/").json() == []
    assert api(UserFactory()).get(f"{API}/invoices/").json()["results"] == []


@pytest.mark.parametrize("read", ["detail", "list"])
def test_a_subscription_paid_before_its_webhook_reads_active_through_the_api(
    plugipay_sandbox, settings, read
):
    """drf-api.md: on the buyer's return, ``GET subscriptions/<id>/`` (and the list) already
    shows the subscription active, the webhook held back: a subscription that may have moved
    at Plugipay is synced on read, as ``billing.subscribed()`` does."""
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_SUBSCRIBE_PARAMS": "tests.test_billing_surface.allow_member",
    }
    price = member_price()
    client = api(UserFactory())
    body = client.post(f"{API}/subscriptions/", {"price": price.plugipay_id}, format="json")
    subscription = body.json()["subscription"]
    assert subscription["status"] == "incomplete"
    plugipay_sandbox.hold()
    invoice = Invoice.objects.get(subscription__plugipay_id=subscription["id"])
    plugipay_sandbox.pay_invoice(invoice.plugipay_id, deliver=False)
    if read == "detail":
        shown = client.get(f"{API}/subscriptions/{subscription['id']}/").json()
    else:
        shown = client.get(f"{API}/subscriptions/").json()[0]
    assert shown["status"] == "active"


def test_cancel_at_period_end_through_the_api(plugipay_sandbox):
    buyer, subscription, _ = subscriber(member_price())
    stranger = api(UserFactory()).post(f"{API}/subscriptions/{subscription.plugipay_id}/cancel/")
    assert stranger.status_code == 404
    response = api(buyer).post(f"{API}/subscriptions/{subscription.plugipay_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["cancel_at"] is not None
    subscription.refresh_from_db()
    assert subscription.cancel_at is not None and subscription.status == "trialing"
    # a second click, or a retry: the same answer, nothing sent again
    again = api(buyer).post(f"{API}/subscriptions/{subscription.plugipay_id}/cancel/")
    assert again.status_code == 200 and again.json() == response.json()


@pytest.mark.parametrize(
    ("return_url", "expected"),
    [
        ("http://testserver/account/", "http://testserver/account/"),
        ("/account/", "http://testserver/account/"),
        ("https://evil.example/steal", "http://testserver/billing/"),
        (None, "http://testserver/billing/"),
    ],
)
def test_portal_session_endpoint(plugipay_sandbox, settings, return_url, expected):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "PORTAL_RETURN_URL": "/billing/"}
    buyer, _, _ = subscriber(member_price())
    body = {"return_url": return_url} if return_url else {}
    response = api(buyer).post(f"{API}/portal-sessions/", body, format="json")
    assert response.status_code == 201
    url = response.json()["url"]
    assert url.startswith(plugipay_sandbox.base_url + "/portal/")
    (portal,) = plugipay_sandbox.state()["portal_sessions"]
    assert portal["url"] == url and portal["returnUrl"] == expected


@pytest.mark.django_db
def test_no_portal_without_a_billing_account():
    response = api(UserFactory()).post(f"{API}/portal-sessions/", {}, format="json")
    assert response.status_code == 404


def test_subscription_admin_in_indonesian(plugipay_sandbox, client):
    from django.utils import translation

    from tests.test_translations import english_left

    _, subscription, _ = subscriber(member_price())
    client.force_login(staff("manage_subscription"))
    with translation.override("id"):
        confirm = client.post(
            "/admin/django_plugipay/subscription/",
            {"action": "cancel_at_period_end", "_selected_action": [subscription.pk]},
        ).content.decode()
        done = post_action(
            client, "subscription", "cancel_at_period_end", [subscription], post="yes"
        ).content.decode()
        listing = client.get("/admin/django_plugipay/subscription/").content.decode()
    assert "Pelanggan tetap memiliki akses sampai saat itu" in confirm
    assert "1 langganan akan dibatalkan di akhir periode." in done
    assert "masa uji coba, akan dibatalkan" in listing
    for page in (confirm, done, listing):
        assert english_left(page) == []


def team_subscribes(request, price):
    """The test project's team hook: the user's team subscribes (its customer)."""
    return {"trial_days": 0, "customer": request.user.teams.get().plugipay_customer}


def team_owners(request):
    """``API_BILLING_OWNERS``: the user's teams."""
    return request.user.teams.all()


def test_a_team_subscription_made_through_the_api_is_read_and_canceled_by_its_members(
    plugipay_sandbox, settings
):
    """drf-api.md: with the subscribe hook naming the team's customer, the subscription is the
    team's; ``API_BILLING_OWNERS`` naming the user's teams lets every member read it, its
    invoices, and cancel it through the API. Anyone else gets 404, and without the hook the
    team's rows are the team's alone (not the member's)."""
    from tests.teams.models import Team

    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_SUBSCRIBE_PARAMS": "tests.test_billing_surface.team_subscribes",
        "API_BILLING_OWNERS": "tests.test_billing_surface.team_owners",
    }
    price = member_price()
    team = Team.objects.create(
        name="Dapur",
        plugipay_customer=services.create_customer(email="dapur@shop.test", name="Dapur"),
    )
    alice, bob, stranger = UserFactory(), UserFactory(), UserFactory()
    team.members.add(alice, bob)
    Team.objects.create(name="Other").members.add(stranger)
    made = api(alice).post(f"{API}/subscriptions/", {"price": price.plugipay_id}, format="json")
    assert made.status_code == 201, made.content
    sub_id = made.json()["subscription"]["id"]
    assert api(bob).get(f"{API}/subscriptions/{sub_id}/").status_code == 200
    assert [s["id"] for s in api(bob).get(f"{API}/subscriptions/").json()] == [sub_id]
    assert api(bob).get(f"{API}/invoices/").json()["results"][0]["subscription"] == sub_id
    assert api(stranger).get(f"{API}/subscriptions/{sub_id}/").status_code == 404
    assert api(stranger).post(f"{API}/subscriptions/{sub_id}/cancel/").status_code == 404
    canceled = api(bob).post(f"{API}/subscriptions/{sub_id}/cancel/")
    assert canceled.status_code == 200 and canceled.json()["cancel_at"] is not None
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_BILLING_OWNERS": None}
    assert api(bob).get(f"{API}/subscriptions/{sub_id}/").status_code == 404


def owners_fail(request):
    raise RuntimeError("the teams service is away")


@pytest.mark.django_db
def test_a_project_hook_that_raises_is_a_json_500(settings, caplog):
    """drf-api.md: every answer is JSON, errors too. A project hook that raises (here
    ``API_BILLING_OWNERS``) is the API's 500 as JSON, in the request's language, logged on
    ``django.request`` as Django logs its own 500s; under ``DEBUG`` it is Django's page."""
    from django.utils import translation

    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_BILLING_OWNERS": "tests.test_billing_surface.owners_fail",
    }
    client = api(UserFactory())
    client.raise_request_exception = False
    with translation.override("id"):
        response = client.get(f"{API}/subscriptions/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert "kesalahan" in response.json()["detail"].lower()
    assert any("the teams service is away" in str(r.exc_info) for r in caplog.records)
    settings.DEBUG = True
    assert "text/html" in client.get(f"{API}/subscriptions/")["Content-Type"]
