"""The engine's structure: status groups come from the spec tiers, and the package has no
import cycle."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.test import RequestFactory

from django_plugipay import services, specs
from django_plugipay.admin.display import StatusGroupFilter
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import CheckoutSession, Invoice, Refund, Subscription, WebhookEvent
from django_plugipay.resources import discover
from django_plugipay.services.events import validate_event
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event
from tests.factories import (
    CheckoutSessionFactory,
    InvoiceFactory,
    RefundFactory,
    SubscriptionFactory,
)
from tests.test_specs import post

PACKAGE = Path(specs.__file__).resolve().parent

# ── status groups ──────────────────────────────────────────────────────────────


def test_every_group_is_what_the_spec_tiers_say():
    """A group without its own statuses is every status outside the terminal tier; a group
    with them lists only such statuses (a terminal row is in no group)."""
    declared = {}
    for spec in specs.all_specs():
        unsettled = [s for tier in spec.tiers[:-1] for s in tier]
        for name, group in spec.groups.items():
            assert set(spec.group(name)) <= set(unsettled), (spec.name, name)
            assert not set(spec.group(name)) & spec.terminal, (spec.name, name)
            if group.statuses is None:
                assert list(spec.group(name)) == unsettled, (spec.name, name)
            declared[spec.name, name] = set(spec.group(name))
    assert declared == {
        ("checkout_session", "open"): {"open", "pending", "pending_review"},
        ("refund", "in_flight"): {"requested", "pending"},
        ("subscription", "live"): {"incomplete", "trialing", "active", "past_due", "paused"},
        ("subscription", "entitled"): {"trialing", "active", "past_due"},
        ("subscription", "may_have_moved"): {"incomplete", "past_due"},
        ("invoice", "unpaid"): {"open", "past_due"},
        ("payout", "locking"): {"pending", "in_transit"},
    }


def test_a_group_outside_the_unsettled_statuses_is_refused():
    with pytest.raises(TypeError, match="terminal tier"):

        class Broken(specs.ResourceSpec):
            name = "broken"
            model = Refund
            tiers = (("a",), ("b",))
            groups = {"done": specs.Group("Done", ("b",))}

    assert specs.spec_for("broken") is None


def rows_per_status(factory, model):
    field = model._meta.get_field("status")
    return {factory(status=value).pk: value for value, _label in field.choices}


GROUP_READERS = [
    (CheckoutSessionFactory, CheckoutSession, "open", lambda qs: qs.open()),
    (RefundFactory, Refund, "in_flight", lambda qs: qs.in_flight()),
    (SubscriptionFactory, Subscription, "live", lambda qs: qs.live()),
    (InvoiceFactory, Invoice, "unpaid", lambda qs: qs.unpaid()),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("factory", "model", "group", "read"), GROUP_READERS)
def test_querysets_model_properties_and_the_admin_filter_read_the_groups(
    factory, model, group, read
):
    rows = rows_per_status(factory, model)
    statuses = set(specs.status_group(model, group))
    wanted = {pk for pk, status in rows.items() if status in statuses}
    assert wanted and wanted != set(rows)
    assert set(read(model.objects.all()).values_list("pk", flat=True)) == wanted

    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/", {"status_group": group})
    request.user = None
    assert StatusGroupFilter in model_admin.get_list_filter(request)
    found = StatusGroupFilter(request, {"status_group": [group]}, model, model_admin)
    assert (group, specs.spec_for_model(model).groups[group].label) in found.lookup_choices
    assert set(found.queryset(request, model.objects.all()).values_list("pk", flat=True)) == (
        wanted
    )


@pytest.mark.django_db
def test_model_properties_read_the_groups():
    for status, _label in CheckoutSession._meta.get_field("status").choices:
        session = CheckoutSessionFactory.build(status=status)
        assert session.is_open == (status in specs.status_group(CheckoutSession, "open"))
    for status, _label in Invoice._meta.get_field("status").choices:
        invoice = InvoiceFactory.build(status=status)
        assert invoice.is_unpaid == (status in specs.status_group(Invoice, "unpaid"))


# ── no import cycle ────────────────────────────────────────────────────────────


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports, at module level or inside a function, by
    ``import``/``from … import`` (a name may be a submodule) or ``import_module("…")``;
    importing ``a.b.c`` also runs ``a.b`` (its ``__init__``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            targets = [str(node.args[0].value)]
        for target in targets:
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                # A module's own packages run before it: that is no cycle.
                if (
                    candidate in modules
                    and not name.startswith(candidate + ".")
                    and (candidate != name)
                ):
                    found.add(candidate)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if state.get(other) == 1:
                return [*stack[stack.index(other) :], other]
            if other not in state and (cycle := visit(other)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    """Layers go one way (views/admin/api/commands → services → engine → db/models/conf):
    counting imports inside functions and ``import_module`` calls too."""
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_one():
    graph = import_graph()
    graph["django_plugipay.specs"].add("django_plugipay.services.apply")
    assert find_cycle(graph) is not None


def test_resource_modules_import_no_service():
    graph = import_graph()
    for module, imported in graph.items():
        if module.startswith("django_plugipay.resources"):
            assert not {m for m in imported if m.startswith("django_plugipay.services")}, module


# ── a new resource touches no central list ────────────────────────────────────


@pytest.fixture
def widget_spec():
    """The ``tests.widgets`` package discovered as the app discovers its resources."""
    names = discover("tests.widgets")
    assert names == ["tests.widgets.widget"]
    module = sys.modules["tests.widgets.widget"]
    spec = specs.spec_for("widget") or specs.register(module.WidgetSpec())  # a second run
    yield spec
    specs.unregister("widget")


def test_the_app_discovers_every_module_of_its_resources_package():
    files = {p.stem for p in (PACKAGE / "resources").glob("*.py") if p.stem != "__init__"}
    assert {name.rpartition(".")[2] for name in discover()} == files
    assert {spec.name for spec in specs.all_specs()} >= {"customer", "refund", "invoice"}


def test_a_new_resource_is_one_module_the_engine_client_and_routing_pick_up(
    client, widget_spec, plugipay_sandbox
):
    from django_plugipay.client import ENDPOINTS, get_client

    module = sys.modules["tests.widgets.widget"]
    # The sandbox serves widgets as customers: its customer.created webhook for the widget
    # (the same row) is held, so it cannot land after the widget event below and change it.
    plugipay_sandbox.hold()
    # the client: calls from the module's endpoint entry
    assert ENDPOINTS["widget"].path == "/customers"
    remote = get_client().create_widget({"email": "w@example.com", "name": "W"})
    assert get_client().get_widget(remote["id"])["email"] == "w@example.com"

    # event routing and the engine: a widget.* event is validated and applied by its spec
    event = build_event("widget.created", {"id": remote["id"], "email": "old@example.com"})
    assert post(client, event).status_code == 200
    assert WebhookEvent.objects.get(event_id=event["id"]).status == "processed"
    row = module.Widget.objects.get(plugipay_id=remote["id"])
    assert row.email == "old@example.com"
    bad = build_event("widget.created", {"id": "cus_bad", "email": 7})
    with pytest.raises(InvalidObject, match="email must be a string"):
        validate_event(parse_event(json.dumps(bad).encode()))

    # sync, the status groups and the reference read it from the registry too
    assert services.sync_object(row).name == "W"
    assert "## `widget`" in specs.reference_markdown()


# ── statements compiled once ──────────────────────────────────────────────────


@pytest.mark.django_db
def test_lock_claim_and_recount_compile_once_per_connection(monkeypatch):
    from django.db import connection
    from django.db.models.sql.compiler import SQLCompiler
    from django.test.utils import CaptureQueriesContext

    from django_plugipay import db
    from django_plugipay.resources.refunds import recount_refunded
    from tests.factories import PaymentFactory, WebhookEventFactory

    compiled = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1) or original(self, *a, **k)
    )
    sessions = [CheckoutSessionFactory(), CheckoutSessionFactory()]
    events = [WebhookEventFactory(status="received"), WebhookEventFactory(status="received")]
    payments = [PaymentFactory(status="succeeded"), PaymentFactory(status="succeeded")]
    for payment in payments:
        RefundFactory(payment=payment, status="succeeded", amount=5)
    spec = specs.spec_for("checkout_session")

    def once(i):
        locked = db.lock(spec, plugipay_id=sessions[i].plugipay_id, only=("amount",))
        claimed = db.claim(
            WebhookEvent,
            events[i].pk,
            {"status": "processed"},
            increment=("attempts",),
            unless={"status": ("processed", "ignored")},
        )
        recount_refunded(payments[i])
        return locked, claimed

    with CaptureQueriesContext(connection) as first:
        locked, claimed = once(0)
    assert locked.pk == sessions[0].pk and locked.get_deferred_fields()
    assert claimed.status == "processed" and claimed.attempts == events[0].attempts + 1
    compiled.clear()
    with CaptureQueriesContext(connection) as second:
        locked, _claimed = once(1)
    assert compiled == []  # nothing compiled by the ORM: the statements were kept
    assert locked.pk == sessions[1].pk
    assert [q["sql"].split(" WHERE ")[0] for q in first.captured_queries] == [
        q["sql"].split(" WHERE ")[0] for q in second.captured_queries
    ]
    lock_sql = first.captured_queries[0]["sql"]
    assert "ORDER BY" not in lock_sql and lock_sql.count(",") == 1  # id, amount
    payments[1].refresh_from_db()
    assert payments[1].amount_refunded == 5


def test_every_model_module_is_imported_without_a_list():
    import pkgutil

    from django_plugipay import models

    for info in pkgutil.iter_modules(models.__path__):
        assert f"django_plugipay.models.{info.name}" in sys.modules, info.name


def test_the_client_table_makes_real_methods_and_keeps_hand_written_ones():
    from unittest import mock

    from django_plugipay.client import ENDPOINTS, PlugipayClient, endpoint

    assert "get_customer" in vars(PlugipayClient) and "list_plans" in vars(PlugipayClient)
    assert "cancel_checkout_session" in vars(PlugipayClient)
    with mock.patch.object(PlugipayClient, "get_refund", return_value={"id": "rfd_1"}):
        assert PlugipayClient(base_url="http://127.0.0.1:9", api_key="k").get_refund("x")
    with pytest.raises(ValueError, match="written by hand"):
        endpoint("webhook_endpoint", "/webhooks", "get", "list")  # list_webhook_endpoints
    with pytest.raises(ValueError, match="unknown operations"):
        endpoint("gizmo", "/gizmos", "delete")
    assert "webhook_endpoint" not in ENDPOINTS and "get_webhook_endpoint" not in vars(
        PlugipayClient
    )
