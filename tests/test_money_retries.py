"""A payout asked for again: the same request after a failure is carried out once, a
different one is refused, and a payout whose answer was lost ends as one row."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Sum
from django.urls import reverse
from django.utils import translation

from django_plugipay import services
from django_plugipay.client import PlugipayClient
from django_plugipay.exceptions import PayoutError, TransientError
from django_plugipay.models import Payout
from django_plugipay.services import payouts
from django_plugipay.testing import wait_for
from tests import test_money_out
from tests.test_money_out import BANK, a_day_later, lose_the_answer, remote_payouts

funded = test_money_out.funded
#: what staff do to a payout left unanswered: cancel it, or Re-sync it (which may send it)
STAFF_ACTS = pytest.mark.parametrize(
    "act",
    [
        lambda row: services.cancel_payout(payout=row),
        lambda row: services.sync_payout(payout=row, send=True),
    ],
    ids=["cancel", "resync"],
)  # the fixture: a funded account, the client's retries off
ONE_OFF = {**BANK, "accountNumber": "7700001234"}


def sent_long_ago(row: Payout) -> Payout:
    """Its last send got no answer over ``STRANDED_AFTER`` ago: it may be looked for."""
    Payout.objects.filter(pk=row.pk).update(submitted_at=row.submitted_at - dt.timedelta(hours=1))
    row.refresh_from_db()
    return row


def test_the_same_key_after_a_5xx_sends_the_payout_once(plugipay_sandbox, funded):
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=20_000, idempotency_key="weekly-9")
    assert remote_payouts(plugipay_sandbox) == []
    again = services.create_payout(amount=20_000, idempotency_key="weekly-9")
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"
    assert again.plugipay_id == made and not again.replayed  # this call carried it out
    assert Payout.objects.get().failure_code == ""  # answered at last: the mark is gone
    third = services.create_payout(amount=20_000, idempotency_key="weekly-9")
    assert third.replayed and third.pk == again.pk
    assert len(remote_payouts(plugipay_sandbox)) == 1 and Payout.objects.count() == 1


def test_the_same_key_while_the_first_send_may_be_under_way_sends_nothing(plugipay_sandbox, funded):
    from django.utils import timezone

    # stored by a request still waiting for Plugipay: no "no answer" mark
    Payout.objects.create(amount=20_000, idempotency_key="k-busy", submitted_at=timezone.now())
    again = services.create_payout(amount=20_000, idempotency_key="k-busy")
    assert again.replayed and again.plugipay_id is None
    assert remote_payouts(plugipay_sandbox) == []


def test_the_same_key_after_a_lost_answer_links_the_payout_plugipay_made(plugipay_sandbox, funded):
    plugipay_sandbox.fault("drop_after_commit", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=30_000, idempotency_key="k-lost")
    again = services.create_payout(amount=30_000, idempotency_key="k-lost")
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"
    assert again.plugipay_id == made
    plugipay_sandbox.flush()  # its webhook, late, changes nothing
    assert list(Payout.objects.values_list("plugipay_id", flat=True)) == [made]


def test_a_one_off_payout_asked_again_after_a_5xx_is_sent_with_its_bank_details(
    plugipay_sandbox, funded
):
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-0")
    again = services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-0")
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"
    assert again.plugipay_id == made and again.one_off
    [remote] = plugipay_sandbox.state()["payouts"]
    assert remote["accountNumber"] == ONE_OFF["accountNumber"]


def test_a_one_off_payout_replayed_after_its_webhook_won_the_race(
    plugipay_sandbox, funded, monkeypatch
):
    link = payouts._link

    def webhook_first(payout, obj):
        plugipay_sandbox.flush()  # payout.created is applied before the create answer
        return link(payout, obj)

    monkeypatch.setattr(payouts, "_link", webhook_first)
    first = services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-1")
    assert Payout.objects.count() == 1 and first.plugipay_id and first.one_off
    again = services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-1")
    assert again.replayed and again.pk == first.pk
    assert Payout.objects.get().one_off


def test_the_same_key_for_another_bank_account_is_a_mismatch_even_with_the_same_last4(
    plugipay_sandbox, funded
):
    plugipay_sandbox.hold()  # no webhook races the create answer
    services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-2")
    other = {
        "bankCode": "BNI",
        "bankName": "Bank Negara Indonesia",
        "accountNumber": "5500001234",
        "accountHolder": "Someone Else",
    }
    with pytest.raises(PayoutError) as refused:
        services.create_payout(amount=10_000, bank_account=other, idempotency_key="k-2")
    assert refused.value.code == "idempotency_mismatch"
    # written otherwise (spaces, case) it is another request, as at Plugipay
    spaced = {**ONE_OFF, "accountHolder": "  toko   CONTOH "}
    with pytest.raises(PayoutError):
        services.create_payout(amount=10_000, bank_account=spaced, idempotency_key="k-2")
    assert services.create_payout(
        amount=10_000, bank_account=ONE_OFF, idempotency_key="k-2"
    ).replayed


@pytest.mark.parametrize(
    "other",
    [
        {**ONE_OFF, "accountHolder": "  toko   CONTOH "},  # refused here, as written otherwise
        {**ONE_OFF, "accountNumber": "9900001234"},  # same last four: refused by Plugipay's 409
    ],
)
def test_another_one_off_request_with_the_key_of_a_lost_answer_leaves_the_row_to_it(
    plugipay_sandbox, funded, other
):
    """Plugipay made the payout; the same key with other bank details is another request,
    refused, and the row stays that payout's, unanswered: the first request made again
    links it."""
    plugipay_sandbox.hold()
    plugipay_sandbox.fault("drop_after_commit", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-ws")
    with pytest.raises(PayoutError) as refused:
        services.create_payout(amount=10_000, bank_account=other, idempotency_key="k-ws")
    assert refused.value.code == "idempotency_mismatch"
    row = Payout.objects.get(idempotency_key="k-ws")
    assert (row.status, row.plugipay_id, row.failure_code) == ("pending", None, payouts.NO_ANSWER)
    again = services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-ws")
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert again.plugipay_id == made and status == "pending"


def test_a_lost_answer_and_its_webhook_become_one_row_when_asked_again(plugipay_sandbox, funded):
    row = lose_the_answer(plugipay_sandbox, 70_000)
    plugipay_sandbox.flush()  # payout.created reaches the app: a row of its own
    assert Payout.objects.count() == 2
    again = services.create_payout(amount=70_000, idempotency_key=row.idempotency_key)
    [(made, status)] = remote_payouts(plugipay_sandbox)
    rows = list(Payout.objects.values_list("plugipay_id", "idempotency_key", "status"))
    assert rows == [(made, row.idempotency_key, "pending")] and again.plugipay_id == made
    assert Payout.objects.locking().aggregate(s=Sum("amount"))["s"] == 70_000


def test_admin_resubmit_after_a_5xx_makes_the_payout_once(
    client, plugipay_sandbox, funded, monkeypatch
):
    from tests.test_money_admin import staff, token_of

    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    bank = services.bank_account()  # the page's reads answered here: the fault is the create's
    monkeypatch.setattr(services, "balance", lambda **kw: funded)
    monkeypatch.setattr(services, "bank_account", lambda **kw: bank)
    confirm = {"stage": "confirm", "amount": "30000", "note": "", "plugipay_token": token}
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    client.post(url, confirm)
    assert remote_payouts(plugipay_sandbox) == []
    page = client.post(url, confirm, follow=True).content.decode()  # submitted again
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"
    assert "created" in page and "already made" not in page
    page = client.post(url, confirm, follow=True).content.decode()  # and once more
    assert "already made from this page" in page
    assert len(remote_payouts(plugipay_sandbox)) == 1
    assert list(Payout.objects.values_list("plugipay_id", flat=True)) == [made]


def test_the_payout_apis_permission_messages_are_translated(plugipay_sandbox):
    pytest.importorskip("rest_framework")
    from tests.factories import UserFactory
    from tests.test_api import API, client_for, staff_with

    with translation.override("id"):
        viewer = client_for(UserFactory(is_staff=True)).get(f"{API}/payouts/balance/")
        manager = client_for(staff_with("view_payout")).post(
            f"{API}/payouts/", {"amount": 1000}, format="json"
        )
    assert viewer.status_code == manager.status_code == 403
    assert viewer.json()["detail"] == "Pencairan hanya untuk staf yang boleh melihatnya."
    assert manager.json()["detail"].startswith("Pencairan dana memerlukan izin ")


def test_the_api_retry_with_the_same_key_after_a_502_is_the_201(plugipay_sandbox, funded):
    pytest.importorskip("rest_framework")
    from tests.test_api import API, client_for, staff_with

    manager = client_for(staff_with("manage_payout"))
    headers = {"HTTP_IDEMPOTENCY_KEY": "weekly-10"}
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    first = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    assert first.status_code == 502
    again = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"
    assert again.status_code == 201 and again.json()["id"] == made
    third = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    assert third.status_code == 200 and third.json()["id"] == made


def test_the_doctor_names_a_payout_left_without_an_answer(plugipay_sandbox, funded, settings):
    from tests.test_doctor import doctor, line

    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=40_000, idempotency_key="k-doc")
    _code, output = doctor()
    assert line(output, "payouts").startswith("[ok]")  # just sent: may still be under way
    settings.PLUGIPAY = {**settings.PLUGIPAY, "STRANDED_AFTER": 0}
    _code, output = doctor()
    report = line(output, "payouts")
    assert report.startswith("[FAIL] payouts: 1 pending without an answer")
    assert "same request again with its idempotency key" in report
    services.create_payout(amount=40_000, idempotency_key="k-doc")  # asked again: settled
    assert line(doctor()[1], "payouts").startswith("[ok]")


def test_two_requests_asking_again_at_once_send_it_once(plugipay_sandbox, funded):
    """Both read the row marked "no answer" before either sent it: the first to lock it sends
    (and clears the mark), the second leaves it to that one."""
    from django_plugipay.db import run_atomic

    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=20_000, idempotency_key="k-both")
    row = Payout.objects.get()
    assert row.failure_code == payouts.NO_ANSWER

    def claim():
        return run_atomic(payouts._claim_unsent, row.pk, canceling=False, replay=True)[1]

    assert [claim(), claim()] == ["send", "done"]
    assert Payout.objects.get().failure_code == ""


# ── interleavings with a send under way (found by a cold review) ─────────────────────────


def _during_first_send(monkeypatch, meanwhile):
    """Run ``meanwhile(row)`` while the first create call is under way (row stored, not sent)."""
    real = PlugipayClient.create_payout
    calls = []

    def create(self, body, **kw):
        if not calls:
            calls.append(1)
            meanwhile(Payout.objects.get(idempotency_key=kw["idempotency_key"]))
        return real(self, body, **kw)

    monkeypatch.setattr(PlugipayClient, "create_payout", create)


@STAFF_ACTS
def test_a_one_off_canceled_or_resynced_while_its_first_send_is_under_way(
    plugipay_sandbox, funded, monkeypatch, act
):
    """Looking for it then would find nothing and end it as Plugipay makes it: refused."""
    plugipay_sandbox.hold()
    refused = []

    def meanwhile(row):
        with pytest.raises(PayoutError) as under_way:
            act(row)
        refused.append(under_way.value.code)

    _during_first_send(monkeypatch, meanwhile)
    services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-c")
    [(made, remote_status)] = remote_payouts(plugipay_sandbox)
    row = Payout.objects.get(idempotency_key="k-c")
    assert (row.plugipay_id, row.status) == (made, remote_status)
    assert refused == ["under_way"]


def test_a_first_send_aborted_by_the_worker_timeout_is_settled_by_the_same_request(
    plugipay_sandbox, funded, monkeypatch
):
    """Plugipay made the payout; the worker was then aborted (gunicorn's timeout raises
    SystemExit from its SIGABRT handler; a SIGKILL runs nothing at all)."""
    real = PlugipayClient.create_payout
    calls = []

    def create(self, body, **kw):
        answer = real(self, body, **kw)
        if not calls:
            calls.append(1)
            raise SystemExit(1)
        return answer

    monkeypatch.setattr(PlugipayClient, "create_payout", create)
    with pytest.raises(SystemExit):
        services.create_payout(amount=20_000, idempotency_key="k-abort")
    plugipay_sandbox.flush()  # its webhook: a row of its own
    monkeypatch.setattr(payouts, "SEND_DEADLINE", dt.timedelta(0))  # a quarter hour later
    again = services.create_payout(amount=20_000, idempotency_key="k-abort")
    [(made, _status)] = remote_payouts(plugipay_sandbox)
    rows = list(Payout.objects.values_list("plugipay_id", "idempotency_key", "failure_code"))
    assert again.plugipay_id == made and len(rows) == 1, rows


def test_a_request_that_lost_the_race_to_send_again_is_not_the_one_that_made_it(
    plugipay_sandbox, funded
):
    plugipay_sandbox.hold()  # no webhook races the answers
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=20_000, idempotency_key="k-two")
    stale = Payout.objects.get()  # read by B (marked "no answer") before A locks it
    a = services.create_payout(amount=20_000, idempotency_key="k-two")
    assert not a.replayed and a.plugipay_id
    b = payouts._replayed(
        payouts._replay(stale, amount=20_000, currency="IDR", note="", inline={}), {}
    )
    assert b.replayed  # B sent nothing: the API's 200, not a second 201


def test_a_retry_racing_one_whose_webhook_came_first_is_answered(
    plugipay_sandbox, funded, monkeypatch
):
    """B reads the row marked "no answer"; A sends it again, its webhook came first, and
    A's merge deletes the request's row: B must answer with the payout, not raise."""
    plugipay_sandbox.hold()
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=20_000, idempotency_key="k-gone")
    stale = Payout.objects.get()
    link = payouts._link

    def webhook_first(payout, obj):
        plugipay_sandbox.release()  # payout.created is applied before the create answer
        return link(payout, obj)

    monkeypatch.setattr(payouts, "_link", webhook_first)
    a = services.create_payout(amount=20_000, idempotency_key="k-gone")
    assert a.plugipay_id and a.pk != stale.pk  # the webhook's row took the key
    b = payouts._replayed(
        payouts._replay(stale, amount=20_000, currency="IDR", note="", inline={}), {}
    )
    assert b.plugipay_id == a.plugipay_id


# ── a look-up racing a resend, refusals that are not the request's, two look-ups ───────


@STAFF_ACTS
def test_a_one_off_looked_for_while_the_same_request_sends_it_again_is_not_ended(
    plugipay_sandbox, funded, monkeypatch, act
):
    """Staff's action on a one-off marked "no answer" claims "look" (no details to resend);
    while its GET /payouts is under way the client asks again with the bank details, which
    claims "send". The look finds nothing (not made yet) and ends the row; the resend then
    makes the payout at Plugipay."""
    plugipay_sandbox.hold()
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-r4")
    row = sent_long_ago(Payout.objects.get())
    real_look = payouts._look_for
    deferred = []
    monkeypatch.setattr(
        payouts, "_look_for", lambda r, *, missing: deferred.append((r, missing)) or r
    )
    act(row)  # claimed "look"; its list call not answered yet
    monkeypatch.setattr(payouts, "_look_for", real_look)
    [(looked, missing)] = deferred
    real_create = PlugipayClient.create_payout

    def create(self, body, **kw):
        real_look(looked, missing=missing)  # staff's look ends while the resend is on its way
        return real_create(self, body, **kw)

    monkeypatch.setattr(PlugipayClient, "create_payout", create)
    again = services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-r4")
    [(made, remote_status)] = remote_payouts(plugipay_sandbox)
    row = Payout.objects.get()
    assert remote_status == "pending"
    assert (row.plugipay_id, row.status) == (made, "pending"), (row.status, row.failure_code)
    assert again.status == "pending"


@pytest.mark.parametrize(
    "act",
    [
        lambda row: services.cancel_payout(payout=row),
        lambda row: services.sync_payout(payout=row, send=True),
    ],
    ids=["cancel", "resync"],
)
def test_a_401_on_the_resend_leaves_a_payout_plugipay_made_unanswered(
    plugipay_sandbox, funded, settings, act
):
    """The answer was lost (Plugipay made it); the resend is refused by authentication (a
    rotated key, a clock off by minutes), before Plugipay reads the idempotency key: that
    says nothing of the payout, which is neither failed nor canceled here."""
    plugipay_sandbox.hold()
    row = lose_the_answer(plugipay_sandbox, 70_000)
    [(_made, remote_status)] = remote_payouts(plugipay_sandbox)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SECRET": "s" * len(settings.PLUGIPAY["SECRET"])}
    with pytest.raises(PayoutError) as refused:
        act(row)
    assert refused.value.status == 401
    row.refresh_from_db()
    assert remote_status == "pending"
    assert (row.status, row.failure_code) == ("pending", payouts.NO_ANSWER)


def test_two_lost_payouts_resynced_at_once_past_the_window_keep_their_keys(
    plugipay_sandbox, funded, monkeypatch
):
    """Two requests for the same amount, both answers lost (Plugipay made both). A day later
    staff Re-sync both at once: each look computes "free" candidates without a lock, both pick
    the oldest; the second link merges its row into the first's and deletes it."""
    plugipay_sandbox.hold()
    for key in ("k-a", "k-b"):
        plugipay_sandbox.fault("drop_after_commit", count=1, path_prefix="/api/v1/payouts")
        with pytest.raises(TransientError):
            services.create_payout(amount=20_000, idempotency_key=key)
    a, b = Payout.objects.get(idempotency_key="k-a"), Payout.objects.get(idempotency_key="k-b")
    assert len(remote_payouts(plugipay_sandbox)) == 2
    a_day_later(plugipay_sandbox, monkeypatch)
    real_find = payouts._find_at_plugipay
    nested = []

    def find(payout):
        found = real_find(payout)
        if not nested:  # A found its candidate; B's Re-sync runs now, before A links
            nested.append(1)
            services.sync_payout(payout=Payout.objects.get(pk=b.pk), send=True)
        return found

    monkeypatch.setattr(payouts, "_find_at_plugipay", find)
    services.sync_payout(payout=Payout.objects.get(pk=a.pk), send=True)
    keys = set(Payout.objects.values_list("idempotency_key", flat=True))
    assert keys == {a.idempotency_key, b.idempotency_key}, list(
        Payout.objects.values_list("pk", "plugipay_id", "idempotency_key", "status")
    )
    services.create_payout(amount=20_000, idempotency_key="k-a")  # A asked again, as advised
    assert len(remote_payouts(plugipay_sandbox)) == 2  # no third payout


