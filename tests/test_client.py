"""PlugipayClient against the sandbox over loopback HTTP: auth, envelope, retries, pages."""

import pytest
import requests

from django_plugipay import client as client_module
from django_plugipay.accounts import acting_for
from django_plugipay.client import PlugipayClient, sign, string_to_sign
from django_plugipay.exceptions import APIError, ConfigurationError, TransientError


@pytest.fixture
def api(plugipay_sandbox):
    return PlugipayClient.from_settings()


def test_api_md_vectors():
    body = b'{"email":"ada@example.com"}'
    message = string_to_sign(
        "POST", "/api/v1/customers", "1750000000", body, "idem_00000000-0000-4000-8000-000000000000"
    )
    assert sign("sk_test_emulator_secret", message) == (
        "e32d7b8d91e419918e69211164c57ae19efaa93e381cf0f5f46aef315b4d2364"
    )
    message = string_to_sign("GET", "/api/v1/customers?limit=10", "1750000000", b"", None)
    assert sign("sk_test_emulator_secret", message) == (
        "cbaf29943842cacb5e8b0af7e5b75beb1e96aa477a127092978bc117eeec5468"
    )


def test_hmac_and_bearer_are_accepted(plugipay_sandbox):
    hmac_client = PlugipayClient.from_settings()
    bearer = PlugipayClient.from_settings(
        key_id=None, secret=None, api_key="pk_test_sandbox_bearer"
    )
    created = hmac_client.create_customer({"email": "ada@example.com"})
    assert bearer.get_customer(created["id"])["email"] == "ada@example.com"


def test_missing_credentials_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="KEY_ID"):
        PlugipayClient(base_url="http://127.0.0.1:1")


def test_a_key_that_cannot_be_sent_is_a_configuration_error_naming_the_setting(db, settings):
    """The docs' "…" pasted with a key: said before any request, not a UnicodeEncodeError."""
    with pytest.raises(ConfigurationError, match="The Plugipay API key contains '…'"):
        PlugipayClient(api_key="sk_live_acme…")
    settings.PLUGIPAY = {**settings.PLUGIPAY, "KEY_ID": "pk_test_x\n"}
    with pytest.raises(ConfigurationError, match=r"PLUGIPAY\['KEY_ID'\] contains whitespace"):
        client_module.get_client()
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "KEY_ID": "pk_test_x",
        "ACCOUNTS": {"acme": {"API_KEY": "sk_live_acme…", "WEBHOOK_SECRETS": ["whsec_a"]}},
    }
    with (
        acting_for("acme"),
        pytest.raises(ConfigurationError, match=r"\['ACCOUNTS'\]\['acme'\]\['API_KEY'\]"),
    ):
        client_module.get_client()


def test_4xx_is_not_retried_and_carries_code_and_request_id(api, monkeypatch):
    calls = []
    original = requests.Session.request
    monkeypatch.setattr(
        requests.Session,
        "request",
        lambda self, *a, **k: calls.append(a) or original(self, *a, **k),
    )
    with pytest.raises(APIError) as info:
        api.get_checkout_session("cs_missing")
    assert info.value.status == 404 and info.value.code == "not_found"
    assert info.value.request_id.startswith("req_") and len(calls) == 1
    with pytest.raises(APIError) as info:
        api.create_checkout_session(
            {
                "amount": -1,
                "currency": "IDR",
                "methods": ["card"],
                "successUrl": "https://a.test",
                "cancelUrl": "https://b",
            }
        )
    assert info.value.field == "amount" and len(calls) == 2


def test_500_then_success_is_retried(api, plugipay_sandbox):
    plugipay_sandbox.fault("http_500", count=2, path_prefix="/api/v1/customers")
    assert api.create_customer({"email": "retry@example.com"})["email"] == "retry@example.com"
    customers = plugipay_sandbox.state()["customers"]
    assert len(customers) == 1


def test_retries_are_bounded(api, plugipay_sandbox):
    plugipay_sandbox.fault("http_500", count=10, path_prefix="/api/v1/customers")
    with pytest.raises(TransientError) as info:
        api.create_customer({"email": "x@example.com"})
    assert info.value.status == 500
    assert plugipay_sandbox.state()["faults"][0]["count"] == 10 - (api.max_retries + 1)


def test_429_retry_after_is_honoured(api, plugipay_sandbox, monkeypatch):
    sleeps = []
    monkeypatch.setattr(client_module.time, "sleep", sleeps.append)
    plugipay_sandbox.fault("http_429", count=1, retry_after=2)
    assert list(api.list_customers()) == []
    assert sleeps == [2.0]


def test_dropped_connection_after_commit_creates_one_object(api, plugipay_sandbox):
    plugipay_sandbox.fault("drop_after_commit", count=1, path_prefix="/api/v1/checkout")
    session = api.create_checkout_session(
        {
            "amount": 1000,
            "currency": "IDR",
            "methods": ["card"],
            "successUrl": "https://shop.test/ok",
            "cancelUrl": "https://shop.test/no",
        }
    )
    assert [s["id"] for s in plugipay_sandbox.state()["sessions"]] == [session["id"]]


def test_timeout_on_a_write_is_retried_with_the_same_key(api, plugipay_sandbox):
    api.timeout = 1.0  # a normal answer fits easily, even on a loaded machine
    plugipay_sandbox.fault("delay", count=1, delay=2.0, path_prefix="/api/v1/customers")
    customer = api.create_customer({"email": "slow@example.com"})
    plugipay_sandbox.wait_idle()  # the timed-out attempt has been answered too
    assert plugipay_sandbox.state()["faults"] == []
    assert [c["id"] for c in plugipay_sandbox.state()["customers"]] == [customer["id"]]


def test_page_iterator_reads_every_page(api):
    ids = [api.create_customer({"email": f"p{i}@example.com"})["id"] for i in range(5)]
    assert [c["id"] for c in api.list_customers(limit=2, order="asc")] == ids


def test_writes_always_carry_an_idempotency_key(api, plugipay_sandbox, monkeypatch):
    sent = []
    original = requests.Session.request

    def spy(self, method, url, **kwargs):
        if "/api/v1/" in url:
            sent.append((kwargs.get("headers") or {}).get("Idempotency-Key"))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    api.create_customer({"email": "k@example.com"})
    list(api.list_customers())
    assert sent[0].startswith("idem_") and sent[1:] == [None]


def test_secrets_never_logged(api, caplog):
    caplog.set_level("DEBUG", logger="django_plugipay")
    api.create_customer({"email": "log@example.com"})
    assert "sk_test_sandbox" not in caplog.text
    assert any(getattr(r, "request_id", "").startswith("req_") for r in caplog.records)
