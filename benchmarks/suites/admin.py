"""The payment changelist: queries and render time at 1,000 rows and at ``rows``."""

from __future__ import annotations

import statistics
import time

from benchmarks.harness import truncate


def run(rows: int, repeats: int = 7) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_plugipay.models import Payment

    truncate()
    user_model = get_user_model()
    user_model.objects.filter(username="bench").delete()
    user = user_model.objects.create_superuser("bench", "b@example.com", "bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def measure(label: str) -> dict:
        timings, queries = [], 0
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get("/admin/django_plugipay/payment/")
                timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.status_code
            queries = len(captured)
        return {
            "rows": Payment.objects.count(),
            "queries": queries,
            "median_ms": round(statistics.median(timings), 1),
            "label": label,
        }

    def fill(up_to: int) -> None:
        have = Payment.objects.count()
        batch = [
            Payment(
                plugipay_id=f"pay_admin{n:08d}",
                amount=10_000 + n % 500,
                currency="IDR",
                status="succeeded",
                method="card",
            )
            for n in range(have, up_to)
        ]
        Payment.objects.bulk_create(batch, batch_size=5000)

    fill(1000)
    small = measure("1,000 payments")
    fill(rows)
    large = measure(f"{rows:,} payments")
    truncate()
    user.delete()
    return {
        "small": small,
        "large": large,
        "queries_constant": small["queries"] == large["queries"],
    }
