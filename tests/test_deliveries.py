"""Durable receivers: recorded with the change, run after commit, retried, never run twice."""

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from django_plugipay import durable_receiver, services, signals
from django_plugipay.client import get_client
from django_plugipay.models import CheckoutSession, Delivery, Payment, WebhookEvent
from django_plugipay.services import _queue, deliveries
from tests.routers import LaggingReplica
from tests.test_tasks_mode import DOWN_BROKER


@pytest.fixture
def no_backoff(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_BACKOFF": 0}


def fails_first(times, runs):
    def receiver(sender, instance, event, delivery, **kwargs):
        runs.append((instance.pk, delivery.attempt, delivery.key))
        if delivery.attempt <= times:
            raise ConnectionError(f"SMTP server down (attempt {delivery.attempt})")

    return receiver


def replay_every_event(plugipay_sandbox):
    """Have Plugipay send every event again (``POST /events/replay``); its answers' codes."""
    ids = [e["id"] for e in plugipay_sandbox.events()]
    get_client().request("POST", "/events/replay", json_body={"eventIds": ids})
    plugipay_sandbox.flush()
    return answers(plugipay_sandbox)


def answers(plugipay_sandbox):
    """Every HTTP status the webhook answered to the sandbox's deliveries."""
    return [
        attempt["responseCode"]
        for d in plugipay_sandbox.state()["deliveries"]
        for attempt in d["attemptLog"]
    ]


def test_a_failing_receiver_is_retried_until_it_returns_and_never_run_again(
    plugipay_sandbox, no_backoff, durable, signal_log
):
    runs, others = [], []
    durable(signals.payment_succeeded, fails_first(2, runs), name="tests.flaky_email")
    durable(
        signals.payment_succeeded,
        lambda sender, instance, delivery, **kw: others.append(instance.pk),
        name="tests.other_durable",
    )

    payment = plugipay_sandbox.paid_payment()

    assert [attempt for _, attempt, _ in runs] == [1]  # after commit, in the webhook's request
    flaky = Delivery.objects.get(receiver="tests.flaky_email")
    assert flaky.status == "failed" and flaky.attempts == 1
    assert flaky.last_error == "ConnectionError: SMTP server down (attempt 1)"
    assert "Traceback" in flaky.last_traceback and "fails_first" not in flaky.last_error
    assert services.run_deliveries() == 1
    assert services.run_deliveries() == 1
    assert services.run_deliveries() == 0
    assert [attempt for _, attempt, _ in runs] == [1, 2, 3]
    assert {pk for pk, _, _ in runs} == {payment.pk}
    assert len({key for _, _, key in runs}) == 1
    flaky.refresh_from_db()
    assert flaky.status == "succeeded" and flaky.attempts == 3 and flaky.succeeded_at
    assert flaky.event.kind in ("checkout_session.completed", "payment.succeeded")
    # The other receivers of the signal ran once, the plain one inside the transaction.
    assert others == [payment.pk]
    assert signal_log.names().count("payment_succeeded") == 1

    # Replaying every event, reconciling and forcing a run change nothing.
    assert set(replay_every_event(plugipay_sandbox)) == {200}
    services.replay_failed_events(event_ids=WebhookEvent.objects.values_list("event_id", flat=True))
    services.reconcile(since=timezone.now() - dt.timedelta(days=1))
    assert services.run_deliveries(force=True) == 0
    assert len(runs) == 3 and others == [payment.pk]
    assert Delivery.objects.count() == 2


def test_a_receiver_that_keeps_failing_dies_after_max_attempts_and_the_webhook_is_2xx(
    plugipay_sandbox, no_backoff, settings, durable
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_MAX_ATTEMPTS": 3}
    runs = []
    durable(signals.payment_succeeded, fails_first(99, runs), name="tests.broken")

    payment = plugipay_sandbox.paid_payment()

    codes = answers(plugipay_sandbox)
    assert codes and all(200 <= code < 300 for code in codes)
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"  # never rolled back
    while services.run_deliveries():
        pass
    delivery = Delivery.objects.get()
    assert delivery.status == "dead" and delivery.attempts == 3 and len(runs) == 3
    assert delivery.next_attempt_at is None
    assert list(Delivery.objects.dead()) == [delivery]
    # Staff retry a dead one by hand: it runs once more.
    assert services.retry_deliveries(deliveries=[delivery]) == 1
    assert len(runs) == 4
    assert services.resolve_deliveries(deliveries=[delivery]) == 1
    assert Delivery.objects.get().status == "resolved"
    assert services.run_deliveries(force=True) == 0


def test_backoff_waits_before_the_next_attempt(plugipay_sandbox, settings, durable):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_BACKOFF": 30}
    runs = []
    durable(signals.payment_succeeded, fails_first(1, runs), name="tests.later")
    plugipay_sandbox.paid_payment()
    delivery = Delivery.objects.get()
    waited = delivery.next_attempt_at - delivery.updated_at
    assert dt.timedelta(seconds=29) < waited <= dt.timedelta(seconds=30)
    assert services.run_deliveries() == 0  # not due yet
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert services.run_deliveries() == 1 and len(runs) == 2
    assert deliveries.backoff(3) == dt.timedelta(seconds=120)
    assert deliveries.backoff(40) == deliveries.BACKOFF_CAP


def test_the_receiver_reads_the_instance_afresh_after_commit(plugipay_sandbox, durable):
    seen = []

    def receiver(sender, instance, event, delivery, **kwargs):
        seen.append((sender, type(instance), instance.status, instance.checkout_session_id))

    durable(signals.payment_succeeded, receiver)
    payment = plugipay_sandbox.paid_payment()
    assert seen == [(Payment, Payment, "succeeded", payment.checkout_session_id)]


def test_a_rolled_back_change_leaves_no_delivery(plugipay_sandbox, durable):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="tests.ok")

    def boom(sender, instance, **kwargs):
        raise RuntimeError("a plain receiver fails: the change rolls back")

    signals.payment_succeeded.connect(boom, dispatch_uid="tests.boom")
    try:
        session = services.create_checkout_session(
            amount=10_000, currency="IDR", success_url="https://s/ok", cancel_url="https://s/no"
        )
        plugipay_sandbox.pay(session)
        assert Delivery.objects.count() == 0 and runs == []
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="tests.boom")
    plugipay_sandbox.retry_deliveries()  # Plugipay redelivers; now it applies
    assert Delivery.objects.get().status == "succeeded" and len(runs) == 1


