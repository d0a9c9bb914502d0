"""A refund row carries ``submitting_until``: while one process looks for the refund at
Plugipay and sends it, past the time Plugipay keeps its idempotency key, no other process sends
it too. A nullable column: adding it rewrites no row."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_plugipay", "0015_user_links_without_constraint"),
    ]

    operations = [
        migrations.AddField(
            model_name="refund",
            name="submitting_until",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text=(
                    "Set while a process looks for this refund at Plugipay and sends it, past "
                    "the time Plugipay keeps its idempotency key: no other process sends it "
                    "meanwhile."
                ),
                null=True,
                verbose_name="being sent until",
            ),
        ),
    ]
