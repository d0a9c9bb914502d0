"""What an API client sends never makes a 5xx: NUL characters, times out of range."""

import pytest
from django.test import override_settings
from django.utils import translation

pytest.importorskip("rest_framework")

from rest_framework.test import APIClient

from tests.factories import CustomerFactory, PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db
API = "/plugipay/api"


def buyer_client():
    user = UserFactory()
    PaymentFactory(checkout_session__customer=CustomerFactory(user=user))
    client = APIClient()
    client.force_authenticate(user)
    client.raise_request_exception = False  # see the answer a real client gets
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/checkout-sessions/%00/",
        "/payments/%00/",
        "/refunds/%00/",
        "/subscriptions/%00/",
        "/receipts/%00/",
    ],
)
def test_a_nul_in_a_path_id_is_not_a_500(path):
    """PostgreSQL: DataError "PostgreSQL text fields cannot contain NUL (0x00) bytes"."""
    assert buyer_client().get(API + path).status_code < 500


@pytest.mark.parametrize("value", ["\x00", "succeeded\x00"])
def test_a_nul_in_the_status_filter_is_not_a_500(value):
    assert buyer_client().get(API + "/payments/", {"status": value}).status_code < 500


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_an_out_of_range_time_filter_is_not_a_500(name, value):
    assert buyer_client().get(API + "/payments/", {name: value}).status_code < 500


@pytest.mark.parametrize(
    "position",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-01-01T00:00:00+99:00"],
)
@pytest.mark.parametrize("path", ["/payments/", "/invoices/", "/receipts/", "/payouts/"])
def test_a_cursor_at_a_time_out_of_range_is_not_a_500(path, position):
    """A hand-made cursor whose time has no UTC year (OverflowError in the query) is a 404."""
    import base64
    from urllib.parse import urlencode

    from tests.test_api import client_for, staff_with

    user = staff_with("view_payment", "view_payout", "view_receipt", "view_invoice")
    PaymentFactory(checkout_session__customer=CustomerFactory(user=user))
    client = client_for(user)
    client.raise_request_exception = False
    for reverse in ("0", "1"):
        cursor = base64.b64encode(urlencode({"p": position, "r": reverse}).encode()).decode()
        assert client.get(API + path, {"cursor": cursor}).status_code == 404


KEYS = ["tab\t", "é", "\x01", "a\tb", " lead", "trail ", "\xff" * 10, "k" * 61, "日本", "a\u2028b"]


@pytest.mark.parametrize("key", KEYS)
def test_any_idempotency_key_makes_one_refund_plugipay_makes(plugipay_sandbox, key):
    """A key no HTTP header carries as written (a tab, a trailing space, non-ASCII) still
    makes one refund, sent and made (not left requested, its signature refused)."""
    from django_plugipay.models import Refund
    from tests.test_api import client_for, staff_with

    payment = plugipay_sandbox.paid_payment(amount=100_000)
    client = client_for(staff_with("refund_payment"))
    client.raise_request_exception = False
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    body = {"amount": 1000, "reason": "duplicate"}
    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert (first.status_code, again.status_code) == (201, 200)
    refund = Refund.objects.get()
    assert refund.plugipay_id and refund.status == "succeeded", refund.failure_message