def test_a_receiver_no_process_knows_is_a_visible_failure(plugipay_sandbox, durable):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="tests.gone")
    # Recorded by a process that had it; run by one that does not (its module not imported).
    deliveries._registry.pop(("payment_succeeded", "tests.gone"))
    plugipay_sandbox.paid_payment()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and runs == []
    assert "No durable receiver 'tests.gone'" in delivery.last_error


def test_only_the_app_signals_take_durable_receivers():
    from django.db.models.signals import post_save

    with pytest.raises(TypeError, match="django_plugipay.signals"):
        durable_receiver(post_save)(lambda **kw: None)


@pytest.mark.parametrize("vendor_event", [True, False])
def test_the_key_names_the_transition(db, vendor_event):
    receiver = deliveries.DurableReceiver(
        signals.payment_succeeded, "payment_succeeded", "r", print
    )
    payment = Payment(pk=7, status="succeeded", data={"updatedAt": "2026-01-01T00:00:00Z"})
    event = WebhookEvent(event_id="evt_1") if vendor_event else None
    other = WebhookEvent(event_id="evt_2") if vendor_event else None
    key = deliveries.delivery_key(receiver, payment, event)
    assert key == deliveries.delivery_key(receiver, payment, event) and len(key) == 64
    if vendor_event:
        assert key != deliveries.delivery_key(receiver, payment, other)
    else:
        payment.data = {"updatedAt": "2026-01-02T00:00:00Z"}
        assert key != deliveries.delivery_key(receiver, payment, None)


# ── staff: admin, commands, checks ─────────────────────────────────────────────


def dead_delivery(**fields):
    from django.contrib.contenttypes.models import ContentType

    from tests.factories import PaymentFactory, WebhookEventFactory

    payment = PaymentFactory(status="succeeded")
    values = {
        "signal": "payment_succeeded",
        "receiver": "shop.receivers.email_receipt",
        "content_type": ContentType.objects.get_for_model(Payment),
        "object_id": payment.pk,
        "event": WebhookEventFactory(),
        "key": f"k{payment.pk}",
        "status": "dead",
        "attempts": 8,
        "last_error": "SMTPServerDisconnected: Connection unexpectedly closed",
        "last_traceback": 'Traceback (most recent call last):\n  File "shop/receivers.py"',
        **fields,
    }
    return payment, Delivery.objects.create(**values)


