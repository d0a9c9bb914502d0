"""The example project with PLUGIPAY_SECOND_ACCOUNT: its settings pass ``check``, and a buyer
who picks the second shop pays into the second account (what ``make demo`` serves)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    find_spec("rest_framework") is None, reason="the example project uses the drf extra"
)

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"
SECOND = "acc_demo_second"

BUY = """
from django.contrib.auth import get_user_model
from django.test import Client
from shop.accounts import set_up_second_account
from shop.models import Product
set_up_second_account("http://127.0.0.1:9")  # nothing listens: deliveries wait, sync tells
user = get_user_model().objects.create_user("buyer", "buyer@example.com", "buyer")
client = Client(HTTP_HOST="127.0.0.1")
client.force_login(user)
client.post("/shop-for/", {"account": "second"})
product = Product.objects.order_by("price").first()
response = client.post(f"/buy/{product.slug}/")
assert response.status_code == 302, response.status_code
from django_plugipay.models import CheckoutSession
session = CheckoutSession.objects.get()
print(session.plugipay_id, session.account.alias, session.customer.account.alias)
"""

SYNC = """
from django_plugipay import services
from django_plugipay.models import CheckoutSession, Payment
session = services.sync_checkout_session(session=CheckoutSession.objects.get())
payment = Payment.objects.get()
print(session.status, payment.account.alias, payment.account.plugipay_id)
"""


def example(env, *args):
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_example_serves_a_second_account(plugipay_sandbox, tmp_path):
    env = {
        # The example's own SQLite file: not the suite's DATABASE_URL (PostgreSQL in CI).
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PLUGIPAY_", "DJANGO_")) and k != "DATABASE_URL"
        },
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEMO_DB": str(tmp_path / "demo.sqlite3"),
        "CELERY_BROKER_URL": "",
        "PLUGIPAY_BASE_URL": plugipay_sandbox.base_url,
        "PLUGIPAY_KEY_ID": plugipay_sandbox.key_id,
        "PLUGIPAY_SECRET": plugipay_sandbox.secret,
        "PLUGIPAY_WEBHOOK_SECRET": plugipay_sandbox.webhook_secret,
        "PLUGIPAY_SECOND_ACCOUNT": SECOND,
    }
    example(env, "check", "--fail-level", "ERROR")  # exits non-zero on an error
    example(env, "migrate", "--noinput", "-v", "0", "--skip-checks")
    example(env, "loaddata", "products", "-v", "0", "--skip-checks")
    session_id, session_account, customer_account = (
        example(env, "shell", "-v", "0", "-c", BUY).strip().splitlines()[-1].split()
    )
    assert (session_account, customer_account) == ("second", "second")
    remote = next(s for s in plugipay_sandbox.state()["sessions"] if s["id"] == session_id)
    assert remote["accountId"] == SECOND
    plugipay_sandbox.pay(session_id, deliver=False)
    status, payment_account, plugipay_id = (
        example(env, "shell", "-v", "0", "-c", SYNC).strip().splitlines()[-1].split()
    )
    assert (status, payment_account, plugipay_id) == ("completed", "second", SECOND)
