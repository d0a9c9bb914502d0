"""Accounts: the Account model, and an account on every mirror row, event, cursor and delivery.

Existing rows belong to the default account (alias ``"default"``, the top-level credentials),
created here; sync cursors become unique per account.
"""

import django.db.models.deletion
from django.db import migrations, models

import django_plugipay.models.fields

#: every model that gets an ``account``
MODELS = (
    "checkoutsession",
    "customer",
    "delivery",
    "invoice",
    "payment",
    "plan",
    "price",
    "refund",
    "subscription",
    "synccursor",
    "webhookevent",
)


def account_field(**options):
    return models.ForeignKey(
        help_text="The Plugipay account this belongs to.",
        on_delete=django.db.models.deletion.PROTECT,
        related_name="+",
        to="django_plugipay.account",
        verbose_name="account",
        **options,
    )


def assign_default_account(apps, schema_editor):
    """Create the default account and give it every existing row."""
    alias = schema_editor.connection.alias
    Account = apps.get_model("django_plugipay", "Account")
    default, _created = Account.objects.using(alias).get_or_create(alias="default")
    for name in MODELS:
        model = apps.get_model("django_plugipay", name)
        model.objects.using(alias).filter(account__isnull=True).update(account=default)


class Migration(migrations.Migration):
    dependencies = [
        ("django_plugipay", "0007_webhookevent_queued_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="Account",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "alias",
                    models.CharField(
                        help_text='Its key in PLUGIPAY["ACCOUNTS"]; "default" for the top-level '
                        "credentials.",
                        max_length=64,
                        unique=True,
                        verbose_name="alias",
                    ),
                ),
                (
                    "plugipay_id",
                    models.CharField(
                        blank=True,
                        help_text="The account's id at Plugipay (acc_…); empty until known.",
                        max_length=64,
                        null=True,
                        unique=True,
                        verbose_name="Plugipay id",
                    ),
                ),
                ("name", models.CharField(blank=True, max_length=255, verbose_name="name")),
                (
                    "mode",
                    models.CharField(
                        choices=[("test", "Test"), ("live", "Live")],
                        default="test",
                        max_length=4,
                        verbose_name="mode",
                    ),
                ),
                (
                    "platform",
                    models.BooleanField(
                        default=False,
                        help_text="Called with a platform key on behalf of this account.",
                        verbose_name="reached on behalf of",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
            ],
            options={
                "verbose_name": "account",
                "verbose_name_plural": "accounts",
                "ordering": ["pk"],
            },
        ),
        *[
            migrations.AddField(model_name=name, name="account", field=account_field(null=True))
            for name in MODELS
        ],
        migrations.RunPython(assign_default_account, migrations.RunPython.noop),
        *[
            migrations.AlterField(
                model_name=name,
                name="account",
                field=django_plugipay.models.fields.AccountField(
                    help_text="The Plugipay account this belongs to.",
                    on_delete=django.db.models.deletion.PROTECT,
                    related_name="+",
                    to="django_plugipay.account",
                    verbose_name="account",
                    blank=True,
                ),
            )
            for name in MODELS
        ],
        migrations.AlterField(
            model_name="synccursor",
            name="name",
            field=models.CharField(max_length=64, verbose_name="name"),
        ),
        migrations.RemoveConstraint(
            model_name="customer", name="plugipay_customer_one_per_user_and_mode"
        ),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                condition=models.Q(("user__isnull", False)),
                fields=("account", "user", "mode"),
                name="plugipay_customer_one_per_user_account_and_mode",
            ),
        ),
        migrations.AddConstraint(
            model_name="synccursor",
            constraint=models.UniqueConstraint(
                fields=("account", "name"), name="plugipay_synccursor_account_name"
            ),
        ),
    ]
