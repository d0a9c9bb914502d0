"""The load generator: a realistic event mix, paced or saturating senders, and the checks."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.harness import SECRET

#: sessions between a sale and its refund: a refund follows its payment (by minutes in real
#: life), here by about a hundred deliveries, more than the senders have in flight at once
REFUND_LAG = 40


def make_events(count: int, tag: str) -> tuple[list[bytes], int]:
    """A realistic mix: per session completed + payment (in either order), a third refunded
    (created, succeeded) a little later; 10% of deliveries are duplicates. Returns (bodies,
    unique count)."""
    from django_plugipay.testing import build_event

    unique: list[dict] = []
    refunds: list[tuple[int, list[dict]]] = []  # (due after session n, its two events)
    i = 0
    while len(unique) < int(count / 1.1):
        while refunds and refunds[0][0] <= i:
            unique += refunds.pop(0)[1]
        sid, pid, rid = f"cs_{tag}{i:07d}", f"pay_{tag}{i:07d}", f"rfd_{tag}{i:07d}"
        stamp = "2026-01-01T00:00:00Z"
        session = {
            "id": sid,
            "status": "completed",
            "amount": 150_000,
            "currency": "IDR",
            "paymentId": pid,
            "paymentMethod": "card",
            "mode": "test",
            "completedAt": stamp,
            "updatedAt": stamp,
            "metadata": {"n": str(i)},
        }
        payment = {
            "id": pid,
            "status": "succeeded",
            "amount": 150_000,
            "currency": "IDR",
            "checkoutSessionId": sid,
            "method": "card",
            "mode": "test",
        }
        pair = [
            build_event("checkout_session.completed", session),
            build_event("payment.succeeded", payment),
        ]
        if random.random() < 0.5:  # noqa: S311 - out of order
            pair.reverse()
        unique += pair
        if i % 3 == 0:
            refund = {
                "id": rid,
                "chargeId": pid,
                "amount": 50_000,
                "currency": "IDR",
                "mode": "test",
            }
            refunds.append(
                (
                    i + REFUND_LAG,
                    [
                        build_event(
                            "refund.created",
                            {**refund, "status": "pending", "updatedAt": "2026-01-01T00:01:00Z"},
                        ),
                        build_event(
                            "refund.succeeded",
                            {**refund, "status": "succeeded", "updatedAt": "2026-01-01T00:02:00Z"},
                        ),
                    ],
                )
            )
        i += 1
    unique += [event for _due, pair in refunds for event in pair]
    deliveries = list(unique)
    for _ in range(count - len(deliveries)):
        position = random.randrange(len(deliveries))  # noqa: S311
        deliveries.insert(position + 1, deliveries[position])
    return [json.dumps(e, separators=(",", ":")).encode() for e in deliveries], len(unique)


def send(url: str, bodies: list[bytes], concurrency: int, rate: float | None = None):
    """POST each body (freshly signed) with ``concurrency`` senders; optionally paced."""
    import requests

    from django_plugipay.webhooks import sign_payload

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    cursor = iter(enumerate(bodies))
    local = threading.local()
    senders: set[int] = set()
    start = time.perf_counter()

    def worker() -> None:
        local.session = requests.Session()
        with lock:
            senders.add(threading.get_ident())
        while True:
            with lock:
                item = next(cursor, None)
            if item is None:
                return
            index, body = item
            if rate:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            headers = {
                "Content-Type": "application/json",
                "X-Plugipay-Signature": sign_payload(body, SECRET),
            }
            began = time.perf_counter()
            response = local.session.post(url, data=body, headers=headers, timeout=60)
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    total = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {
        "events": len(bodies),
        "seconds": round(total, 2),
        "events_per_s": round(len(bodies) / total, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "statuses": statuses,
        "senders": len(senders),
        "offered_per_s": rate,
    }


def redeliver_failed(url: str, rounds: int = 3) -> int:
    """Send failed events again, as Plugipay retries them (a refund can race its payment)."""
    from django_plugipay.models import WebhookEvent

    sent = 0
    for _ in range(rounds):
        failed = [
            json.dumps(p, separators=(",", ":")).encode()
            for p in WebhookEvent.objects.filter(status="failed").values_list("payload", flat=True)
        ]
        if not failed:
            break
        send(url, failed, 4)
        sent += len(failed)
    return sent


def check_applied(unique: int) -> dict:
    from django.db.models import Count

    from benchmarks.baseline.models import SignalRecord
    from django_plugipay.models import WebhookEvent

    processed = WebhookEvent.objects.filter(status="processed").count()
    repeated = (
        SignalRecord.objects.values("signal", "object_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "unique_events": unique,
        "events_processed": processed,
        "signals": SignalRecord.objects.count(),
        "signals_sent_twice": repeated,
        "every_event_applied": processed == unique,
        "every_signal_once": repeated == 0,
    }
