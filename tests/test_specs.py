"""Resource specs: validation of signed events, the registry, and what a new resource costs."""

import json
import os
import re
import string
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_plugipay import services, specs
from django_plugipay.admin.display import badge
from django_plugipay.models import Customer, WebhookEvent
from django_plugipay.resources.customers import CUSTOMER
from django_plugipay.resources.refunds import REFUND_REFERENCE_KEY
from django_plugipay.testing import build_event, signed_webhook
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db
SECRET = "whsec_plugipay_testing"
URL = "/plugipay/webhook/"
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "resources.md"

#: every spec's example (a valid object), by resource
VALID = {spec.name: dict(spec.example) for spec in specs.all_specs()}


def post(client, payload):
    body, headers = signed_webhook(payload, SECRET)
    return client.post(URL, body, content_type="application/json", headers=headers)


def test_every_spec_has_a_valid_example_that_applies(client):
    names = [spec.name for spec in specs.all_specs()]  # in the lock order
    assert all(VALID[name] for name in names), "a spec without an example"
    for name in names:
        response = post(client, build_event(f"{name}.updated", VALID[name]))
        assert response.status_code == 200, (name, response.content)
    assert WebhookEvent.objects.filter(status="processed").count() == len(names)
    assert set(names) >= {"customer", "checkout_session", "payment", "refund", *BILLING}


BILLING = ("plan", "price", "subscription", "invoice")


# ── wrong types for every field the app reads ───────────────────────────────────

JUNK = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    # keys without NUL or lone surrogates: either anywhere in a body is refused earlier (400,
    # nothing stored)
    st.dictionaries(
        st.text(
            st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=3
        ),
        st.integers(),
        min_size=1,
        max_size=2,
    ),
)
WRONG = {
    specs.Text: st.one_of(JUNK, st.integers()),
    specs.OptionalText: st.one_of(JUNK, st.integers()),
    specs.Integer: st.one_of(
        JUNK,
        st.sampled_from(["NaN", "100", "1e3", "", " "]).filter(bool),
        st.integers(max_value=-1),
        st.integers(min_value=2**63),
    ),
    specs.Currency: st.one_of(
        JUNK,
        st.integers(),
        st.text(alphabet=string.ascii_letters, min_size=1, max_size=6).filter(
            lambda v: len(v) != 3
        ),
        st.sampled_from(["ID1", "$$$", "Rp."]),
    ),
    specs.Object: st.one_of(st.booleans(), st.integers(), st.lists(st.integers(), min_size=1)),
    specs.Boolean: st.one_of(
        st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.just("true"), JUNK
    ).filter(lambda v: not isinstance(v, bool) and v != []),
    specs.List: st.one_of(
        st.booleans(), st.integers(), st.just("a"), st.dictionaries(st.just("k"), st.integers())
    ),
    specs.Timestamp: st.one_of(
        JUNK, st.integers(), st.sampled_from(["yesterday", "2026-13-45T00:00:00Z", "12:00"])
    ),
}


def readable_fields():
    """(resource, keys read, strategy of wrong values) for every field any spec reads."""
    cases = []
    for spec in specs.all_specs():
        if spec.name not in VALID:
            continue
        for spec_field in [*spec.fields.values(), *spec.refs.values()]:
            # a resource's own kind is checked as the kind it refines (LastFour as Text)
            strategy = next(WRONG[k] for k in type(spec_field.kind).__mro__ if k in WRONG)
            cases.append((spec.name, spec_field.keys, strategy))
        cases.append((spec.name, ("id",), st.one_of(JUNK, st.integers(), st.just("x" * 65))))
        if spec.tiers:  # a resource with open statuses stores an unknown string as sent
            wrong = JUNK if spec.open_statuses else st.one_of(JUNK, st.sampled_from(["weird"]))
            cases.append((spec.name, ("status",), wrong))
    return cases


CASES = readable_fields()


def test_the_cases_cover_every_field_of_every_spec():
    covered = {(name, keys[0]) for name, keys, _ in CASES}
    for spec in specs.all_specs():
        for spec_field in [*spec.fields.values(), *spec.refs.values()]:
            assert (spec.name, spec_field.keys[0]) in covered
    assert len(CASES) >= 30


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=st.sampled_from(CASES), data=st.data(), style=st.sampled_from(["sdk", "docs"]))
def test_a_wrong_type_in_any_field_is_422_and_stored_failed(client, case, data, style):
    resource, keys, strategy = case
    value = data.draw(strategy)
    obj = {**VALID[resource]}
    for key in keys:
        obj.pop(key, None)
    obj[data.draw(st.sampled_from(keys))] = value
    event = build_event(f"{resource}.updated", obj, style=style)
    response = post(client, event)
    assert response.status_code == 422, (keys, value, response.content)
    assert response.json()["error"]["code"] == "invalid_object"
    stored = WebhookEvent.objects.get(event_id=event["id"])
    assert stored.status == "failed"
    assert stored.last_error.startswith("Invalid object: ")
    assert any(key in stored.last_error for key in keys), stored.last_error
    WebhookEvent.objects.all().delete()


