"""The "Member" plan: subscribe, the members-only page, billing banners and the demo clock."""

import json
import urllib.request

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from django_plugipay import billing, services
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Plan
from django_plugipay.money import format_amount

PLAN_NAME = "Member"
MONTH = 31 * 24 * 3600


def member_plan():
    return Plan.objects.filter(name=PLAN_NAME, active=True).prefetch_related("prices").first()


def membership_context(user):
    plan = member_plan()
    price = next((p for p in plan.prices.all() if p.active), None) if plan else None
    subscription = billing.subscription(user, plan=plan) if plan else None
    open_invoice = next(
        (i for i in billing.invoices(user) if i.status in ("open", "past_due")), None
    )
    return {
        "plan": plan,
        "price": price,
        "price_display": format_amount(price.unit_amount, price.currency) if price else "",
        "subscription": subscription,
        "subscribed": bool(plan) and billing.subscribed(user, plan=plan),
        "on_trial": bool(plan) and billing.on_trial(user, plan=plan),
        "on_grace_period": bool(plan) and billing.on_grace_period(user, plan=plan),
        "open_invoice": open_invoice,
        "sandbox": _sandbox_url(),
    }


@login_required
def membership(request):
    return render(request, "shop/membership.html", membership_context(request.user))


@login_required
@require_POST
def subscribe(request):
    """Start the Member plan: with its trial, or (``pay_now``) billed at once on the hosted
    invoice page."""
    context = membership_context(request.user)
    if context["price"] is None:
        messages.error(request, "The Member plan is not available; run the demo setup.")
        return redirect("shop:membership")
    if context["subscribed"]:
        return redirect("shop:members")
    try:
        result = services.subscribe(
            customer=services.get_or_create_customer_for_user(user=request.user),
            price=context["price"],
            trial_days=0 if request.POST.get("pay_now") else None,
            metadata={"user": str(request.user.pk)},
            return_url=request.build_absolute_uri(reverse("shop:members")),
        )
    except PlugipayError as exc:
        messages.error(request, f"Subscribing is unavailable right now ({exc.message}).")
        return redirect("shop:membership")
    if result.invoice_url:
        return redirect(result.invoice_url)
    return redirect("shop:members")


@login_required
def members(request):
    """Members only: ``subscribed()`` answers right after the first invoice is paid, before
    any webhook (it syncs on read)."""
    plan = member_plan()
    if plan is None or not billing.subscribed(request.user, plan=plan):
        messages.info(request, "That page is for members. Join below.")
        return redirect("shop:membership")
    return render(request, "shop/members.html", membership_context(request.user))


def _sandbox_url():
    """The sandbox's address when this shop talks to it (never to a real Plugipay)."""
    base = settings.PLUGIPAY.get("BASE_URL", "")
    return base if base.startswith(("http://127.0.0.1", "http://localhost")) else None


@login_required
@require_POST
def advance_clock(request):
    """Demo only: move the sandbox clock a month so a renewal (or a failed one) happens now."""
    base = _sandbox_url()
    if base is None:
        raise PermissionDenied
    body = json.dumps({"seconds": MONTH}).encode()
    advance = urllib.request.Request(  # noqa: S310 - loopback sandbox only
        base + "/_sandbox/clock/advance", data=body, method="POST"
    )
    advance.add_header("Content-Type", "application/json")
    urllib.request.urlopen(advance, timeout=30).close()  # noqa: S310
    messages.info(request, "The sandbox clock moved a month on.")
    return redirect(request.POST.get("next") or reverse("shop:membership"))
