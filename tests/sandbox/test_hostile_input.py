"""What a client sends never breaks the sandbox: values no answer could write back (an
instant past year 9999, a clock moved by a trillion seconds, NaN and Infinity, amounts past
2**53 - 1) are a 400 in Plugipay's envelope, and the sandbox answers as before afterwards; an
Idempotency-Key sent again with a body that differs only as JSON tells (``true`` for ``1``,
``1.0`` for ``1``) is refused, not replayed."""

from __future__ import annotations

import pytest
import requests

BEARER = {"Authorization": "Bearer pk_test_sandbox_bearer"}


def api(sandbox, method, path, body=None, *, raw=None, headers=None):
    return requests.request(
        method,
        f"{sandbox.base_url}/api/v1{path}",
        json=body if raw is None else None,
        data=raw,
        headers={**BEARER, "Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def control(sandbox, path, *, raw):
    return requests.post(
        f"{sandbox.base_url}/_sandbox/{path}",
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def still_answers(sandbox):
    assert api(sandbox, "GET", "/customers").status_code == 200


def paid(sandbox, amount=100_000):
    session = api(
        sandbox,
        "POST",
        "/checkout-sessions",
        {
            "amount": amount,
            "currency": "IDR",
            "methods": ["card"],
            "successUrl": "https://shop.test/ok",
            "cancelUrl": "https://shop.test/no",
        },
    ).json()["data"]
    paid = requests.post(
        f"{sandbox.base_url}/_sandbox/checkout-sessions/{session['id']}/pay",
        json={"card": "4242424242424242"},
        timeout=30,
    ).json()["data"]
    return paid["payment"]["id"]


@pytest.mark.parametrize("due", ["99999999999999999", "0001-01-01", "10000-01-01T00:00:00Z"])
def test_an_invoice_due_at_an_instant_no_answer_can_write_is_a_400(sandbox, due):
    customer = api(sandbox, "POST", "/customers", {"email": "a@b.test"}).json()["data"]["id"]
    answer = api(
        sandbox,
        "POST",
        "/invoices",
        {
            "customerId": customer,
            "currency": "IDR",
            "lines": [{"description": "x", "quantity": 1, "unitAmount": 100}],
            "dueAt": due,
        },
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "dueAt"
    still_answers(sandbox)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"seconds": 1000000000000}',
        b'{"seconds": Infinity}',
        b'{"seconds": NaN}',
        b'{"seconds": 1e308}',
    ],
)
def test_a_clock_move_past_year_9999_or_not_a_number_is_a_400(sandbox, raw):
    assert control(sandbox, "clock/advance", raw=raw).status_code == 400
    still_answers(sandbox)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "http_429", "retry_after": NaN}',
        b'{"kind": "http_429", "count": Infinity}',
        b'{"kind": "delay", "delay": 1e300}',
    ],
)
def test_a_fault_with_a_number_out_of_reach_is_a_400(sandbox, raw):
    assert control(sandbox, "faults", raw=raw).status_code == 400
    still_answers(sandbox)


def test_nan_and_infinity_in_an_api_body_are_not_json(sandbox):
    answer = api(sandbox, "POST", "/customers", raw=b'{"email": "a@b.test", "x": NaN}')
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("again", [True, 1.0])
def test_a_key_sent_again_with_a_body_that_differs_as_json_is_refused(sandbox, again):
    payment = paid(sandbox)
    key = {"Idempotency-Key": "refund-1"}
    body = {"chargeId": payment, "amount": 1, "reason": "duplicate"}
    assert api(sandbox, "POST", "/refunds", body, headers=key).status_code == 201
    answer = api(sandbox, "POST", "/refunds", {**body, "amount": again}, headers=key)
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["field"] == "amount"


def test_an_amount_past_2_53_is_a_400(sandbox):
    answer = api(
        sandbox,
        "POST",
        "/checkout-sessions",
        {
            "amount": 2**53,
            "currency": "IDR",
            "methods": ["card"],
            "successUrl": "https://shop.test/ok",
            "cancelUrl": "https://shop.test/no",
        },
    )
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "amount"


def test_the_clock_stops_short_of_year_9999_so_it_can_run_on():
    """A clock moved to just inside the limit would pass year 9999 a second later, and every
    instant the sandbox writes after that with it: the limit keeps a margin."""
    from plugipay_sandbox import control
    from plugipay_sandbox.app import Request
    from plugipay_sandbox.state import ApiError
    from plugipay_sandbox.state.core import CLOCK_LIMIT, LATEST, SandboxConfig, Store, iso

    store = Store(SandboxConfig())
    while CLOCK_LIMIT - store.now() > control.CLOCK_REACH:
        store.advance(control.CLOCK_REACH)

    def advance(seconds):
        request = Request.__new__(Request)
        request._json = {"seconds": seconds}
        return control.advance(store, request)

    with pytest.raises(ApiError):
        advance(LATEST - store.now() - 1)
    advance(CLOCK_LIMIT - store.now() - 1)
    iso(store.now() + (LATEST - CLOCK_LIMIT) - 60)  # a period or a due date ahead still writes


