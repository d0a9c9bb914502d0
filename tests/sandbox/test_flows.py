"""Sandbox state machines, refunds, faults, deliveries and event styles."""

import json
import subprocess
import sys

import plugipay
import pytest
import requests

from plugipay_sandbox.state.webhooks import AUTO_DISABLE_AFTER, CLI_DESCRIPTION, auto_disable_window
from tests.sandbox.conftest import RETRY_SCHEDULE


def pay(control, session, **body):
    return control("POST", f"checkout-sessions/{session['id']}/pay", body)


@pytest.mark.parametrize(
    ("card", "outcome", "code"),
    [
        ("4242424242424242", "succeeded", None),
        ("4000000000000002", "declined", "card_declined"),
        ("4000000000009995", "declined", "insufficient_funds"),
    ],
)
def test_test_cards(control, session_factory, card, outcome, code):
    session = session_factory()
    status, body = pay(control, session, card=card)
    data = body["data"]
    assert status == 200 and data["outcome"] == outcome
    assert data["payment"]["failureCode"] == code
    assert data["session"]["status"] == ("completed" if outcome == "succeeded" else "open")


@pytest.mark.parametrize(("answer", "status"), [("approve", "completed"), ("fail", "open")])
def test_three_ds_card(control, session_factory, sdk, answer, status):
    session = session_factory()
    _, first = pay(control, session, card="4000002760003184")
    assert first["data"]["outcome"] == "requires_3ds"
    assert sdk.checkout_sessions.get(session["id"])["status"] == "pending"
    _, second = pay(control, session, card="4000002760003184", three_ds=answer)
    assert second["data"]["session"]["status"] == status


def test_completion_sets_payment_fields(control, session_factory, sdk):
    session = session_factory()
    pay(control, session, card="4242424242424242")
    done = sdk.checkout_sessions.get(session["id"])
    assert done["paymentId"].startswith("pay_") and done["paymentMethod"] == "card"
    assert done["completedAt"] and done["adapter"] == "xendit"


def test_async_method_and_manual_confirm(control, session_factory, sdk):
    va = session_factory()
    _, body = pay(control, va, method="va")
    assert body["data"]["session"]["status"] == "completed"
    manual = session_factory(methods=["manual"])
    _, body = pay(control, manual, method="manual")
    assert body["data"]["session"]["status"] == "pending_review"
    assert sdk.checkout_sessions.confirm(manual["id"])["status"] == "completed"


def test_expiry_by_clock_and_by_control(control, session_factory, sdk):
    by_clock = session_factory(expires_in_sec=600)
    by_route = session_factory()
    control("POST", "clock/advance", {"seconds": 601})
    assert sdk.checkout_sessions.get(by_clock["id"])["status"] == "expired"
    assert sdk.checkout_sessions.get(by_route["id"])["status"] == "open"
    control("POST", f"checkout-sessions/{by_route['id']}/expire")
    assert sdk.checkout_sessions.get(by_route["id"])["status"] == "expired"
    status, _ = pay(control, by_route, card="4242424242424242")
    assert status == 409


def test_refunds_partial_full_and_over(control, session_factory, sdk):
    session = session_factory(amount=100_000)
    pay(control, session, card="4242424242424242")
    charge = sdk.checkout_sessions.get(session["id"])["paymentId"]
    sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=30_000)
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=70_001)
    assert info.value.status == 400 and info.value.code == "VALIDATION_ERROR"
    rest = sdk.api.refunds_create(charge_id=charge)
    assert rest["amount"] == 70_000 and rest["chargeId"] == charge
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.refunds.create(source_type="checkout_session", source_id=session["id"])
    assert info.value.status == 409


def test_refund_by_payment_id_and_unpaid_session(control, session_factory, sandbox):
    unpaid = session_factory()
    from tests.sandbox.test_api import _signed

    body = json.dumps({"sourceType": "checkout_session", "sourceId": unpaid["id"]}).encode()
    response = requests.post(
        f"{sandbox.base_url}/api/v1/refunds",
        data=body,
        headers=_signed("POST", "/api/v1/refunds", body),
    )
    assert response.status_code == 409
    paid = session_factory()
    _, result = pay(control, paid, card="4242424242424242")
    body = json.dumps({"paymentId": result["data"]["payment"]["id"], "amount": 1}).encode()
    response = requests.post(
        f"{sandbox.base_url}/api/v1/refunds",
        data=body,
        headers=_signed("POST", "/api/v1/refunds", body),
    )
    assert response.status_code == 201 and response.json()["data"]["amount"] == 1


