"""The floor of any Django webhook receiver (RawDelivery) and a per-signal ledger."""

from django.db import models


class RawDelivery(models.Model):
    body = models.BinaryField()
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"delivery #{self.pk}"


class SignalRecord(models.Model):
    signal = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.signal} {self.object_id}"
