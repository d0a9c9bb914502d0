import contextlib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from django_plugipay import services
from django_plugipay.exceptions import PlugipayError
from shop.models import Order

# What the shop sells: a slug, a name and a price in the currency's minor unit (IDR has none).
CATALOGUE = {
    "batik": ("Batik shirt", 250_000),
    "kopi": ("Kopi Toraja, 250 g", 95_000),
}


@login_required
def home(request):
    orders = Order.objects.filter(user=request.user).order_by("-pk")
    return render(request, "shop/home.html", {"catalogue": CATALOGUE, "orders": orders})


@login_required
@require_POST
def buy(request, item):
    if item not in CATALOGUE:
        return redirect("shop:home")
    name, amount = CATALOGUE[item]
    order = Order.objects.create(user=request.user, item=name, amount=amount, currency="IDR")
    try:
        session = services.create_checkout_session(
            amount=order.amount,
            currency=order.currency,
            description=order.item,
            customer=services.get_or_create_customer_for_user(user=request.user),
            success_url=request.build_absolute_uri(reverse("shop:thanks", args=[order.pk])),
            cancel_url=request.build_absolute_uri(reverse("shop:home")),
            metadata={"order": str(order.pk)},
        )
    except PlugipayError:
        # Plugipay could not be reached (after the client's retries) or refused the session:
        # nothing was paid, so the order goes, and the buyer is told instead of an error page.
        order.delete()
        messages.error(request, "Payments are not available right now; please try again soon.")
        return redirect("shop:home")
    order.checkout_session = session
    order.save(update_fields=["checkout_session"])
    return redirect(session.url)


@login_required
def thanks(request, order_id):
    order = get_object_or_404(Order, pk=order_id, user=request.user)
    if order.status == Order.Status.PENDING and order.checkout_session is not None:
        # The buyer is often back before Plugipay's webhook. Ask Plugipay now: the answer
        # goes through the same path as the webhook, so the receiver still runs only once.
        # If Plugipay cannot be reached, the webhook will tell us later; the page says so.
        with contextlib.suppress(PlugipayError):
            services.sync_checkout_session(session=order.checkout_session)
        # Read the order again in any case: the sync, or the webhook racing it, may have
        # marked it paid since it was loaded above.
        order.refresh_from_db()
    return render(request, "shop/thanks.html", {"order": order})