def test_pending_refund_settles_by_delay_or_control(control, session_factory, sdk):
    control("POST", "config", {"refundDelay": 30})
    session = session_factory()
    pay(control, session, card="4242424242424242")
    first = sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=1000)
    second = sdk.refunds.create(
        source_type="checkout_session", source_id=session["id"], amount=1000
    )
    assert first["status"] == second["status"] == "pending"
    control("POST", f"refunds/{second['id']}/fail", {"code": "bank_rejected", "message": "no"})
    control("POST", "clock/advance", {"seconds": 31})
    assert sdk.refunds.get(first["id"])["status"] == "succeeded"
    failed = sdk.refunds.get(second["id"])
    assert failed["status"] == "failed" and failed["failureCode"] == "bank_rejected"


def test_refund_refused_fault_is_422_with_failed_refund(control, session_factory, sdk):
    session = session_factory()
    pay(control, session, card="4242424242424242")
    control("POST", "faults", {"kind": "refund_refused", "count": 1})
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.refunds.create(source_type="checkout_session", source_id=session["id"])
    assert info.value.status == 422
    assert [r["status"] for r in sdk.refunds.list().data] == ["failed"]


def test_fault_http_500_and_429(control, sdk):
    control("POST", "faults", {"kind": "http_500", "count": 1, "path_prefix": "/api/v1/cust"})
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.customers.list()
    assert info.value.status == 500
    assert sdk.customers.list().data == []
    control("POST", "faults", {"kind": "http_429", "count": 1, "retry_after": 3})
    from tests.sandbox.test_api import _signed

    response = requests.get(
        sdk.base_url + "/api/v1/customers", headers=_signed("GET", "/api/v1/customers")
    )
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"


def test_fault_drop_after_commit_and_delay(control, sandbox, sdk):
    from tests.sandbox.test_api import _signed

    control("POST", "faults", {"kind": "drop_after_commit", "count": 1})
    body = b'{"email":"drop@example.com"}'
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{sandbox.base_url}/api/v1/customers",
            data=body,
            headers=_signed("POST", "/api/v1/customers", body, "idem_drop"),
        )
    retry = requests.post(
        f"{sandbox.base_url}/api/v1/customers",
        data=body,
        headers=_signed("POST", "/api/v1/customers", body, "idem_drop"),
    )
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert len(sdk.customers.list().data) == 1
    control("POST", "faults", {"kind": "delay", "count": 1, "delay": 0.5})
    with pytest.raises(requests.Timeout):
        requests.get(
            f"{sandbox.base_url}/api/v1/customers",
            timeout=0.2,
            headers=_signed("GET", "/api/v1/customers"),
        )
    _, listed = control("GET", "faults")
    assert listed["data"] == []


def test_deliveries_retry_then_succeed(control, session_factory, receiver):
    receiver.status = 500
    session_factory()
    control("POST", "deliveries/flush")
    _, state = control("GET", "state")
    delivery = state["data"]["deliveries"][0]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    receiver.status = 200
    control("POST", "deliveries/flush")  # not due yet: nothing is sent
    _, state = control("GET", "state")
    assert state["data"]["deliveries"][0]["attempts"] == 1
    control("POST", "clock/advance", {"seconds": RETRY_SCHEDULE[0]})
    control("POST", "deliveries/flush")
    _, state = control("GET", "state")
    delivery = state["data"]["deliveries"][0]
    assert delivery["status"] == "succeeded" and len(delivery["attemptLog"]) == 2
    assert delivery["attemptLog"][0]["responseCode"] == 500


def test_delivery_gives_up_after_schedule_and_endpoint_auto_disables(control, sdk, receiver):
    receiver.status = 503
    for i in range(5):
        sdk.customers.create(email=f"x{i}@example.com")
    control("POST", "deliveries/flush")
    for seconds in RETRY_SCHEDULE:  # 5 deliveries × (1 attempt + 3 retries) = 20 failures
        control("POST", "clock/advance", {"seconds": seconds})
        control("POST", "deliveries/flush")
    _, state = control("GET", "state")
    endpoint = state["data"]["endpoints"][0]
    assert endpoint["active"] is False and endpoint["status"] == "errored"
    assert endpoint["consecutiveFailures"] == 20
    disabled = [e for e in state["data"]["events"] if e["kind"] == "webhook_endpoint.disabled"]
    assert [e["object"]["id"] for e in disabled] == [endpoint["id"]]  # in the events API
    assert {d["status"] for d in state["data"]["deliveries"]} == {"failed"}
    delivery = state["data"]["deliveries"][0]
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.webhook_endpoints.retry_delivery(delivery["id"])
    assert info.value.code == "endpoint_disabled"
    receiver.status = 200
    sdk.webhook_endpoints.update(endpoint["id"], active=True)
    sdk.webhook_endpoints.retry_delivery(delivery["id"])
    control("POST", "deliveries/flush")
    assert sdk.webhook_endpoints.get_delivery(delivery["id"])["status"] == "succeeded"


