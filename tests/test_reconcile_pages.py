"""Reconciliation reads Plugipay's event pages ahead: the next page is read in a thread while
the current one is applied, for the account acting, and a page that cannot be read stops the
run where the pages before it left the cursor."""

from __future__ import annotations

import sys
import threading

import pytest

from django_plugipay import context, services
from django_plugipay.client import PlugipayClient, get_client
from django_plugipay.exceptions import TransientError
from django_plugipay.models import Customer, Payment, SyncCursor, WebhookEvent
from tests.conftest import MERCHANT
from tests.factories import paid_sessions

reconcile_module = sys.modules["django_plugipay.services.reconcile"]


class Reads(list):
    """Every read of an event page: (the thread it ran in, the account acting there, the
    account the request was sent on behalf of); ``later`` is set when a page after the first
    is read."""

    def __init__(self) -> None:
        super().__init__()
        self.later = threading.Event()


@pytest.fixture
def event_reads(monkeypatch):
    reads = Reads()
    real = PlugipayClient.request

    def request(self, method, path, **kwargs):
        if path.startswith("/events"):
            acting = context.acting.get()
            thread = threading.current_thread().name
            reads.append((thread, acting and acting.alias, self.on_behalf_of))
            if (kwargs.get("params") or {}).get("cursor"):
                reads.later.set()
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(PlugipayClient, "request", request)
    monkeypatch.setattr(reconcile_module, "PAGE_SIZE", 3)
    return reads


def test_the_next_page_is_read_while_this_one_is_applied(
    plugipay_sandbox, event_reads, monkeypatch
):
    paid_sessions(plugipay_sandbox, 2)
    real = reconcile_module.apply_page
    seen = []

    def apply_page(page, **kwargs):
        if not seen:  # the first page, before it is applied: the next one is read meanwhile
            seen.append(event_reads.later.wait(10))
        return real(page, **kwargs)

    monkeypatch.setattr(reconcile_module, "apply_page", apply_page)
    result = services.reconcile()
    assert seen == [True]
    assert result.events_failed == 0 and Payment.objects.count() == 2
    assert len(event_reads) >= 2
    assert all(thread == "plugipay-reconcile-read" for thread, *_ in event_reads)


def test_pages_are_read_one_after_another_without_read_ahead(
    plugipay_sandbox, event_reads, monkeypatch
):
    monkeypatch.setattr(reconcile_module, "READ_AHEAD", False)
    paid_sessions(plugipay_sandbox, 2)
    result = services.reconcile()
    assert result.events_failed == 0 and Payment.objects.count() == 2
    assert {thread for thread, *_ in event_reads} == {threading.current_thread().name}


def test_a_page_that_cannot_be_read_stops_the_run_after_the_pages_before_it(
    plugipay_sandbox, event_reads, monkeypatch
):
    paid_sessions(plugipay_sandbox, 2)
    listed = [item["id"] for item in get_client().list_events(order="asc", limit=3)]
    failing = PlugipayClient.request

    def request(self, method, path, **kwargs):
        if path.startswith("/events") and (kwargs.get("params") or {}).get("cursor"):
            raise TransientError("Plugipay answered 503")
        return failing(self, method, path, **kwargs)

    monkeypatch.setattr(PlugipayClient, "request", request)
    with pytest.raises(TransientError):
        services.reconcile()
    first_page = listed[:3]
    assert set(WebhookEvent.objects.values_list("event_id", flat=True)) == set(first_page)
    assert SyncCursor.objects.get().last_event_id == first_page[-1]
    monkeypatch.setattr(PlugipayClient, "request", failing)
    again = services.reconcile()
    assert again.events_failed == 0 and Payment.objects.count() == 2
    assert len(listed) > 3


def test_the_pages_read_ahead_are_read_for_the_account_reconciled(two_accounts, event_reads):
    """Sent on the merchant's behalf, and read with the caller's context (the account acting
    is there for whatever the request path or a logging filter reads)."""
    sandbox, _secret = two_accounts
    sandbox.hold()
    for n in range(4):
        services.create_customer(email=f"buyer{n}@merchant.test", account="merchant")
    Customer.objects.all().delete()
    result = services.reconcile(account="merchant")
    assert result.events_failed == 0 and Customer.objects.count() == 4
    assert len(event_reads) >= 2
    assert {(acting, on_behalf_of) for _thread, acting, on_behalf_of in event_reads} == {
        ("merchant", MERCHANT)
    }


def test_a_run_that_fails_leaves_the_read_in_flight_to_a_daemon_thread(
    plugipay_sandbox, event_reads, monkeypatch
):
    """Applying a page fails while the next page is being read: the error is raised at once,
    and the read left running never keeps the process from exiting."""
    paid_sessions(plugipay_sandbox, 2)
    started, release = threading.Event(), threading.Event()
    reading = PlugipayClient.request

    def slow(self, method, path, **kwargs):
        if (kwargs.get("params") or {}).get("cursor"):
            started.set()
            release.wait(10)  # Plugipay slow to answer the next page
        return reading(self, method, path, **kwargs)

    def apply_page(page, **kwargs):
        started.wait(10)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(PlugipayClient, "request", slow)
    monkeypatch.setattr(reconcile_module, "apply_page", apply_page)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            services.reconcile()
        readers = [t for t in threading.enumerate() if t.name == "plugipay-reconcile-read"]
        assert readers and all(t.daemon for t in readers)
    finally:
        release.set()
    for reader in readers:
        reader.join(10)
    cursor = SyncCursor.objects.get()  # nothing applied: not moved, and free for the next run
    assert (cursor.last_event_id, cursor.locked_until) == ("", None)