def staff_client(client, *codenames):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    user = UserFactory(is_staff=True)
    codes = ("view_delivery", "view_payment", "view_webhookevent", *codenames)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codes))
    client.force_login(user)
    return client


def test_admin_lists_deliveries_with_error_traceback_and_links(db, client):
    payment, delivery = dead_delivery()
    staff_client(client)
    listing = client.get("/admin/django_plugipay/delivery/").content.decode()
    assert "shop.receivers.email_receipt" in listing and "SMTPServerDisconnected" in listing
    assert f"/admin/django_plugipay/payment/{payment.pk}/change/" in listing
    page = client.get(f"/admin/django_plugipay/delivery/{delivery.pk}/change/").content.decode()
    assert "Traceback (most recent call last)" in page and delivery.key in page
    # The object's and the event's pages list their deliveries.
    for url in (
        f"/admin/django_plugipay/payment/{payment.pk}/change/",
        f"/admin/django_plugipay/webhookevent/{delivery.event_id}/change/",
    ):
        assert "shop.receivers.email_receipt" in client.get(url).content.decode()


def test_admin_actions_need_the_permission_and_a_confirmation(db, client, durable):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="shop.receivers.email_receipt")
    _payment, delivery = dead_delivery()
    url = "/admin/django_plugipay/delivery/"
    selected = {"_selected_action": [delivery.pk]}

    staff_client(client)
    assert "run_again" not in client.get(url).content.decode()
    client.post(url, {"action": "run_again", **selected})
    assert runs == []

    staff_client(client, "manage_delivery")
    page = client.post(url, {"action": "run_again", **selected}).content.decode()
    assert "whatever their backoff" in page and runs == []  # the confirmation page
    client.post(url, {"action": "run_again", "post": "yes", **selected})
    delivery.refresh_from_db()
    assert len(runs) == 1 and delivery.status == "succeeded" and delivery.attempts == 9

    _payment, other = dead_delivery(key="other")
    client.post(url, {"action": "mark_resolved", "post": "yes", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.status == "resolved" and other.resolved_at is not None


def test_doctor_and_the_check_report_dead_and_overdue(db):

    from django_plugipay.checks import check_deliveries
    from django_plugipay.management.commands.plugipay_doctor import Doctor

    assert check_deliveries(databases=["default"]) == []
    assert Doctor(url=None, wait=0).deliveries().ok is True
    dead_delivery()
    dead_delivery(
        key="late", status="pending", next_attempt_at=timezone.now() - dt.timedelta(hours=2)
    )
    dead_delivery(key="fresh", status="failed", next_attempt_at=timezone.now())
    assert [m.id for m in check_deliveries(databases=["default"])] == [
        "django_plugipay.W040",
        "django_plugipay.W041",
    ]
    assert check_deliveries(databases=None) == []  # only with the database checks
    line = Doctor(url=None, wait=0).deliveries()
    assert line.ok is False and line.detail == (
        "1 dead, 1 overdue by more than an hour; the last to give up: "
        "shop.receivers.email_receipt (SMTPServerDisconnected: Connection unexpectedly closed)"
    )
    assert "plugipay_replay --deliveries" in line.fix


def test_replay_deliveries_and_sync_run_them(plugipay_sandbox, durable, capsys):
    from django.core.management import call_command

    runs = []
    durable(signals.payment_succeeded, fails_first(1, runs), name="tests.cmd")
    plugipay_sandbox.paid_payment()
    assert Delivery.objects.get().status == "failed"
    call_command("plugipay_replay", "--deliveries")
    assert "1 deliveries run, 0 not succeeded yet" in capsys.readouterr().out
    assert Delivery.objects.get().status == "succeeded" and len(runs) == 2
    Delivery.objects.update(status="pending", next_attempt_at=timezone.now())  # stranded
    call_command("plugipay_sync")
    assert "Deliveries: 1 run" in capsys.readouterr().out and len(runs) == 3


# ── through the task layer ─────────────────────────────────────────────────────


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
def test_with_a_celery_app_the_task_runs_the_delivery(
    plugipay_sandbox, durable, make_celery_app, celery_runs
):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="tests.task")
    make_celery_app(task_always_eager=True)
    plugipay_sandbox.paid_payment()
    assert "django_plugipay.run_deliveries" in celery_runs
    assert len(runs) == 1 and Delivery.objects.get().status == "succeeded"


def test_with_the_broker_down_the_delivery_runs_in_process(
    plugipay_sandbox, durable, make_celery_app, celery_runs
):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="tests.down")
    make_celery_app(broker_url=DOWN_BROKER, broker_connection_timeout=1)
    plugipay_sandbox.paid_payment()
    assert celery_runs == [] and len(runs) == 1
    assert Delivery.objects.get().status == "succeeded"
    assert set(answers(plugipay_sandbox)) == {200}


