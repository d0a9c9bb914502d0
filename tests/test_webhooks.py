"""verify_signature and parse_event: pure functions, both dialects."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_plugipay.exceptions import InvalidPayload, SignatureError
from django_plugipay.webhooks import (
    MAX_HEADER_LENGTH,
    MAX_HEADER_PARTS,
    normalise_type,
    parse_event,
    sign_payload,
    verify_signature,
)
from tests.strategies import signature_headers

VECTOR_BODY = (
    b'{"id":"evt_1","type":"plugipay.checkout_session.completed.v1","accountId":'
    b'"acc_1","occurredAt":"2026-01-01T00:00:00Z","data":{"object":{"id":"cs_1",'
    b'"status":"completed"}}}'
)
VECTOR_HEADER = "t=1750000000,v1=736284b4d959cb51690a14e425e41c8227f0b23000da7ab1346ea9d624a93a0c"


def test_api_md_vector_passes():
    assert (
        verify_signature(VECTOR_BODY, VECTOR_HEADER, ["whsec_emulator"], now=1750000000)
        == 1750000000
    )
    assert sign_payload(VECTOR_BODY, "whsec_emulator", 1750000000) == VECTOR_HEADER


@pytest.mark.parametrize(
    ("header", "secrets", "now", "code"),
    [
        (None, ["whsec_emulator"], 1750000000, "signature_missing"),
        ("", ["whsec_emulator"], 1750000000, "signature_missing"),
        (VECTOR_HEADER, [], 1750000000, "signature_missing"),
        ("v1=abc", ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=abc,v1=abc", ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=1750000000", ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=-1750000000,v1=" + "0" * 64, ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=1750000000,v1=00", ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=1750000000,v1=" + "g" * 64, ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=1750000000,v1=" + "0" * 65, ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=\u00b2,v1=" + "0" * 64, ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=\u0661\u0662,v1=" + "0" * 64, ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=1,t=1750000000,v1=" + "0" * 64, ["whsec_emulator"], 1750000000, "signature_malformed"),
        ("t=1750000000,v1=" + "0" * 64, ["whsec_emulator"], 1750000000, "signature_invalid"),
        (VECTOR_HEADER, ["whsec_emulator"], 1750000301, "signature_stale"),
        (VECTOR_HEADER, ["whsec_emulator"], 1749999699, "signature_stale"),
        (VECTOR_HEADER, ["whsec_other"], 1750000000, "signature_invalid"),
    ],
)
def test_signature_error_codes(header, secrets, now, code):
    with pytest.raises(SignatureError) as info:
        verify_signature(VECTOR_BODY, header, secrets, now=now)
    assert info.value.code == code


def test_a_400_digit_timestamp_is_malformed_not_an_overflow():
    """``t=<400 digits>`` used to reach ``abs(now - t)`` and raise OverflowError (a 500)."""
    with pytest.raises(SignatureError) as info:
        verify_signature(VECTOR_BODY, "t=" + "9" * 400 + ",v1=00", ["whsec_emulator"])
    assert info.value.code == "signature_malformed"
    with pytest.raises(SignatureError) as info:
        verify_signature(VECTOR_BODY, "t=" + "9" * 400 + ",v1=" + "0" * 64, ["whsec_emulator"])
    assert info.value.code == "signature_malformed"


def test_header_length_and_part_count_are_bounded():
    signature = VECTOR_HEADER.split(",")[1]
    padded = "t=1750000000," + ",".join(["v0=x"] * (MAX_HEADER_PARTS - 2)) + "," + signature
    assert verify_signature(VECTOR_BODY, padded, ["whsec_emulator"], now=1750000000)
    for header in (
        "t=1750000000," + ",".join(["v0=x"] * MAX_HEADER_PARTS) + "," + signature,
        VECTOR_HEADER + ", " + " " * MAX_HEADER_LENGTH,
    ):
        with pytest.raises(SignatureError) as info:
            verify_signature(VECTOR_BODY, header, ["whsec_emulator"], now=1750000000)
        assert info.value.code == "signature_malformed"


def test_every_secret_is_tried_for_rotation():
    assert verify_signature(
        VECTOR_BODY, VECTOR_HEADER, ["whsec_new", "whsec_emulator"], now=1750000000
    )


def test_whitespace_and_unknown_keys_tolerated():
    header = " t=1750000000 , v0=zz, v1=" + VECTOR_HEADER.split("v1=")[1]
    assert verify_signature(VECTOR_BODY, header, ["whsec_emulator"], now=1750000000)


def test_tampered_body_fails():
    with pytest.raises(SignatureError):
        verify_signature(
            VECTOR_BODY.replace(b"cs_1", b"cs_2"), VECTOR_HEADER, ["whsec_emulator"], now=1750000000
        )


SDK = {
    "id": "evt_1",
    "type": "plugipay.checkout_session.cancelled.v1",
    "accountId": "acc_1",
    "mode": "test",
    "occurredAt": "2026-01-01T00:00:00Z",
    "data": {"object": {"id": "cs_1", "status": "cancelled"}},
}
DOCS = {
    "id": "evt_1",
    "type": "checkout_session.canceled",
    "workspaceId": "ws_1",
    "createdAt": "2026-01-01T00:00:00Z",
    "data": {"id": "cs_1", "status": "canceled"},
    "previousAttributes": {"status": "open"},
}


def test_both_dialects_parse_to_the_same_event():
    sdk, docs = parse_event(json.dumps(SDK).encode()), parse_event(json.dumps(DOCS))
    for event in (sdk, docs):
        assert event.kind == "checkout_session.canceled" and event.object["id"] == "cs_1"
        assert event.occurred_at.year == 2026 and event.resource == "checkout_session"
    assert sdk.account_id == "acc_1" and docs.account_id == "ws_1"
    assert docs.previous_attributes == {"status": "open"} and sdk.mode == "test"
    with pytest.raises(TypeError):
        sdk.object["id"] = "x"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("plugipay.refund.succeeded.v1", "refund.succeeded"),
        ("plugipay.subscription.cancelled.v12", "subscription.canceled"),
        ("payment.succeeded", "payment.succeeded"),
    ],
)
def test_normalise_type(raw, kind):
    assert normalise_type(raw) == kind


@pytest.mark.parametrize("body", [b"not json", b"[1,2]", b'{"type": "x"}', b'{"id": 1}', b"\xff"])
def test_not_an_event(body):
    with pytest.raises(InvalidPayload):
        parse_event(body)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), signature_headers, st.floats(0, 2**34))
def test_verify_never_raises_anything_but_signature_error(body, header, now):
    # ``now`` is a float, as ``time.time()`` is: float minus a huge int is what overflowed.
    with pytest.raises(SignatureError):
        verify_signature(body, header, ["whsec_x"], now=now)