def test_a_payout_made_late_in_its_send_is_found_past_the_window(
    plugipay_sandbox, funded, monkeypatch
):
    """The first send's retries and Retry-After waits (about 5 minutes with the defaults;
    SEND_DEADLINE allows 15) plus Plugipay's clock 6 minutes ahead (CLOCK_SKEW allows 10):
    Plugipay stamps the payout 11 minutes after ``submitted_at``. The look bounds it by
    ``submitted_at + CLOCK_SKEW`` alone, finds nothing, and fails a payout Plugipay made."""
    plugipay_sandbox.hold()
    real = PlugipayClient.create_payout

    def slow_then_lost(self, body, **kw):
        plugipay_sandbox.advance(11 * 60)
        real(self, body, **kw)
        raise TransientError("no answer", code="timeout")

    monkeypatch.setattr(PlugipayClient, "create_payout", slow_then_lost)
    with pytest.raises(TransientError):
        services.create_payout(amount=30_000, idempotency_key="k-late")
    monkeypatch.setattr(PlugipayClient, "create_payout", real)
    a_day_later(plugipay_sandbox, monkeypatch)
    row = services.sync_payout(payout=Payout.objects.get(), send=True)
    [(made, remote_status)] = remote_payouts(plugipay_sandbox)
    assert (row.plugipay_id, row.status) == (made, remote_status), (row.status, row.failure_code)