def test_with_django_tasks_a_delivery_runs_in_the_worker(plugipay_sandbox, settings, durable):
    from django_tasks_db.models import DBTaskResult

    from tests.test_tasks_mode import DB_BACKEND, drain_db_queue

    seen = []
    durable(signals.payment_succeeded, lambda sender, instance, **kw: seen.append(instance.pk))
    settings.TASKS = DB_BACKEND
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "django"}
    payment = plugipay_sandbox.paid_payment()
    assert seen == []  # queued, not run in the request
    queued = [r.args_kwargs["args"][0] for r in DBTaskResult.objects.all()]
    assert "django_plugipay.run_deliveries" in queued
    drain_db_queue()
    assert seen == [payment.pk]


def test_a_pages_deliveries_read_their_objects_parents_in_the_same_query(transactional_db, durable):
    """A reconciliation page's payments each have a delivery: the chunk reads the payments with
    their sessions in one query, so receivers reading ``instance.checkout_session`` cost none."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_plugipay.models import EventSource
    from django_plugipay.services import events

    seen = []

    def receiver(sender, instance, event, delivery, **kwargs):
        with CaptureQueriesContext(connection) as ctx:
            seen.append(instance.checkout_session.metadata["n"])
        seen.append(len(ctx.captured_queries))

    durable(signals.payment_succeeded, receiver)
    assert events.apply_page(completed_sessions(3, "p"), source=EventSource.RECONCILE)[0] == 3
    assert seen == ["0", 0, "1", 0, "2", 0]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}


def completed_sessions(count, tag):
    """A page of ``checkout_session.completed`` events, each creating a succeeded payment
    (``pay_<tag><n>``)."""
    from django_plugipay.testing import build_event
    from django_plugipay.webhooks import parse_event

    return [
        parse_event(
            build_event(
                "checkout_session.completed",
                {
                    "id": f"cs_{tag}{n}",
                    "status": "completed",
                    "amount": 5000,
                    "currency": "IDR",
                    "paymentId": f"pay_{tag}{n}",
                    "metadata": {"n": str(n)},
                },
            )
        )
        for n in range(count)
    ]


def test_a_pages_deliveries_are_inserted_together_without_those_of_a_failed_event(
    transactional_db, fulfilled
):
    """A page records its deliveries in one ``INSERT`` before it commits; an event that fails
    (here a plain receiver raising after the durable one was recorded) takes its delivery with
    it when its savepoint rolls back, and the others' run once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_plugipay.models import EventSource
    from django_plugipay.services import events

    def refuse(sender, instance, **kwargs):
        if instance.plugipay_id == "pay_b1":
            raise RuntimeError("the shop refuses pay_b1")

    signals.payment_succeeded.connect(refuse, dispatch_uid="tests.refuse")
    try:
        with CaptureQueriesContext(connection) as ctx:
            applied, _known, left = events.apply_page(
                completed_sessions(3, "b"), source=EventSource.RECONCILE
            )
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="tests.refuse")

    assert applied == 2 and [e.object_id for e in left] == ["cs_b1"]
    table = Delivery._meta.db_table
    inserts = [q for q in ctx.captured_queries if q["sql"].startswith(f'INSERT INTO "{table}"')]
    assert len(inserts) == 1  # the isolated attempt's; the first attempt rolled back whole
    assert sorted(fulfilled) == ["pay_b0", "pay_b2"]
    recorded = Delivery.objects.order_by("object_id")
    assert [(str(d.object_id), d.status) for d in recorded] == [
        (str(Payment.objects.get(plugipay_id=pid).pk), "succeeded") for pid in ("pay_b0", "pay_b2")
    ]
    assert WebhookEvent.objects.get(event_id=left[0].id).status == "failed"


