"""Fixtures for testing plugipay_sandbox alone: a server, a signed client and a receiver."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import plugipay
import pytest
import requests

from plugipay_sandbox import SandboxConfig, SandboxServer

WEBHOOK_SECRET = "whsec_sandbox_tests"
#: The platform-admin key the test sandbox accepts beside the merchant key (--platform-key).
PLATFORM_KEY = ("pk_test_platform", "sk_test_platform")
#: Long on purpose: a failed delivery is retried only when a test moves the sandbox clock.
RETRY_SCHEDULE = (60.0, 120.0, 180.0)


class Receiver:
    """A tiny HTTP server that records webhook deliveries and answers a chosen status."""

    def __init__(self):
        self.deliveries = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def types(self):
        return [json.loads(body)["type"] for _, body in self.deliveries]

    def clear(self):
        self.deliveries.clear()
        self.status = 200


@pytest.fixture(scope="session")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="session")
def sandbox_server(receiver):
    config = SandboxConfig(
        port=0,
        forward_to=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        retry_schedule=RETRY_SCHEDULE,
        platform_keys=dict([PLATFORM_KEY]),
    )
    server = SandboxServer(config).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, receiver):
    """The sandbox, reset, with its control routes one call away."""
    requests.post(f"{sandbox_server.base_url}/_sandbox/reset", timeout=5)
    requests.post(
        f"{sandbox_server.base_url}/_sandbox/config",
        timeout=5,
        json={"eventStyle": "sdk", "refundDelay": 0, "retrySchedule": list(RETRY_SCHEDULE)},
    )
    receiver.clear()
    yield sandbox_server
    requests.post(f"{sandbox_server.base_url}/_sandbox/deliveries/flush", timeout=30)


@pytest.fixture
def sdk(sandbox):
    """The official Python SDK, signing with HMAC against the sandbox."""
    return plugipay.PlugipayClient(
        key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=sandbox.base_url
    )


@pytest.fixture
def platform(sandbox):
    """The official SDK signing with the platform-admin key (no account named yet)."""
    key_id, secret = PLATFORM_KEY
    return plugipay.PlugipayClient(key_id=key_id, secret=secret, base_url=sandbox.base_url)


@pytest.fixture
def control(sandbox):
    def call(method, path, body=None):
        response = requests.request(
            method, f"{sandbox.base_url}/_sandbox/{path}", json=body, timeout=30
        )
        return response.status_code, response.json()

    return call


@pytest.fixture
def session_factory(sdk):
    def make(amount=150_000, currency="IDR", methods=("card", "va", "qris"), **kwargs):
        return sdk.checkout_sessions.create(
            amount=amount,
            currency=currency,
            methods=list(methods),
            success_url="https://shop.test/ok",
            cancel_url="https://shop.test/cancel",
            **kwargs,
        )

    return make
