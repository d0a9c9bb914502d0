"""Webhook delivery: signs events, posts them from background threads, retries, auto-disables."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from plugipay_sandbox import signing
from plugipay_sandbox.state import Store, iso, shuffled
from plugipay_sandbox.state import webhooks as endpoints
from plugipay_sandbox.state.webhooks import AUTO_DISABLE_AFTER, auto_disable_window

logger = logging.getLogger(__name__)

USER_AGENT = "plugipay-sandbox/0.1 (not Plugipay)"
SEND_TIMEOUT = 10.0
RESPONSE_SNIPPET = 500  # bytes of a receiver's answer kept per attempt


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Plugipay does not follow a receiver's redirect: a 3xx is a failed delivery."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx answer


_OPENER = urllib.request.build_opener(_NoRedirects)
REDIRECT_HINT = " — is the webhook URL behind a login?"


def redirect_error(code: int, location: str) -> str:
    """What a delivery answered with a redirect records (the usual cause: login middleware)."""
    return f"answered {code} to {location or '(no Location)'}{REDIRECT_HINT}"


class Deliverer:
    """Sends due deliveries, one endpoint at a time in event order, on a small thread pool."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._endpoint_locks: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sandbox-delivery")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self.store.lock:
            self.store.changed.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _lock_for(self, endpoint_id: str) -> threading.Lock:
        with self.store.lock:
            return self._endpoint_locks.setdefault(endpoint_id, threading.Lock())

    def _due(self, endpoint_id: str | None = None) -> list[dict[str, Any]]:
        with self.store.lock:
            now = self.store.now()
            due = [
                d
                for d in self.store.deliveries.values()
                if d["status"] == "pending"
                and d["_due"] <= now
                and (endpoint_id is None or d["endpointId"] == endpoint_id)
                and self.store.endpoints.get(d["endpointId"], {}).get("active")
            ]
            return sorted(due, key=lambda d: d["_seq"])

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.store.tick()
            if not self.store.held:
                for endpoint_id in {d["endpointId"] for d in self._due()}:
                    lock = self._lock_for(endpoint_id)
                    if not lock.locked():
                        self._pool.submit(self._drain, endpoint_id, False)
            with self.store.lock:
                self.store.changed.wait(timeout=0.05)

    def _drain(self, endpoint_id: str, wait: bool) -> int:
        lock = self._lock_for(endpoint_id)
        if not lock.acquire(blocking=wait):
            return 0
        sent = 0
        try:
            while (not self.store.held or wait) and not self._stopping.is_set():
                due = self._due(endpoint_id)
                if not due:
                    break
                for delivery in due:
                    self.send(delivery["id"])
                    sent += 1
        finally:
            lock.release()
        return sent

    def flush(self) -> int:
        """Deliver everything due now (unless held) and wait for attempts in flight."""
        total = 0
        while True:
            if not self.store.held:
                for endpoint_id in sorted({d["endpointId"] for d in self._due()}):
                    total += self._drain(endpoint_id, True)
            for lock in list(self._endpoint_locks.values()):
                with lock:  # an attempt a background thread still has in flight
                    pass
            if self.store.held or not self._due():
                return total

    def release(self, order: str = "fifo", duplicate: int = 1) -> int:
        """Send every held delivery, reordered and each ``duplicate`` times, then stop holding."""
        with self.store.lock:
            held = [d["id"] for d in self._due()]
        for delivery_id in shuffled(held, order):
            for _ in range(max(1, duplicate)):
                self.send(delivery_id, force=True)
        with self.store.lock:
            self.store.held = False
            self.store.changed.notify_all()
        return len(held)

    def send(self, delivery_id: str, *, force: bool = False) -> dict[str, Any]:
        """Make one attempt at a delivery and record it in its attempt log."""
        store = self.store
        with store.lock:
            delivery = store.deliveries[delivery_id]
            endpoint = store.endpoints.get(delivery["endpointId"])
            if endpoint is None or (delivery["status"] != "pending" and not force):
                return delivery
            url, body = endpoint["url"], delivery["body"].encode()
            secret = endpoints.signing_secrets(store, endpoint)
        # Wall-clock time, as a receiver checks it: an advanced sandbox clock (renewals a month
        # ahead) must not make every signature stale.
        timestamp = int(time.time())
        header = signing.webhook_signature_header(secret, timestamp, body)
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Plugipay-Signature": header,
                "Plugipay-Signature": header,
                "X-Plugipay-Event-Id": delivery["eventId"],
                "X-Plugipay-Delivery-Id": delivery_id,
            },
        )
        started = time.monotonic()
        code, error, snippet, location = None, None, None, None
        try:
            with _OPENER.open(request, timeout=SEND_TIMEOUT) as response:
                code = response.status
                snippet = _snippet(response)
        except urllib.error.HTTPError as exc:
            code, error, snippet = exc.code, f"HTTP {exc.code}", _snippet(exc)
            if 300 <= exc.code < 400:
                location = exc.headers.get("Location") or ""
                error = redirect_error(exc.code, location)
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = int((time.monotonic() - started) * 1000)
        with store.lock:
            self._record(delivery, endpoint, code, error, duration_ms, snippet)
            if location is not None:
                delivery["attemptLog"][-1]["redirectTo"] = location
            return delivery

    def _record(
        self,
        delivery: dict,
        endpoint: dict,
        code: int | None,
        error: str | None,
        duration_ms: int,
        snippet: str | None = None,
    ) -> None:
        store = self.store
        now = store.now()
        ok = code is not None and 200 <= code < 300
        delivery["attempts"] += 1
        delivery["lastAttemptAt"] = iso(now)
        delivery["responseCode"] = code
        delivery["lastError"] = None if ok else error
        delivery["attemptLog"].append(
            {
                "attempt": delivery["attempts"],
                "at": iso(now),
                "responseCode": code,
                "error": error,
                "durationMs": duration_ms,
                "responseBody": snippet,
            }
        )
        endpoint["lastDelivery"] = {
            "eventId": delivery["eventId"],
            "deliveredAt": iso(now),
            "statusCode": code,
            "durationMs": duration_ms,
        }
        event = store.events.get(delivery["eventId"])
        if ok:
            delivery.update(status="succeeded", deliveredAt=iso(now), nextRetryAt=None)
            endpoint.update(consecutiveFailures=0, failingSince=None, _failingSinceAt=None)
            if event is not None and event["publishedAt"] is None:
                event["publishedAt"] = iso(now)
            return
        endpoint["consecutiveFailures"] += 1
        endpoint["failingSince"] = endpoint["failingSince"] or iso(now)
        if endpoint.get("_failingSinceAt") is None:
            endpoint["_failingSinceAt"] = now
        schedule = store.config.retry_schedule
        if delivery["attempts"] <= len(schedule):
            delivery["_due"] = now + schedule[delivery["attempts"] - 1]
            delivery["nextRetryAt"] = iso(delivery["_due"])
            delivery["status"] = "pending"
        else:
            delivery.update(status="failed", nextRetryAt=None)
        _log_failure(delivery, endpoint, code, error, now)
        # Plugipay's rule: 20 failures in a row AND a streak spanning 24 h of the schedule, so a
        # receiver down for a moment (a database restart) is retried, not cut off.
        spanned = now - endpoint["_failingSinceAt"] >= auto_disable_window(schedule)
        if endpoint["consecutiveFailures"] >= AUTO_DISABLE_AFTER and spanned and endpoint["active"]:
            endpoints.disable_endpoint(
                store, endpoint, f"{AUTO_DISABLE_AFTER} consecutive failed deliveries", "errored"
            )
            # Recorded in the events API (and sent to the workspace's other endpoints).
            store.emit("webhook_endpoint.disabled", endpoint, mode=endpoint["mode"])