def test_a_page_inserts_no_delivery_for_work_a_receiver_rolled_back(transactional_db, fulfilled):
    """Inside a page, a plain receiver whose nested ``atomic`` announces a payment and then
    fails (the receiver catches the error) leaves no delivery for it, as outside a page: the
    savepoint that rolled back took the announcement with it."""
    from django.db import transaction

    from django_plugipay.models import EventSource
    from django_plugipay.services import events

    def tries(sender, instance, **kwargs):
        if instance.plugipay_id != "cs_n1":
            return
        try:
            with transaction.atomic():
                earlier = Payment.objects.get(plugipay_id="pay_n0")
                signals.payment_succeeded.send(sender=Payment, instance=earlier, event=None)
                raise RuntimeError("the shop's side job failed")
        except RuntimeError:
            pass

    signals.checkout_session_completed.connect(tries, dispatch_uid="tests.tries")
    try:
        applied, _known, left = events.apply_page(
            completed_sessions(3, "n"), source=EventSource.RECONCILE
        )
    finally:
        signals.checkout_session_completed.disconnect(dispatch_uid="tests.tries")

    assert applied == 3 and left == []
    assert sorted(fulfilled) == ["pay_n0", "pay_n1", "pay_n2"]
    assert Delivery.objects.count() == 3


@pytest.mark.django_db
def test_a_delivery_run_alone_compiles_no_query_after_the_first(durable, monkeypatch):
    """Each webhook applied inline runs its deliveries alone after its commit: the claim, the
    event, the object (read again for a second receiver of the same object) and the mark are
    statements compiled once per connection, not queries the ORM builds for every delivery."""
    from django.db import connections
    from django.db.models.sql.compiler import SQLCompiler

    from django_plugipay.db import _statements
    from tests.factories import PaymentFactory, WebhookEventFactory

    seen = []

    def receipt(sender, instance, event, delivery, **kwargs):
        seen.append((instance, event))

    def ship(sender, instance, event, delivery, **kwargs):
        seen.append((instance, event))

    receivers = [durable(signals.payment_succeeded, f) for f in (receipt, ship)]
    assert receivers
    registered = [
        deliveries._registry[("payment_succeeded", f"tests.{n}")] for n in ("receipt", "ship")
    ]
    recorded = []
    for _n in range(2):
        payment, event = PaymentFactory(status="succeeded"), WebhookEventFactory()
        pks = [deliveries.record_delivery(r, payment, event).pk for r in registered]
        recorded.append((pks, payment, event))
    compiled = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1) or original(self, *a, **k)
    )
    _statements(connections["default"]).clear()  # as on a new connection
    assert deliveries.run_deliveries(only=recorded[0][0]) == 2
    first = len(compiled)
    assert first > 0  # the first run compiles its statements
    assert deliveries.run_deliveries(only=recorded[1][0]) == 2
    assert len(compiled) == first
    expected = [(p.pk, e.pk) for _pks, p, e in recorded for _receiver in registered]
    assert [(i.pk, e.pk) for i, e in seen] == expected
    assert [type(i) for i, _e in seen] == [Payment] * 4  # whole rows, each read afresh
    assert seen[3][0] is not seen[2][0] and seen[3][0].amount == recorded[1][1].amount
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db
def test_a_chunk_of_deliveries_reads_its_objects_and_their_parents_compiled_once(
    durable, monkeypatch
):
    """A page's or a batch's deliveries run in chunks: the chunk's payments are read in one
    statement and their sessions and customers in one each, compiled once per connection (the
    ORM's select_related compiled a join on every chunk), and a receiver reading
    ``instance.checkout_session`` runs no query."""
    from django.db import connection, connections
    from django.db.models.sql.compiler import SQLCompiler
    from django.test.utils import CaptureQueriesContext

    from django_plugipay.db import _statements
    from tests.factories import PaymentFactory, WebhookEventFactory

    seen = []

    def receipt(sender, instance, event, delivery, **kwargs):
        with CaptureQueriesContext(connection) as queries:
            seen.append((instance.pk, instance.checkout_session.pk, instance.customer_id))
        assert len(queries) == 0

    durable(signals.payment_succeeded, receipt)
    registered = deliveries._registry[("payment_succeeded", "tests.receipt")]
    chunks, expected = [], []
    for _n in range(2):
        payments = [PaymentFactory(status="succeeded") for _ in range(3)]
        chunks.append(
            [deliveries.record_delivery(registered, p, WebhookEventFactory()).pk for p in payments]
        )
        expected += [(p.pk, p.checkout_session_id, p.customer_id) for p in payments]
    compiled = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **k: compiled.append(1) or original(self, *a, **k)
    )
    _statements(connections["default"]).clear()  # as on a new connection
    with CaptureQueriesContext(connection) as queries:
        assert deliveries.run_deliveries(only=chunks[0]) == 3
    first = len(compiled)
    assert first > 0
    payment_reads = [q for q in queries if 'FROM "django_plugipay_payment"' in q["sql"]]
    assert len(payment_reads) == 1  # the three payments in one statement
    assert deliveries.run_deliveries(only=chunks[1]) == 3
    assert len(compiled) == first
    assert seen == expected
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db
def test_receivers_in_one_chunk_get_their_own_copy_of_a_shared_parent(durable):
    """Two payments of one customer, delivered in one chunk: the customer is read once, and
    each receiver's instance holds its own copy (a change one receiver makes in memory is not
    seen by the next), as a join would give."""
    from tests.factories import CustomerFactory, PaymentFactory, WebhookEventFactory

    customers, names = [], []

    def receipt(sender, instance, event, delivery, **kwargs):
        customers.append(instance.customer)
        names.append(instance.customer.name)
        instance.customer.name = "changed in memory"

    durable(signals.payment_succeeded, receipt)
    registered = deliveries._registry[("payment_succeeded", "tests.receipt")]
    customer = CustomerFactory(name="Ana")
    payments = [PaymentFactory(customer=customer) for _ in range(2)]
    pks = [deliveries.record_delivery(registered, p, WebhookEventFactory()).pk for p in payments]
    assert deliveries.run_deliveries(only=pks) == 2
    assert [c.pk for c in customers] == [customer.pk] * 2
    assert customers[0] is not customers[1]
    assert names == ["Ana", "Ana"]  # the second did not see what the first changed