def test_canceling_a_one_off_never_made_leaves_another_payout_at_plugipay_alone(
    plugipay_sandbox, funded
):
    """A one-off to 7700001234 never reached Plugipay (500). Meanwhile a payout of the same
    amount to the saved account 8801234567 is made in Plugipay's dashboard (not here: its
    webhook row has no key). Canceling the one-off looks for it by amount, currency, note and
    time only, links it to the dashboard payout and cancels that one at Plugipay."""
    from django_plugipay.client import get_client

    plugipay_sandbox.hold()
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=10_000, bank_account=ONE_OFF, idempotency_key="k-one")
    row = sent_long_ago(Payout.objects.get())
    other = get_client().create_payout({"amount": 10_000, "currency": "IDR"})  # the dashboard's
    plugipay_sandbox.release()
    services.cancel_payout(payout=row)
    remote = dict(remote_payouts(plugipay_sandbox))
    assert remote[other["id"]] == "pending", remote


def test_a_refusal_of_the_clients_own_retry_keeps_the_payout_its_first_attempt_made(
    plugipay_sandbox, settings, monkeypatch
):
    """The client's first attempt made the payout and its answer was lost; its retry is
    refused before Plugipay reads it (a 401: a key rotated, a clock off). The row keeps its
    key, marked unanswered, for ``submit_payout`` to settle; it is not deleted as if nothing
    had been paid out. A 401 on a first attempt still leaves no row."""
    from django_plugipay.exceptions import APIError

    plugipay_sandbox.paid_payment(amount=250_000)
    test_money_out.save_bank_account()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 2}
    funds = services.balance()
    monkeypatch.setattr(payouts, "balance", lambda **kw: funds)
    monkeypatch.setattr("django_plugipay.client.time.sleep", lambda seconds: None)
    plugipay_sandbox.fault("drop_after_commit", count=1, path_prefix="/api/v1/payouts")
    original, attempts = PlugipayClient._send, []

    def send(self, method, path, body, key):
        if method == "POST" and path.endswith("/payouts"):
            attempts.append(key)
            if len(attempts) in (2, 3):
                raise APIError("Invalid signature.", status=401, code="unauthorized")
        return original(self, method, path, body, key)

    monkeypatch.setattr(PlugipayClient, "_send", send)
    with pytest.raises(PayoutError):
        services.create_payout(amount=60_000, idempotency_key="weekly-12")
    [(_made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"  # Plugipay holds the money in a live payout
    row = Payout.objects.get(idempotency_key="weekly-12")
    assert (row.status, row.failure_code) == ("pending", payouts.NO_ANSWER)
    with pytest.raises(PayoutError):  # a first attempt refused: nothing made, no row
        services.create_payout(amount=10_000, idempotency_key="weekly-13")
    assert not Payout.objects.filter(idempotency_key="weekly-13").exists()
    monkeypatch.setattr(PlugipayClient, "_send", original)
    settled = services.submit_payout(row)
    assert settled.plugipay_id == _made and settled.status == "pending"


@pytest.mark.parametrize(
    "act",
    [
        lambda row: services.cancel_payout(payout=row),
        lambda row: services.sync_payout(payout=row, send=True),
        lambda row: services.submit_payout(row),
    ],
    ids=["cancel", "resync", "submit"],
)
def test_a_payout_merged_into_its_webhooks_row_is_acted_on_there(plugipay_sandbox, funded, act):
    """A payout whose answer was lost and whose webhook made a row of its own is merged into
    that row when settled (its own row deleted). Code still holding its row from before (a
    list read a moment earlier) that cancels, re-syncs or submits it acts on the merged row,
    the live payout; it is not told "Plugipay refused it, and nothing was paid out"."""
    plugipay_sandbox.hold()
    row = lose_the_answer(plugipay_sandbox, 45_000)
    stale = Payout.objects.get(pk=row.pk)
    plugipay_sandbox.release()
    plugipay_sandbox.flush()
    services.submit_payout(row)  # merged: the request's row gone, its key on the other
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert status == "pending"
    assert Payout.objects.get(idempotency_key=row.idempotency_key).plugipay_id == made
    assert not Payout.objects.filter(pk=stale.pk).exists()
    assert act(stale).plugipay_id == made


def test_canceling_a_refused_payouts_row_leaves_a_later_payout_with_its_key_alone(
    plugipay_sandbox, funded, monkeypatch
):
    """A payout refused outright on its first attempt leaves no row; asked again with the
    same key, Plugipay makes it. Code still holding the refused row (a list read meanwhile)
    that cancels it is told it is gone; the later, live payout is not canceled."""
    from django_plugipay.exceptions import APIError

    original, stale = PlugipayClient._send, []

    def send(self, method, path, body, key):
        if method == "POST" and path.endswith("/payouts") and not stale:
            stale.append(Payout.objects.get(idempotency_key="api-7"))  # a list read now
            raise APIError("Invalid key.", status=401, code="unauthorized")
        return original(self, method, path, body, key)

    monkeypatch.setattr(PlugipayClient, "_send", send)
    with pytest.raises(PayoutError):
        services.create_payout(amount=30_000, idempotency_key="api-7")
    live = services.create_payout(amount=30_000, idempotency_key="api-7")
    assert live.plugipay_id and live.pk != stale[0].pk
    with pytest.raises(payouts.PayoutGone):
        services.cancel_payout(payout=stale[0])
    assert dict(remote_payouts(plugipay_sandbox))[live.plugipay_id] == "pending"
    assert Payout.objects.get(pk=live.pk).status == "pending"


@pytest.mark.parametrize("act", ["submit", "cancel"])
def test_a_payout_whose_send_timed_out_moments_ago_is_not_ended_while_plugipay_makes_it(
    plugipay_sandbox, funded, settings, act
):
    """A one-off payout's send timed out here while Plugipay was still making it. It cannot
    be sent again (its bank details are not kept), so it may only be looked for, and a look
    now could find nothing and end a payout Plugipay then pays: within ``STRANDED_AFTER`` of
    that send, submitting or canceling it is refused as under way. Later it is looked for,
    found and linked."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TIMEOUT": 0.5}
    plugipay_sandbox.fault("delay", count=1, path_prefix="/api/v1/payouts", delay=3)
    with pytest.raises(TransientError):
        services.create_payout(amount=33_000, bank_account=ONE_OFF, idempotency_key="oneoff")
    row = Payout.objects.get(idempotency_key="oneoff")
    assert row.failure_code == payouts.NO_ANSWER and not row.plugipay_id
    settle = (
        services.submit_payout if act == "submit" else (lambda r: services.cancel_payout(payout=r))
    )
    with pytest.raises(PayoutError, match="moments ago"):
        settle(row)
    wait_for(lambda: remote_payouts(plugipay_sandbox))
    [(made, _status)] = remote_payouts(plugipay_sandbox)
    plugipay_sandbox.flush()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "STRANDED_AFTER": 0}  # that long since the send
    settled = settle(row)
    assert settled.plugipay_id == made
    assert settled.status == ("pending" if act == "submit" else "canceled")


def test_a_second_request_whose_key_twin_plugipay_refused_meanwhile_is_refused_too(
    plugipay_sandbox, funded, monkeypatch
):
    """A request finds its key stored by a concurrent one (the insert's constraint), whose
    row is gone by the time it reads it: Plugipay refused that one. It is refused too, as a
    ``PayoutError``, not the model's bare ``DoesNotExist`` (an API request's 500)."""
    from django.db import IntegrityError

    real_run_atomic, raced = payouts.run_atomic, []

    def run_atomic(fn, *args, **kwargs):
        if not raced:  # the other request stored the key first, and was refused since
            raced.append(True)
            raise IntegrityError("duplicate key value violates unique constraint")
        return real_run_atomic(fn, *args, **kwargs)

    monkeypatch.setattr(payouts, "run_atomic", run_atomic)
    with pytest.raises(PayoutError, match="refused the payout requested with this"):
        services.create_payout(amount=10_000, idempotency_key="twin")
