"""Count every transition signal once it commits, to check exactly-once after a run."""

from benchmarks.baseline.models import SignalRecord
from django_plugipay import signals

NAMES = ("checkout_session_completed", "payment_succeeded", "refund_succeeded")


def _record(name):
    def receiver(sender, instance, event, **kwargs):
        SignalRecord.objects.create(signal=name, object_id=instance.plugipay_id)

    return receiver


for _name in NAMES:
    getattr(signals, _name).connect(_record(_name), weak=False, dispatch_uid=f"bench_{_name}")