@pytest.mark.django_db
def test_a_slow_chunk_renews_its_lease_and_leaves_what_another_runner_took_over(
    durable, monkeypatch
):
    """A chunk is leased together; after slow receivers the rest is held for another lease
    before the next one runs, and a delivery whose lease ran out and that another runner
    claimed meanwhile is left to that runner (running it here too would run it twice)."""
    from django.db.models import F

    from tests.factories import PaymentFactory, WebhookEventFactory

    ran = []

    def receipt(sender, instance, event, delivery, **kwargs):
        ran.append(delivery.pk)
        if len(ran) == 1:  # slow: meanwhile another runner claims the second's expired lease
            Delivery.objects.filter(pk=pks[1]).update(
                attempts=F("attempts") + 1, leased_until=timezone.now() + dt.timedelta(hours=1)
            )

    durable(signals.payment_succeeded, receipt)
    registered = deliveries._registry[("payment_succeeded", "tests.receipt")]
    pks = [
        deliveries.record_delivery(registered, PaymentFactory(), WebhookEventFactory()).pk
        for _n in range(3)
    ]
    monkeypatch.setattr(deliveries, "_lease_left", lambda d: 0.0, raising=False)  # always late
    assert deliveries.run_deliveries(only=pks) == 2
    assert ran == [pks[0], pks[2]]
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=pks)}
    assert [rows[pk].status for pk in pks] == ["succeeded", "running", "succeeded"]
    assert rows[pks[1]].attempts == 2  # the other runner's attempt, not marked by this one


