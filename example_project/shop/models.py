"""The shop's own data: products and orders. Payments live in django_plugipay."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.money import format_amount


class Product(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    emoji = models.CharField(max_length=8, blank=True)
    description = models.TextField(blank=True)
    price = models.BigIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(max_length=3, default="IDR")

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return self.name

    @property
    def price_display(self) -> str:
        return format_amount(self.price, self.currency)


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting payment")
        PAID = "paid", _("Paid")
        PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
        REFUNDED = "refunded", _("Refunded")
        CANCELED = "canceled", _("Canceled")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders"
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField(default=1)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    checkout_session = models.OneToOneField(
        "django_plugipay.CheckoutSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="order",
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    receipts_sent = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")

    def __str__(self) -> str:
        return _("Order #%(number)s") % {"number": self.pk}

    @property
    def amount_display(self) -> str:
        return format_amount(self.amount, self.currency)