def test_hold_release_reverse_and_duplicate(control, sdk, receiver):
    control("POST", "deliveries/hold")
    for i in range(3):
        sdk.customers.create(email=f"r{i}@example.com")
    _, flushed = control("POST", "deliveries/flush")  # would send them all, were it not held
    _, state = control("GET", "state")
    assert flushed["data"]["sent"] == 0 and receiver.deliveries == []
    assert [d["attempts"] for d in state["data"]["deliveries"]] == [0, 0, 0]
    _, released = control("POST", "deliveries/release", {"order": "reverse", "duplicate": 2})
    assert released["data"]["released"] == 3
    ids = [json.loads(body)["id"] for _, body in receiver.deliveries]
    assert len(ids) == 6 and ids[0] == ids[1] and ids[0] != ids[2]
    created = [e["id"] for e in sdk.events.list(order="asc").data]
    assert ids[::2] == list(reversed(created))


def test_docs_event_style(control, sdk, receiver):
    control("POST", "config", {"eventStyle": "docs"})
    customer = sdk.customers.create(email="d@example.com")
    sdk.customers.update(customer["id"], name="Dee")
    control("POST", "deliveries/flush")
    bodies = [json.loads(body) for _, body in receiver.deliveries]
    assert [b["type"] for b in bodies] == ["customer.created", "customer.updated"]
    assert bodies[0]["data"]["id"] == customer["id"] and "workspaceId" in bodies[0]
    assert bodies[1]["previousAttributes"] == {"name": None}


def test_events_filters_replay_and_trigger(control, sdk, session_factory, receiver):
    session = session_factory()
    pay(control, session, card="4242424242424242")
    completed = sdk.events.list(type="checkout_session.completed").data
    assert len(completed) == 1
    long_form = sdk.events.list(type="plugipay.checkout_session.completed.v1").data
    assert [e["id"] for e in long_form] == [e["id"] for e in completed]
    control("POST", "deliveries/flush")
    receiver.clear()
    sdk.api.events_replay(event_ids=[completed[0]["id"]])
    sdk.api.events_trigger(type_="payment.failed", aggregate_id="pay_X")
    control("POST", "deliveries/flush")
    assert sorted(receiver.types()) == [
        "plugipay.checkout_session.completed.v1",
        "plugipay.payment.failed.v1",
    ]


def test_reset_keeps_command_line_endpoint(control, sdk):
    sdk.webhook_endpoints.create(url="https://api.test/hook")
    control("POST", "reset")
    assert [e["description"] for e in sdk.webhook_endpoints.list()] == [CLI_DESCRIPTION]


def test_cli_prints_credentials_and_rejects_bad_arguments(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "plugipay_sandbox", "--port", "http"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "is not a port number" in bad.stderr
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plugipay_sandbox",
            "--port",
            "0",
            "--forward-to",
            "http://127.0.0.1:9/hook",
            "--webhook-secret",
            "whsec_cli",
            "--state-file",
            str(tmp_path / "state.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = [proc.stdout.readline() for _ in range(7)]
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    text = "".join(lines)
    assert "not Plugipay" in text and "whsec_cli" in text and "pk_test_sandbox" in text
    assert (tmp_path / "state.json").exists()


def test_a_burst_of_failures_does_not_disable_an_endpoint_until_they_span_24_hours(
    control, sdk, receiver
):
    receiver.status = 503
    for i in range(AUTO_DISABLE_AFTER):
        sdk.customers.create(email=f"burst{i}@example.com")
    control("POST", "deliveries/flush")  # 20 failures within a moment: a receiver's restart
    _, state = control("GET", "state")
    endpoint = state["data"]["endpoints"][0]
    assert endpoint["consecutiveFailures"] == AUTO_DISABLE_AFTER and endpoint["active"] is True
    window = auto_disable_window(RETRY_SCHEDULE)
    control("POST", "clock/advance", {"seconds": RETRY_SCHEDULE[0]})
    control("POST", "deliveries/flush")
    _, state = control("GET", "state")
    assert RETRY_SCHEDULE[0] < window and state["data"]["endpoints"][0]["active"] is True
    control("POST", "clock/advance", {"seconds": RETRY_SCHEDULE[1]})
    control("POST", "deliveries/flush")
    _, state = control("GET", "state")
    endpoint = state["data"]["endpoints"][0]
    assert endpoint["active"] is False and endpoint["status"] == "errored"
