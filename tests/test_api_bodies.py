"""A form or multipart body in a charset the sender names (utf-7 makes lone surrogates,
punycode cannot decode) is a 400, as a JSON body is, never a 500."""

import pytest

from django_plugipay.models import Refund
from tests.factories import PaymentFactory
from tests.test_api import API, client_for, staff_with
from tests.test_api_fuzz import counts, manager_and_payout, upstream  # noqa: F401

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded; charset=utf-7"
MULTIPART = "multipart/form-data; boundary=BOUNDARY; charset=utf-7"


def multipart(name, value):
    return (
        b"--BOUNDARY\r\n"
        b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value + b"\r\n"
        b"--BOUNDARY--\r\n"
    )


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/payments/{pay}/refunds/", FORM, b"reason=+2AA-"),  # "\ud800" in UTF-7
        ("/payouts/po_fuzz1/move/", FORM, b"status=+3/8-"),  # "\udfff"
        ("/payments/{pay}/refunds/", MULTIPART, multipart(b"reason", b"+2AA-")),
        ("/payouts/po_fuzz1/move/", MULTIPART, multipart(b"status", b"+3/8-")),
        ("/payments/{pay}/refunds/", FORM.replace("utf-7", "punycode"), b"reason=duplicate"),
    ],
)
@pytest.mark.usefixtures("manager_and_payout")
def test_a_form_body_a_sender_encodes_is_never_a_500(path, content_type, body):
    payment = PaymentFactory()
    client = client_for(staff_with("manage_payout", "view_payout", "refund_payment"))
    client.raise_request_exception = False
    before = counts()
    response = client.post(
        API + path.format(pay=payment.plugipay_id), body, content_type=content_type
    )
    if "punycode" in content_type and response.status_code == 201:
        return  # Django 6.1 reads this ASCII form as it is, whatever its charset: a valid request
    assert response.status_code == 400, (response.status_code, response.content[:200])
    assert counts() == before


def test_a_body_over_djangos_limits_is_a_json_answer(settings):
    """DATA_UPLOAD_MAX_MEMORY_SIZE and DATA_UPLOAD_MAX_NUMBER_FIELDS still hold through the
    strict parsers, and are answered in JSON (413, 400), not Django's HTML 400 page."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    payment = PaymentFactory()
    client = client_for(staff_with("refund_payment"))
    client.raise_request_exception = False
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    big = {"reason": "duplicate", "description": "x" * 20_000}
    response = client.post(url, big, format="json")
    assert response.status_code == 413 and response.json()["detail"], response.content[:200]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    fields = "&".join(f"k{i}=v" for i in range(1_500))
    response = client.post(url, fields, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.json()["detail"], response.content[:200]
    assert not Refund.objects.exists()


@pytest.mark.parametrize(
    ("headers", "english", "indonesian"),
    [
        ({}, "the CSRF token is missing", "token CSRF tidak ada"),
        (
            {"HTTP_X_CSRFTOKEN": "x" * 32},
            "the CSRF token is not the one of this session",
            "token CSRF bukan milik sesi ini",
        ),
    ],
)
def test_a_csrf_refusal_is_said_in_the_requests_language(headers, english, indonesian):
    """A signed-in browser's POST without a valid CSRF token is refused (403) as DRF refuses
    it, in the request's language: DRF's "CSRF Failed: …" is English only."""
    from django.utils import translation
    from rest_framework.test import APIClient

    payment = PaymentFactory()
    user = staff_with("refund_payment")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = "y" * 32
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    for language, words in (("en", english), ("id", indonesian)):
        with translation.override(language):
            response = client.post(
                url, {"reason": "duplicate", "amount": 1}, format="json", **headers
            )
        assert response.status_code == 403, response.content[:200]
        assert words in response.json()["detail"], (language, response.json())
    assert not Refund.objects.exists()


def test_a_body_that_is_not_json_is_said_where_in_the_requests_language():
    """Python's JSON parser says what it expected in English ("Expecting value"): the answer
    gives where the body stops being JSON, in the request's language."""
    from django.utils import translation

    payment = PaymentFactory()
    client = client_for(staff_with("refund_payment"))
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    with translation.override("id"):
        response = client.post(url, b'{\n "reason": }', content_type="application/json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert (
        detail == "Kesalahan penguraian - isi permintaan bukan JSON yang valid (baris 2, kolom 12)."
    ), detail
    assert not Refund.objects.exists()


@pytest.mark.parametrize(
    "reason",
    [
        "CSRF token from POST has incorrect length.",
        "CSRF token from the 'X-Csrftoken' HTTP header has invalid characters.",
        "CSRF token from POST incorrect.",
    ],
)
def test_every_reason_django_gives_for_a_bad_csrf_token_is_translated(reason):
    from django.utils import translation

    from django_plugipay.api.drf_messages import csrf_failure

    with translation.override("id"):
        said = csrf_failure(f"CSRF Failed: {reason}")
    assert said == "Permintaan gagal dalam pemeriksaan CSRF: token CSRF bukan milik sesi ini.", said
