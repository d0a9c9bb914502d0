"""verify_signature and parse_event: pure functions, both dialects."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_plugipay.exceptions import InvalidPayload, SignatureError
from django_plugipay.webhooks import normalise_type, parse_event, sign_payload, verify_signature

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
        (VECTOR_HEADER, ["whsec_emulator"], 1750000301, "signature_stale"),
        (VECTOR_HEADER, ["whsec_emulator"], 1749999699, "signature_stale"),
        (VECTOR_HEADER, ["whsec_other"], 1750000000, "signature_invalid"),
    ],
)
def test_signature_error_codes(header, secrets, now, code):
    with pytest.raises(SignatureError) as info:
        verify_signature(VECTOR_BODY, header, secrets, now=now)
    assert info.value.code == code


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


@given(st.binary(max_size=300), st.text(max_size=80))
def test_verify_never_raises_anything_but_signature_error(body, header):
    with pytest.raises(SignatureError):
        verify_signature(body, header, ["whsec_x"])
