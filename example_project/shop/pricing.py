"""What the DRF API may sell: PLUGIPAY["API_CHECKOUT_PARAMS"] points here."""

from django.shortcuts import get_object_or_404
from django.urls import reverse

from shop.models import Order, Product


def checkout_params(request, data) -> dict:
    """The frontend names a product (``reference``) and a quantity; the price is ours."""
    product = get_object_or_404(Product, slug=data["reference"])
    order = Order.objects.create(
        user=request.user,
        product=product,
        quantity=data["quantity"],
        amount=product.price * data["quantity"],
        currency=product.currency,
    )
    success = request.build_absolute_uri(reverse("shop:success", args=[order.pk]))
    cancel = request.build_absolute_uri(reverse("shop:home"))
    return {
        "amount": order.amount,
        "currency": order.currency,
        "description": f"{product.name} × {order.quantity}",
        "success_url": success,
        "cancel_url": cancel,
        "metadata": {"order": str(order.pk)},
    }


def subscribe_params(request, price):
    """``API_SUBSCRIBE_PARAMS``: the API may subscribe users to the Member plan only."""
    if price.plan.name != "Member":
        return None
    return {"metadata": {"user": str(request.user.pk)}}
