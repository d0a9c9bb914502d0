"""The shop's pages: catalogue, buy, the success page, and "My orders"."""

import contextlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from django_plugipay import accounts, services
from django_plugipay.exceptions import PlugipayError
from shop import accounts as shops
from shop.models import Order, Product


def home(request):
    context = {
        "products": Product.objects.order_by("price"),
        "second_account": shops.served(),
        "selling_for": shops.api_account(request),
    }
    return render(request, "shop/home.html", context)


@require_POST
def pick_account(request):
    """Shop as the default account or the second one (the demo with PLUGIPAY_SECOND_ACCOUNT)."""
    if request.POST.get("account") == shops.SECOND and shops.served():
        request.session[shops.SESSION_KEY] = shops.SECOND
    else:
        request.session.pop(shops.SESSION_KEY, None)
    return redirect("shop:home")


@login_required
@require_POST
def buy(request, slug):
    product = get_object_or_404(Product, slug=slug)
    order = Order.objects.create(
        user=request.user, product=product, amount=product.price, currency=product.currency
    )
    try:
        with accounts.acting_for(shops.api_account(request)):  # the shop the buyer picked
            session = _checkout(request, order, product)
    except PlugipayError as exc:
        order.delete()
        messages.error(
            request, _("Checkout is unavailable right now (%(error)s).") % {"error": exc.message}
        )
        return redirect("shop:home")
    order.checkout_session = session
    order.save(update_fields=["checkout_session"])
    return redirect(session.url)


def _checkout(request, order, product):
    return services.create_checkout_session(
        amount=order.amount,
        currency=order.currency,
        description=product.name,
        customer=services.get_or_create_customer_for_user(user=request.user),
        success_url=request.build_absolute_uri(reverse("shop:success", args=[order.pk])),
        cancel_url=request.build_absolute_uri(reverse("shop:home")),
        metadata={"order": str(order.pk)},
    )


@login_required
def success(request, pk):
    """The buyer is back, often before the webhook: ask Plugipay now (same apply path)."""
    order = get_object_or_404(
        Order.objects.select_related("checkout_session"), pk=pk, user=request.user
    )
    if order.checkout_session is not None and order.checkout_session.is_open:
        # If Plugipay cannot be reached the webhook will tell us; the page says "processing".
        with contextlib.suppress(PlugipayError):
            services.sync_checkout_session(session=order.checkout_session)
    # Read the order again in any case: the webhook may have paid it since it was loaded.
    order.refresh_from_db()
    session = order.checkout_session
    waiting = order.status == Order.Status.PENDING and session is not None and session.is_pending
    context = {"order": order, "instructions": session.instructions if waiting else None}
    return render(request, "shop/success.html", context)


@login_required
def orders(request):
    rows = (
        Order.objects.filter(user=request.user)
        .select_related("product", "checkout_session")
        .prefetch_related("checkout_session__payments__refunds")
    )
    return render(request, "shop/orders.html", {"orders": rows})