def _snippet(response: Any) -> str | None:
    """The start of a receiver's answer (what a dashboard shows next to the status)."""
    try:
        return response.read(RESPONSE_SNIPPET).decode("utf-8", "replace")
    except OSError:
        return None


def _log_failure(
    delivery: dict, endpoint: dict, code: int | None, error: str | None, now: float
) -> None:
    """One console line per failed attempt: where, why, which attempt, what happens next."""
    outcome = f"HTTP {code}" if code is not None else (error or "no answer")
    if delivery["status"] == "pending":
        then = f"next retry in {delivery['_due'] - now:.0f}s at {delivery['nextRetryAt']}"
    else:
        then = "no retries left (retry it from /dashboard/ or the deliveries API)"
    hint = ""
    if code in (400, 401):
        hint = " — the receiver rejected the signature: is its webhook secret this endpoint's?"
    elif code == 404:
        hint = " — is the webhook URL included in the receiver's URLconf?"
    elif code is None:
        hint = " — is the receiver running at that address?"
    elif 300 <= code < 400 and error and error.endswith(REDIRECT_HINT):
        outcome, hint = error.removesuffix(REDIRECT_HINT), REDIRECT_HINT
    logger.warning(
        "delivery %s of %s (%s) to %s failed: %s, attempt %d; %s%s",
        delivery["id"],
        delivery["eventId"],
        delivery["type"],
        endpoint["url"],
        outcome,
        delivery["attempts"],
        then,
        hint,
        extra={"delivery_id": delivery["id"], "url": endpoint["url"], "status_code": code},
    )