@pytest.mark.parametrize("key", KEYS)
def test_any_idempotency_key_makes_one_payout(plugipay_sandbox, key):
    from django_plugipay.models import Payout
    from tests.test_api import client_for, staff_with
    from tests.test_money_out import save_bank_account

    plugipay_sandbox.paid_payment(amount=300_000)
    save_bank_account()
    client = client_for(staff_with("manage_payout", "view_payout"))
    client.raise_request_exception = False
    first = client.post(
        f"{API}/payouts/", {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    again = client.post(
        f"{API}/payouts/", {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert Payout.objects.get().plugipay_id


def test_a_service_call_with_any_key_sends_one_the_header_carries_the_same_each_time():
    from django_plugipay.client import header_key

    for key in KEYS:
        sent = header_key(key)
        assert sent == header_key(key) and sent.isascii() and sent.isprintable()
        assert sent == sent.strip() and len(sent) <= 255
    assert header_key("idem_0f3a") == "idem_0f3a"  # a key a header carries goes as it is


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize(
    "path",
    [
        "/payments/pay_1/nope/",
        "/payouts/po_1/move/again/",
        "/refunds/",
        "/receipts/rct_1/%E2%80%A8/",
        "/schema/v2/",
    ],
)
def test_a_url_under_the_api_that_names_no_endpoint_is_a_json_404(method, path):
    """A frontend reads JSON: not the project's HTML 404 page, for anyone (signed in or not)."""
    for client in (buyer_client(), APIClient()):
        response = getattr(client, method)(API + path)
        assert response.status_code == 404, response.content
        assert response["Content-Type"] == "application/json"
        assert response.json()["detail"]


def test_a_slashless_url_is_sent_to_its_endpoint_or_told_it(settings):
    """A GET is redirected to the endpoint's URL (as APPEND_SLASH does); a POST, whose body a
    redirect would lose (and which APPEND_SLASH makes an HTML error under DEBUG), is a JSON
    404 naming the URL to send it to."""
    settings.DEBUG = True
    client = buyer_client()
    response = client.get(API + "/payments", {"page_size": 5})
    assert response.status_code == 301
    assert response["Location"].endswith("/payments/?page_size=5")
    response = client.post(API + "/checkout-sessions", {"reference": "kopi"}, format="json")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "/plugipay/api/checkout-sessions/" in response.json()["detail"]
    assert client.get(API + "/payments/pay_1/nope").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "status", "indonesian"),
    [
        ("get", "/payments/?cursor=zz", 404, "Kursor tidak valid"),
        ("get", "/payments/pay_nope/", 404, "Data tidak ditemukan."),
        ("get", "/checkout-sessions/cs_nope/", 404, "Data tidak ditemukan."),
        ("delete", "/payments/", 405, 'Metode "DELETE" tidak diizinkan.'),
    ],
)
def test_the_apis_errors_speak_the_active_language(method, path, status, indonesian):
    """DRF's own Indonesian leaves these in English; Django's 404 names the model class."""
    client = buyer_client()
    with translation.override("id"):
        response = getattr(client, method)(API + path)
    assert response.status_code == status and response.json()["detail"] == indonesian


def test_a_json_parse_error_speaks_the_active_language():
    from tests.test_api import client_for, staff_with

    payment = PaymentFactory()
    with translation.override("id"):
        response = client_for(staff_with("refund_payment")).post(
            f"{API}/payments/{payment.plugipay_id}/refunds/",
            b'{"reason": ',
            content_type="application/json",
        )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Kesalahan penguraian - isi permintaan bukan")


def test_the_json_404_speaks_the_active_language():
    with translation.override("id"):  # as LocaleMiddleware sets it
        response = APIClient().get(API + "/payments/pay_1/nope/")
    assert response.json()["detail"] == "Tidak ada endpoint API dengan URL ini."


def test_the_schemas_paths_resolve_under_its_server():
    """A client generated from the schema calls the API where the project includes it."""
    from django.urls import resolve

    schema = buyer_client().get(API + "/schema/", {"format": "json"}).json()
    [server] = schema["servers"]
    assert server["url"] == API + "/"
    for path in schema["paths"]:
        concrete = server["url"].rstrip("/") + path.replace("{id}", "x1")
        assert resolve(concrete).func.view_class.__name__ != "NoSuchEndpoint", concrete


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"status": "bogus"}, "status"),
        ({"status": "SUCCEEDED"}, "status"),
        ({"created_after": "zz"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
    ],
)
def test_a_filter_that_is_no_value_is_a_400_naming_it(query, named):
    """Not an empty page (a status that is none) nor a bare list of messages (a bad time)."""
    response = buyer_client().get(API + "/payments/", query)
    assert response.status_code == 400 and list(response.json()) == [named], response.json()


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.urls_shared_api_prefix")
def test_the_projects_own_endpoint_under_the_apis_prefix_still_answers(client):
    """A project mounting the API under its own ``api/`` keeps its endpoints there: the API
    answers its JSON 404 for URLs of its own resources only."""
    response = client.get("/api/orders/")
    assert response.status_code == 200, (response.status_code, response.content[:120])
    assert client.get("/api/payments/pay_1/nope/")["Content-Type"] == "application/json"


def test_an_idempotency_key_holding_a_nul_is_not_a_5xx(plugipay_sandbox):
    """PostgreSQL refuses a NUL in a text comparison: the key is digested, never compared."""
    from tests.test_api import client_for, staff_with

    payment = plugipay_sandbox.paid_payment(amount=100_000)
    client = client_for(staff_with("refund_payment"))
    client.raise_request_exception = False
    response = client.post(
        f"{API}/payments/{payment.plugipay_id}/refunds/",
        {"amount": 1000, "reason": "duplicate"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k\x00",
    )
    assert response.status_code == 201, response.status_code


@pytest.mark.parametrize(
    ("body", "content_type", "start"),
    [
        (b"null", "application/json", "Kesalahan penguraian - isi permintaan bernilai null"),
        (b"x", "multipart/form-data", "Kesalahan penguraian - isi permintaan multipart"),
    ],
)
def test_a_body_drf_cannot_read_is_said_in_the_active_language(body, content_type, start):
    from tests.test_api import client_for, staff_with

    payment = PaymentFactory()
    with translation.override("id"):
        response = client_for(staff_with("refund_payment")).post(
            f"{API}/payments/{payment.plugipay_id}/refunds/", body, content_type=content_type
        )
    assert response.status_code == 400 and response.json()["detail"].startswith(start), (
        response.json()
    )
