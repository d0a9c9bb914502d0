"""Links from outside data are safe: URLs from Plugipay or a buyer (proof of transfer, hosted
pages, e-wallet approval, QR images) are linked only when http/https, else shown as text — on
every admin page and example-shop page that shows them."""

import html
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.template import Context, Engine
from django.test import RequestFactory, override_settings
from django.urls import include, path, reverse

from django_plugipay.links import link, safe_url
from django_plugipay.models import PaymentInstructions
from tests.factories import (
    CheckoutSessionFactory,
    InvoiceFactory,
    PaymentFactory,
    SubscriptionFactory,
    UserFactory,
)

HOSTILE = [
    "javascript:alert(1)//",
    "JaVaScRiPt:alert(document.domain)//",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)",
    "  VBScript:msgbox(1)",
    "//evil.example/x",
    "https:alert(1)",
]
UNSAFE_SCHEME = re.compile(r"^(javascript|data|vbscript):")


def unsafe_attributes(page: str) -> list[str]:
    """Every href/src/action value a browser would run as script or data."""
    found = []
    for value in re.findall(r"""(?:href|src|action)\s*=\s*(?:"([^"]*)"|'([^']*)')""", page):
        url = html.unescape(value[0] or value[1])
        normal = "".join(c for c in url if ord(c) > 32 and c != "\x7f").lower()
        if UNSAFE_SCHEME.match(normal) or url.startswith("//evil") or "alert" in normal:
            found.append(url)
    return found


@pytest.mark.parametrize("url", HOSTILE)
def test_only_http_and_https_are_links(url):
    assert safe_url(url) is None
    rendered = str(link(url, "proof"))
    assert "<a" not in rendered and html.escape(url) in rendered


@pytest.mark.parametrize("url", ["https://proof.test/p.png", "http://127.0.0.1:8787/c/cs_1"])
def test_web_urls_stay_links(url):
    assert safe_url(url) == url
    assert str(link(url, "proof", new_tab=True)).startswith(f'<a href="{url}" target="_blank"')


# ── the admin ────────────────────────────────────────────────────────────────


@pytest.mark.django_db
@pytest.mark.parametrize("hostile", HOSTILE)
def test_admin_pages_never_link_hostile_urls(client, hostile):
    instructions = {
        "method": "manual",
        "proofUrl": hostile,
        "approvalUrl": hostile,
        "qrImageUrl": hostile,
        "claimedAt": "2026-01-01T00:00:00Z",
    }
    session = CheckoutSessionFactory(
        status="pending_review",
        url=hostile,
        success_url=hostile,
        cancel_url=hostile,
        metadata={"site": hostile},
        data={"id": "cs_x", "instructions": instructions, "metadata": {"site": hostile}},
    )
    payment = PaymentFactory(checkout_session=session)
    invoice = InvoiceFactory(hosted_url=hostile, metadata={"site": hostile})
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    pages = {
        "session": reverse("admin:django_plugipay_checkoutsession_change", args=[session.pk]),
        "confirm": reverse("admin:django_plugipay_checkoutsession_confirm", args=[session.pk]),
        "payment": reverse("admin:django_plugipay_payment_change", args=[payment.pk]),
        "invoice": reverse("admin:django_plugipay_invoice_change", args=[invoice.pk]),
        "sessions": reverse("admin:django_plugipay_checkoutsession_changelist"),
        "invoices": reverse("admin:django_plugipay_invoice_changelist"),
    }
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        page = response.content.decode()
        assert unsafe_attributes(page) == [], name
    proof = client.get(pages["confirm"]).content.decode()
    assert html.escape(hostile) in proof  # shown to staff as text


# ── the example shop's pages ─────────────────────────────────────────────────


def _page(request, *args, **kwargs):  # pragma: no cover - only reversed
    raise AssertionError


shop_patterns = (
    [
        path("", _page, name="home"),
        path("orders/", _page, name="orders"),
        path("orders/<int:pk>/thanks/", _page, name="success"),
        path("membership/", _page, name="membership"),
        path("membership/subscribe/", _page, name="subscribe"),
        path("membership/clock/", _page, name="advance-clock"),
        path("members/", _page, name="members"),
    ],
    "shop",
)
urlpatterns = [
    path("", include(shop_patterns)),
    path("login/", _page, name="login"),
    path("logout/", _page, name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("plugipay/", include("django_plugipay.urls")),
]

SHOP_TEMPLATES = Path(__file__).resolve().parent.parent / "example_project" / "shop" / "templates"
shop_engine = Engine(
    dirs=[str(SHOP_TEMPLATES)],
    libraries={
        "i18n": "django.templatetags.i18n",
        "plugipay_links": "django_plugipay.templatetags.plugipay_links",
    },
)


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_example_pages_never_link_hostile_urls(hostile):
    user = UserFactory()
    request = RequestFactory().get("/")
    request.user = user
    pending = PaymentInstructions.from_data(
        {
            "instructions": {
                "method": "ewallet",
                "channel": "OVO",
                "qrString": "000201",
                "qrImageUrl": hostile,
                "approvalUrl": hostile,
            }
        }
    )
    order = SimpleNamespace(pk=1, status="pending", product="Kopi", quantity=1, amount_display="")
    invoice = InvoiceFactory(status="open", hosted_url=hostile)
    subscription = SubscriptionFactory(status="incomplete")
    past_due = SubscriptionFactory(status="past_due")
    plan = SimpleNamespace(name="Member", description="", trial_days=0)
    contexts = {
        "shop/success.html": {"order": order, "instructions": pending},
        "shop/membership.html": {
            "plan": plan,
            "subscribed": False,
            "subscription": subscription,
            "open_invoice": invoice,
        },
        "shop/members.html": {"subscription": past_due, "open_invoice": invoice},
    }
    for name, values in contexts.items():
        context = Context({"user": user, "request": request, **values})
        page = shop_engine.get_template(name).render(context)
        assert unsafe_attributes(page) == [], name
    success = shop_engine.get_template("shop/success.html").render(
        Context({"user": user, "request": request, **contexts["shop/success.html"]})
    )
    assert "Approve the payment in your e-wallet" in success  # shown, as text
