"""The state file: a restart keeps what the sandbox held; failed deliveries reach the console."""

from __future__ import annotations

import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import plugipay
import pytest

from django_plugipay.testing import wait_for
from plugipay_sandbox import persistence
from plugipay_sandbox.server import SandboxServer
from plugipay_sandbox.state import SandboxConfig

SECRET = "whsec_persist"


def closed_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/plugipay/webhook/"


def start(path, **options):
    options.setdefault("forward_to", "http://127.0.0.1:9/hook")
    options.setdefault("webhook_secret", SECRET)
    return SandboxServer(SandboxConfig(port=0, state_file=str(path), **options)).start()


def client(server):
    return plugipay.PlugipayClient(
        key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
    )


def test_a_restart_keeps_customers_sessions_and_the_endpoint(tmp_path):
    path = tmp_path / "state.json"
    server = start(path)
    sdk = client(server)
    customer = sdk.customers.create(email="ana@example.com")
    session = sdk.checkout_sessions.create(
        amount=50_000,
        currency="IDR",
        methods=["card"],
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/no",
        customer_id=customer["id"],
    )
    endpoint_id = next(iter(server.store.endpoints))
    server.stop()

    again = start(path)
    try:
        sdk = client(again)
        assert sdk.customers.get(customer["id"])["email"] == "ana@example.com"
        assert sdk.checkout_sessions.get(session["id"])["customerId"] == customer["id"]
        assert list(again.store.endpoints) == [endpoint_id]  # same endpoint, same delivery log
        assert again.store.endpoints[endpoint_id]["_secret"] == SECRET
        newer = sdk.customers.create(email="budi@example.com")  # ids keep increasing
        assert (
            again.store.customers[newer["id"]]["_seq"]
            > again.store.customers[customer["id"]]["_seq"]
        )
    finally:
        again.stop()


def test_changes_are_written_soon_without_a_stop(tmp_path):
    path = tmp_path / "state.json"
    server = start(path)
    try:
        customer = client(server).customers.create(email="ana@example.com")

        def saved():
            if not path.exists():
                return False
            stores = json.loads(path.read_text())["stores"]
            return customer["id"] in {c["id"] for c in stores["customers"]}

        wait_for(saved, message="the state file to be written")
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary files left
    finally:
        server.stop()


def test_every_object_map_is_saved_even_one_added_later(tmp_path):
    path = tmp_path / "state.json"
    server = start(path)
    server.store.plans = {"plan_1": {"id": "plan_1", "name": "Gold", "_seq": 1}}
    server.stop()
    assert json.loads(path.read_text())["stores"]["plans"][0]["name"] == "Gold"
    again = SandboxServer(SandboxConfig(port=0))
    again.store.plans = {}
    persistence.load(again.store, str(path))
    assert again.store.plans["plan_1"]["name"] == "Gold"


def test_a_new_forward_to_replaces_the_old_one(tmp_path):
    path = tmp_path / "state.json"
    start(path, forward_to="http://127.0.0.1:9/old").stop()
    again = start(path, forward_to="http://127.0.0.1:9/new")
    try:
        assert [e["url"] for e in again.store.endpoints.values()] == ["http://127.0.0.1:9/new"]
    finally:
        again.stop()


def first_failure_logged(caplog, url):
    """Emit one event to ``url`` (retries 30 s apart) and return the first failure's log line."""
    server = SandboxServer(
        SandboxConfig(port=0, forward_to=url, webhook_secret=SECRET, retry_schedule=(30, 60))
    ).start()
    try:
        with caplog.at_level(logging.WARNING, logger="plugipay_sandbox"):
            client(server).customers.create(email="ana@example.com")
            wait_for(
                lambda: any("failed" in r.getMessage() for r in caplog.records),
                message="the failed delivery to be logged",
            )
    finally:
        server.stop()
    lines = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(lines) == 1
    return lines[0]


def test_each_failed_delivery_is_logged_with_url_status_attempt_and_next_retry(caplog):
    url = closed_url()
    line = first_failure_logged(caplog, url)
    assert url in line and "customer.created" in line and "attempt 1" in line
    assert "next retry in 30s" in line and "is the receiver running" in line
    assert "refused" in line.lower()


@pytest.mark.parametrize(("status", "hint"), [(401, "signature"), (404, "URLconf")])
def test_rejected_deliveries_say_why(caplog, status, hint):
    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        line = first_failure_logged(caplog, url)
    finally:
        receiver.shutdown()
    assert f"HTTP {status}" in line and hint in line and url in line


def test_an_unreadable_state_file_says_what_to_do(tmp_path, capsys):
    from plugipay_sandbox.__main__ import main

    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert main(["--port", "0", "--state-file", str(path)]) == 2
    assert "--fresh" in capsys.readouterr().err
