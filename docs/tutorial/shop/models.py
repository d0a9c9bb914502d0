from django.conf import settings
from django.db import models
from django.utils import timezone


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting payment"
        PAID = "paid", "Paid"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    item = models.CharField(max_length=100)
    amount = models.PositiveBigIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(max_length=3, default="IDR")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # The Plugipay checkout session this order is paid through, set by the buy view.
    checkout_session = models.OneToOneField(
        "django_plugipay.CheckoutSession", null=True, blank=True, on_delete=models.SET_NULL
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Order #{self.pk}"

    def mark_paid(self):
        self.status = self.Status.PAID
        self.paid_at = timezone.now()
        self.save(update_fields=["status", "paid_at"])