@pytest.mark.parametrize(
    ("resource", "change", "message"),
    [
        ("payment", {"amount": "NaN"}, "amount must be an integer, not a string"),
        ("payment", {"amount": True}, "amount must be an integer, not a boolean"),
        ("payment", {"amount": -1}, "amount must be between 0 and"),
        ("payment", {"amount": 12.5}, "amount must be an integer, not a number"),
        ("refund", {"amount": 0}, "amount must be between 1 and"),
        ("checkout_session", {"currency": "rupiah"}, "currency must be a three-letter"),
        ("checkout_session", {"metadata": ["order"]}, "metadata must be an object, not a list"),
        ("customer", {"id": 42}, "id must be a string, not a number"),
        ("customer", {"id": None}, "the customer object has no id"),
        ("refund", {"metadata": {REFUND_REFERENCE_KEY: 7}}, "must be a string"),
    ],
)
def test_named_invalid_objects(client, resource, change, message):
    PaymentFactory(plugipay_id="pay_v", amount=5000)
    event = build_event(f"{resource}.updated", {**VALID[resource], **change})
    response = post(client, event)
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]
    assert message in WebhookEvent.objects.get(event_id=event["id"]).last_error


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("occurredAt", 5, "occurredAt must be an ISO-8601 time string, not a number"),
        ("occurredAt", [], "occurredAt must be an ISO-8601 time string, not a list"),
        ("occurredAt", "yesterday", "occurredAt must be an ISO-8601 time"),
        ("createdAt", True, "createdAt must be an ISO-8601 time string, not a boolean"),
    ],
)
def test_a_wrong_envelope_time_is_422_and_stored_failed(client, key, value, message):
    event = build_event("customer.created", VALID["customer"], style="sdk")
    event.pop("occurredAt")
    event[key] = value
    response = post(client, event)
    assert response.status_code == 422
    assert message in WebhookEvent.objects.get(event_id=event["id"]).last_error


def test_unknown_kinds_with_a_wrong_time_are_422_too(client):
    event = build_event("widget.created", {"id": "w_1"})
    event["occurredAt"] = {"t": 1}
    assert post(client, event).status_code == 422
    assert WebhookEvent.objects.get().status == "failed"


def test_celery_mode_validates_before_queueing(
    client, settings, django_capture_on_commit_callbacks
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    event = build_event("refund.updated", {**VALID["refund"], "amount": "1000"})
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, event)
    assert response.status_code == 422 and not callbacks
    stored = WebhookEvent.objects.get()
    assert stored.status == "failed" and "amount must be an integer" in stored.last_error


def test_a_list_where_the_object_should_be_is_422(client):
    event = build_event("payment.succeeded", {})
    event["data"] = {"object": [VALID["payment"]]}
    response = post(client, event)
    assert response.status_code == 422
    assert WebhookEvent.objects.get().status == "failed"