def test_hosted_pages_write_times_as_jakarta_reads_them():
    """A receipt issued at 00:11 in Jakarta is dated that day, not the day before in UTC; a
    deadline and a claim are written in WIB, not UTC."""
    from plugipay_sandbox.hosted.invoice import day
    from plugipay_sandbox.hosted.layout import minute

    assert day("2026-12-07T17:11:00.000Z") == "8 Dec 2026"
    assert minute("2026-12-07T17:11:00.000Z") == "2026-12-08 00:11 WIB"


def plan(sandbox, interval="year", count=5):
    return api(
        sandbox,
        "POST",
        "/plans",
        {
            "name": "P",
            "interval": interval,
            "intervalCount": count,
            "portalFeatures": {},
            "prices": [{"currency": "IDR", "unitAmount": 1000}],
        },
    )


def subscribe(sandbox, made):
    customer = api(sandbox, "POST", "/customers", {"email": "a@b.test"}).json()["data"]["id"]
    return api(
        sandbox,
        "POST",
        "/subscriptions",
        {
            "customerId": customer,
            "planId": made["id"],
            "priceId": made["prices"][0]["id"],
            "collectionMethod": "send_invoice",
        },
    )


def test_a_plan_period_over_five_years_is_a_400(sandbox):
    answer = plan(sandbox, count=365)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "intervalCount"


def test_renewals_stop_short_of_year_9999_and_the_sandbox_answers_on(sandbox):
    """A subscription's own clock moved by ten years at a time renews until the clock's
    limit, which is a 400; no renewal is computed past year 9999 (each was a 500, and the
    next request's tick met it again: every later request was a 500)."""
    made = plan(sandbox).json()["data"]
    subscription = subscribe(sandbox, made).json()["data"]["id"]
    for _ in range(1000):
        moved = api(
            sandbox, "POST", "/test/clocks/advance", {"subscriptionId": subscription, "days": 3650}
        )
        if moved.status_code != 200:
            break
    assert moved.status_code == 400 and moved.json()["error"]["field"] == "days", moved.text
    still_answers(sandbox)


def test_a_subscription_made_at_the_clocks_limit_ends_its_period_within_year_9999(sandbox):
    reach = 100 * 366 * 24 * 3600
    while control(sandbox, "clock/advance", raw=f'{{"seconds": {reach}}}'.encode()).ok:
        pass
    made = plan(sandbox).json()["data"]
    answer = subscribe(sandbox, made)
    assert answer.status_code == 201, answer.text
    assert answer.json()["data"]["currentPeriodEnd"] < "9999-12-31"
    still_answers(sandbox)


def test_an_invoice_whose_lines_add_up_past_2_53_is_a_400(sandbox):
    customer = api(sandbox, "POST", "/customers", {"email": "a@b.test"}).json()["data"]["id"]
    top = 2**53 - 1
    for lines in (
        [{"description": "x", "quantity": top, "unitAmount": top}],
        [{"description": "x", "quantity": 1, "unitAmount": top}] * 2,
    ):
        answer = api(
            sandbox,
            "POST",
            "/invoices",
            {"customerId": customer, "currency": "IDR", "status": "open", "lines": lines},
        )
        assert answer.status_code == 400, answer.text
    balance = api(sandbox, "GET", "/payouts/balance").json()["data"]
    assert balance["ledgerBalance"] == 0


def test_a_report_to_written_as_epoch_seconds_is_that_instant_not_a_whole_day(sandbox):
    import datetime as dt

    pay = paid(sandbox)
    assert pay
    entry = api(sandbox, "GET", "/ledger?order=asc&limit=1").json()["data"][0]
    posted = dt.datetime.fromisoformat(entry["postedAt"].replace("Z", "+00:00"))
    before = int(posted.timestamp()) - 3600
    as_iso = dt.datetime.fromtimestamp(before, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_iso = api(sandbox, "GET", f"/reports/pnl?to={as_iso}").json()["data"]["revenue"]
    by_epoch = api(sandbox, "GET", f"/reports/pnl?to={before}").json()["data"]["revenue"]
    assert by_iso == by_epoch == 0


def test_an_invoice_emailed_to_what_is_not_an_address_is_a_400(sandbox):
    customer = api(sandbox, "POST", "/customers", {"email": "a@b.test"}).json()["data"]["id"]
    invoice = api(
        sandbox,
        "POST",
        "/invoices",
        {
            "customerId": customer,
            "currency": "IDR",
            "status": "open",
            "lines": [{"description": "x", "quantity": 1, "unitAmount": 1000}],
        },
    ).json()["data"]
    answer = api(sandbox, "POST", f"/invoices/{invoice['id']}/send-email", {"to": "abc"})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "to"
