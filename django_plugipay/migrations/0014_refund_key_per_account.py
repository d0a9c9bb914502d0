"""A refund's idempotency key is unique per account, not across accounts.

Plugipay scopes idempotency keys to the workspace, as payouts' already are here
(``plugipay_payout_key_per_account``): two merchants of one platform may each refund with
``order-1``. Every key unique before stays unique, so the new constraint cannot fail.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_plugipay", "0013_drop_like_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="refund",
            name="idempotency_key",
            field=models.CharField(
                blank=True,
                help_text="Sent with every attempt to create this refund, so Plugipay makes one.",
                max_length=64,
                null=True,
                verbose_name="idempotency key",
            ),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(
                fields=("account", "idempotency_key"), name="plugipay_refund_key_per_account"
            ),
        ),
    ]