@pytest.mark.parametrize(
    "junk",
    [b'{"x": NaN}', b'{"x": "a\\u0000b"}', b"[" * 100_000, b"[" * 40 + b"]" * 40, b"-Infinity"],
)
def test_bodies_the_database_cannot_store_are_400_and_store_nothing(client, junk):
    body = b'{"id": "evt_junk", "type": "payment.succeeded", "data": ' + junk + b"}"
    body, headers = signed_webhook(body, SECRET)
    response = client.post(URL, body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_invalid_event_is_replayed_after_a_fix(client, signal_log):
    """An invalid object stays failed on redelivery; once the spec accepts it, replay applies
    it (here the "fix" is a spec that reads the field from where this sender puts it)."""
    event = build_event("customer.created", {"id": "cus_fix", "email": ["a@example.com"]})
    assert post(client, event).status_code == 422
    assert post(client, event).status_code == 422
    stored = WebhookEvent.objects.get()
    assert stored.status == "failed" and stored.attempts == 2
    assert "email must be a string, not a list" in stored.last_error
    fixed = specs.Field(specs.Text(), ("primaryEmail",))
    original = CUSTOMER.fields["email"]
    CUSTOMER.fields["email"] = fixed
    try:
        call_command("plugipay_replay", stdout=open(os.devnull, "w"))  # noqa: SIM115
    finally:
        CUSTOMER.fields["email"] = original
    stored.refresh_from_db()
    assert stored.status == "processed" and stored.attempts == 3
    assert Customer.objects.filter(plugipay_id="cus_fix").exists()


def test_failed_event_shows_its_validation_error_in_the_admin(admin_client, client):
    event = build_event("payment.failed", {**VALID["payment"], "amount": "NaN"})
    post(client, event)
    stored = WebhookEvent.objects.get()
    page = admin_client.get(f"/admin/django_plugipay/webhookevent/{stored.pk}/change/")
    assert page.status_code == 200
    assert "amount must be an integer, not a string" in page.content.decode()


# ── the registry: a new resource is one spec ─────────────────────────────────


class Gadget(Customer):
    """A test-only resource kept in the customers table (a proxy: no migration)."""

    class Meta:
        proxy = True
        app_label = "django_plugipay"


@pytest.fixture
def gadget_spec():
    class GadgetSpec(specs.ResourceSpec):
        name = "gadget"
        model = Gadget
        lock_rank = 40
        fields = {
            "email": specs.field(specs.Text(), "email"),
            "name": specs.field(specs.Text(), "label", "name"),
        }
        refs = {"updated_at": specs.field(specs.Timestamp(), "updatedAt")}

        def fetch(self, plugipay_id):  # the sandbox serves gadgets as customers
            from django_plugipay.client import get_client

            return get_client().get_customer(plugipay_id)

    yield specs.spec_for("gadget")
    specs.unregister("gadget")


def test_a_new_resource_is_dispatchable_syncable_and_documented(
    client, gadget_spec, plugipay_sandbox
):
    """Declaring a spec is the one place to touch: no central list names "gadget"."""
    from django_plugipay.client import get_client

    plugipay_sandbox.hold()  # the sandbox's own customer.created stays undelivered
    remote = get_client().create_customer({"email": "g@example.com", "name": "G"})
    event = build_event("gadget.created", {"id": remote["id"], "email": "old@example.com"})
    assert post(client, event).status_code == 200
    assert WebhookEvent.objects.get(event_id=event["id"]).status == "processed"
    row = Gadget.objects.get(plugipay_id=remote["id"])
    assert row.email == "old@example.com"

    synced = services.sync_object(row)
    assert synced.email == "g@example.com" and synced.name == "G"

    assert "## `gadget`" in specs.reference_markdown()
    assert "`label`, `name`" in specs.reference_markdown()
    assert gadget_spec in list(specs.all_specs())


CENTRAL = [
    "services/events.py",
    "services/reconcile.py",
    "admin/actions.py",
    "admin/display.py",
    "specs.py",
    "views.py",
]


@pytest.mark.parametrize("module", CENTRAL)
def test_the_code_that_reads_the_registry_names_no_resource(module):
    """Dispatch, sync, reconciliation, badges and the reference list no resource by name:
    the one place a resource is named is its spec (and its model, admin and tests)."""
    source = (Path(specs.__file__).parent / module).read_text(encoding="utf-8")
    for spec in specs.all_specs():
        named = re.search(rf'(?<!_\()"{spec.name}"', source)  # a label _("…") is no list
        assert named is None, (module, spec.name)
        assert f"{spec.model.__name__}," not in source, (module, spec.model.__name__)


def test_without_its_spec_the_resource_is_ignored(client):
    event = build_event("gadget.created", {"id": "gad_1"})
    assert post(client, event).status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"


def test_badges_take_their_colour_from_the_specs():
    assert "#047857" in badge("completed") and "#047857" in badge("succeeded")
    assert "#b91c1c" in badge("failed")
    assert "#b45309" in badge("pending_review")
    assert "#1d4ed8" in badge("open") and "#1d4ed8" in badge("requested")
    assert "#6b7280" in badge("expired")


def test_the_resources_reference_is_generated_from_the_specs():
    """Regenerate with ``PLUGIPAY_WRITE_REFERENCE=1 pytest tests/test_specs.py``."""
    expected = specs.reference_markdown()
    if os.environ.get("PLUGIPAY_WRITE_REFERENCE"):
        REFERENCE.write_text(expected, encoding="utf-8")
    assert REFERENCE.read_text(encoding="utf-8") == expected


def test_reference_lists_every_resource_and_signal():
    text = REFERENCE.read_text(encoding="utf-8")
    for name in ("customer", "checkout_session", "payment", "refund"):
        assert f"## `{name}`" in text
    for signal in ("checkout_session_completed", "payment_failed", "refund_succeeded"):
        assert f"`{signal}`" in text
    assert json.dumps("pending_review").strip('"') in text


# ── a spec reads what its class and model say now (nothing cached from an earlier read) ──


def test_a_status_added_to_a_spec_at_run_time_is_read():
    spec = specs.spec_for("refund")
    example = dict(spec.example)
    spec.read(example)
    original = type(spec).tiers
    type(spec).tiers = (*original[:-1], (*original[-1], "reversed"))
    try:
        values, _ = spec.read({**example, "status": "reversed"})
    finally:
        type(spec).tiers = original
    assert values["status"] == "reversed"


def test_a_column_length_changed_at_run_time_is_checked():
    spec = specs.spec_for("customer")
    example = dict(spec.example)
    spec.read(example)
    email = spec.model._meta.get_field("email")
    original, email.max_length = email.max_length, 5
    try:
        with pytest.raises(specs.InvalidObject):
            spec.read({**example, "email": "someone@example.com"})
    finally:
        email.max_length = original


def test_a_spec_field_named_by_a_foreign_key_column_is_read():
    class Unregistered(specs.ResourceSpec):  # no ``name`` in its body: not registered
        model = Customer
        fields = {"user_id": specs.field(specs.Integer(1), "userId")}

    spec = Unregistered()
    values, _ = spec.read({"id": "cus_column", "userId": 7})
    assert values["user_id"] == 7