class ReadsFromTheReplica(LaggingReplica):
    """The replica has the account and the content types, not yet the payments, their
    sessions and the events just written."""

    lagging = (Payment, CheckoutSession, WebhookEvent)


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_deliveries_read_what_the_commit_wrote_not_a_replica(settings, durable):
    """Read afresh after the commit: from the database the change was written to, whether the
    chunk has one delivery or several (a lagging replica would not have the rows yet)."""
    from django.db import transaction

    from tests.factories import PaymentFactory, WebhookEventFactory

    seen = []

    def receipt(sender, instance, event, delivery, **kw):
        seen.append((instance.pk, instance.checkout_session.pk, event.pk))

    durable(signals.payment_succeeded, receipt)
    receiver = deliveries._registry[("payment_succeeded", "tests.receipt")]
    settings.DATABASE_ROUTERS = [f"{__name__}.ReadsFromTheReplica"]
    made = [
        (PaymentFactory(status="succeeded"), WebhookEventFactory(status="received"))
        for _n in range(3)
    ]
    with transaction.atomic():  # run alone after the commit
        deliveries.record_delivery(receiver, *made[0])
    with transaction.atomic():  # two, run together after the commit
        for payment, event in made[1:]:
            deliveries.record_delivery(receiver, payment, event)
    assert seen == [(p.pk, p.checkout_session_id, e.pk) for p, e in made]
    assert set(Delivery.objects.using("default").values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db
def test_a_lone_delivery_reads_its_object_with_the_rows_it_belongs_to_in_one_statement(
    durable, django_capture_on_commit_callbacks
):
    """The inline webhook path records one delivery per payment: after the commit its
    payment is read with its session in one statement (the receiver reading
    ``instance.checkout_session`` ran a query of its own, compiled on each call)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import PaymentFactory, WebhookEventFactory

    seen = []

    def receipt(sender, instance, event, delivery, **kwargs):
        seen.append((event.pk, instance.checkout_session.pk))

    durable(signals.payment_succeeded, receipt)
    registered = deliveries._registry[("payment_succeeded", "tests.receipt")]
    payment, event = PaymentFactory(status="succeeded"), WebhookEventFactory(status="processed")
    with django_capture_on_commit_callbacks() as callbacks:
        deliveries.record_delivery(registered, payment, event)
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    assert seen == [(event.pk, payment.checkout_session_id)]
    tables = [
        [
            t
            for t in ("delivery", "webhookevent", "payment", "checkoutsession")
            if f'"django_plugipay_{t}"' in q["sql"].split(" WHERE ")[0]
        ]
        for q in queries
    ]
    # claim, its event, the payment joined with its session, mark
    assert tables == [["delivery"], ["webhookevent"], ["payment", "checkoutsession"], ["delivery"]]


@pytest.mark.django_db
def test_a_key_that_joins_no_row_caches_no_parent():
    """A foreign key whose row is gone (a project's db_constraint=False or a deferred check):
    no parent made of NULLs is cached, as the ORM's select_related leaves none."""
    from django.db import connection

    from django_plugipay.db import read_many
    from tests.factories import PaymentFactory

    payment = PaymentFactory(customer=None)
    with connection.constraint_checks_disabled():
        Payment.objects.filter(pk=payment.pk).update(invoice_id=987_654)
        found = read_many(Payment, [payment.pk], ("checkout_session", "invoice", "customer"))[
            payment.pk
        ]
        Payment.objects.filter(pk=payment.pk).update(invoice_id=None)  # whole again
    assert found.checkout_session.pk == payment.checkout_session_id
    assert found.customer is None
    assert Payment.invoice.is_cached(found) and found.invoice is None


def test_a_dry_run_of_the_sync_runs_no_delivery(plugipay_sandbox, durable, capsys):
    from django.core.management import call_command

    runs = []
    durable(signals.payment_succeeded, fails_first(1, runs), name="tests.dry")
    plugipay_sandbox.paid_payment()
    Delivery.objects.update(next_attempt_at=timezone.now())  # due now
    call_command("plugipay_sync", "--dry-run")
    assert "Deliveries:" not in capsys.readouterr().out
    assert Delivery.objects.get().status == "failed" and len(runs) == 1  # nothing ran
    call_command("plugipay_sync")
    assert "Deliveries: 1 run" in capsys.readouterr().out and len(runs) == 2


@pytest.mark.django_db(transaction=True)
def test_the_keys_of_one_transaction_go_in_one_message(settings):
    """The commit callback that sends them is found again however it is wrapped (it restores
    the account acting when it runs)."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "inline"}
    sent = []

    def gather(key):
        _queue.enqueue_gathered(
            "django_plugipay.run_deliveries", key, inline=sent.append, on_failure=lambda e, k: None
        )

    with transaction.atomic():
        gather(1)
        gather(2)
        gather(3)
    assert sent == [[1, 2, 3]]
