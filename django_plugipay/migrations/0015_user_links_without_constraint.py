"""A row's links to the project's users (a customer's user, who requested a refund, who
confirmed a transfer) keep no foreign-key constraint in the database.

An account's rows may be kept in a database of its own (``PLUGIPAY["ACCOUNT_DATABASE"]``),
where the project's users are not: with the constraint, a customer linked to a user, or a refund
requested by staff, could not be saved there. The ORM still sets the link to NULL when the user
is deleted (``on_delete=SET_NULL``) in the database the user is deleted from.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def user(**options):
    return models.ForeignKey(
        blank=True,
        db_constraint=False,
        null=True,
        on_delete=django.db.models.deletion.SET_NULL,
        to=settings.AUTH_USER_MODEL,
        **options,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_plugipay", "0014_refund_key_per_account"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="checkoutsession",
            name="confirmed_by",
            field=user(
                help_text="The member of staff who confirmed a manual transfer.",
                related_name="+",
                verbose_name="confirmed by",
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="user",
            field=user(related_name="plugipay_customers", verbose_name="user"),
        ),
        migrations.AlterField(
            model_name="refund",
            name="requested_by",
            field=user(related_name="+", verbose_name="requested by"),
        ),
    ]
