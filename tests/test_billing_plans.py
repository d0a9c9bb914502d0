"""The plan catalog as code: ``services.ensure_plans`` and ``manage.py plugipay_plans``."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_plugipay import services
from django_plugipay.client import get_client
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Plan, Price
from tests.test_billing_member import in_threads

MEMBER = {
    "name": "Member",
    "description": "Members-only recipes.",
    "interval": "month",
    "trialDays": 7,
    "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 99_000, "taxMode": "inclusive"}],
}


def remote_plans():
    return list(get_client().list_plans(limit=100))


def test_ensure_plans_creates_once_then_changes_only_what_differs(plugipay_sandbox):
    [created] = services.ensure_plans(definitions={"member": MEMBER})
    assert created.action == "created" and created.plan.name == "Member"
    assert (
        created.plan.trial_days == 7 and created.plan.metadata["django_plugipay_plan"] == "member"
    )
    assert created.plan.portal_features["selfServeCancel"] is True  # the SDK's defaults
    price = created.plan.prices.get()
    assert (price.currency, price.unit_amount, price.tax_mode) == ("IDR", 99_000, "inclusive")

    [again] = services.ensure_plans(definitions={"member": MEMBER})
    assert again.action == "unchanged" and again.plan.pk == created.plan.pk
    assert len(remote_plans()) == 1 and Price.objects.count() == 1

    yearly = {"currency": "IDR", "model": "flat", "unitAmount": 990_000, "taxMode": "inclusive"}
    changed = {**MEMBER, "name": "Member+", "trialDays": 14, "prices": [yearly]}
    [updated] = services.ensure_plans(definitions={"member": changed})
    assert updated.action == "updated" and updated.plan.pk == created.plan.pk
    assert (updated.prices_added, updated.prices_deactivated) == (1, 1)
    assert updated.fixed_differences == ("trialDays",)
    updated.plan.refresh_from_db()
    assert updated.plan.name == "Member+"
    assert [(p.unit_amount, p.active) for p in updated.plan.prices.order_by("created_at")] == [
        (99_000, False),
        (990_000, True),
    ]
    [settled] = services.ensure_plans(definitions={"member": changed})
    assert settled.action == "unchanged" and len(remote_plans()) == 1

    # The old price listed again is a new price (the deactivated one stays as it is).
    [back] = services.ensure_plans(
        definitions={"member": {**changed, "prices": [yearly, *MEMBER["prices"]]}}
    )
    assert back.prices_added == 1 and back.plan.prices.filter(active=True).count() == 2


def test_portal_features_missing_on_either_side_count_as_false(plugipay_sandbox):
    """Plugipay stores all five flags; a definition listing two (as the tutorial's) is the same."""
    two = {**MEMBER, "portalFeatures": {"selfServeCancel": True, "updatePaymentMethod": True}}
    [created] = services.ensure_plans(definitions={"member": two})
    assert len(created.plan.portal_features) == 5  # the rest stored as false
    [again] = services.ensure_plans(definitions={"member": two})
    assert again.action == "unchanged" and again.fixed_differences == ()
    spelled_out = {**two["portalFeatures"], "selfServePause": False}
    [same] = services.ensure_plans(definitions={"member": {**two, "portalFeatures": spelled_out}})
    assert same.fixed_differences == ()
    [other] = services.ensure_plans(
        definitions={"member": {**two, "portalFeatures": {"selfServeCancel": True}}}
    )
    assert other.fixed_differences == ("portalFeatures",)


def test_archived_plan_is_replaced_by_a_new_one(plugipay_sandbox):
    [first] = services.ensure_plans(definitions={"member": MEMBER})
    get_client().request("POST", f"/plans/{first.plan.plugipay_id}/archive", json_body={})
    [second] = services.ensure_plans(definitions={"member": MEMBER})
    assert second.action == "created" and second.plan.pk != first.plan.pk
    assert len(remote_plans()) == 2


def test_two_deploys_at_once_create_one_plan(plugipay_sandbox):
    """Every write carries an idempotency key derived from what it writes."""
    results = in_threads(3, lambda: services.ensure_plans(definitions={"member": MEMBER}))
    assert len({r[0].plan.plugipay_id for r in results}) == 1
    assert len(remote_plans()) == 1 and Plan.objects.count() == 1


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ([], "must be a dict"),
        ({**MEMBER, "name": ""}, "'name' is required"),
        ({**MEMBER, "prices": []}, "'prices' must be a non-empty list"),
    ],
)
def test_a_malformed_definition_names_the_plan(plugipay_sandbox, definition, message):
    with pytest.raises(PlugipayError, match=message):
        services.ensure_plans(definitions={"member": definition})
    assert remote_plans() == []


def test_command_reads_the_setting_or_a_file(plugipay_sandbox, settings, tmp_path):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "PLANS": {"member": MEMBER}}
    out = StringIO()
    call_command("plugipay_plans", stdout=out)
    assert Plan.objects.count() == 1
    assert out.getvalue() == "member: created Member, active prices: 1\n"
    out = StringIO()
    call_command("plugipay_plans", stdout=out)
    assert out.getvalue() == "member: unchanged Member, active prices: 1\n"

    catalog = tmp_path / "plans.json"
    catalog.write_text(json.dumps({"plans": {"member": {**MEMBER, "trialDays": 3}}}))
    out = StringIO()
    call_command("plugipay_plans", "--file", str(catalog), stdout=out)
    assert "member: unchanged" in out.getvalue()
    assert "trialDays differ from the definition" in out.getvalue()

    catalog.write_text("{not json")
    with pytest.raises(CommandError, match="not a valid catalog"):
        call_command("plugipay_plans", "--file", str(catalog))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("plugipay_plans", "--file", str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="portalFeatures"):
        call_command(
            "plugipay_plans",
            "--file",
            str(_write(tmp_path, {"x": {**MEMBER, "portalFeatures": 1}})),
        )


def _write(tmp_path, plans):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(plans))
    return path


def test_command_without_plans_says_how_to_declare_them(plugipay_sandbox):
    out = StringIO()
    call_command("plugipay_plans", stdout=out)
    assert "No plans declared" in out.getvalue()
