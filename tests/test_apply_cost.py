"""The apply path's round trips: one transaction per event, a page per transaction."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_plugipay import signals
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import EventSource, Payment, WebhookEvent
from django_plugipay.services import events as service
from django_plugipay.specs import UnresolvedReference
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event

pytestmark = pytest.mark.django_db
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def session_completed(n, **extra):
    return build_event(
        "checkout_session.completed",
        {
            "id": f"cs_{n}",
            "status": "completed",
            "amount": 5000,
            "currency": "IDR",
            "paymentId": f"pay_{n}",
            "paymentMethod": "card",
            "updatedAt": "2026-01-01T00:00:00Z",
            **extra,
        },
    )


def split(queries):
    sql = [q["sql"].lstrip().upper() for q in queries]
    control = [s.split()[0] for s in sql if s.startswith(CONTROL)]
    return [s for s in sql if not s.startswith(CONTROL)], control


def test_a_new_session_and_its_payment_cost_three_statements_in_one_transaction():
    parsed = parse_event(session_completed(1))
    with CaptureQueriesContext(connection) as ctx:
        service.process_event(parsed, source=EventSource.WEBHOOK)
    statements, control = split(ctx.captured_queries)
    # the event, the session, the payment: inserts, no read before them (on PostgreSQL the
    # event's insert looks for the rows it names in the same statement)
    first = "WITH" if connection.vendor == "postgresql" else "INSERT"
    assert [s.split()[0] for s in statements] == [first, "INSERT", "INSERT"], statements
    assert len(control) == 2, control  # one transaction (a savepoint in the test's own)
    assert Payment.objects.get().status == "succeeded"


def test_a_duplicate_costs_one_statement_and_a_read():
    parsed = parse_event(session_completed(2))
    service.process_event(parsed, source=EventSource.WEBHOOK)
    with CaptureQueriesContext(connection) as ctx:
        event, applied = service.process_event(parsed, source=EventSource.WEBHOOK)
    statements, _control = split(ctx.captured_queries)
    assert not applied and event.status == "processed"
    assert event.event_id == parsed.id and event.pk == WebhookEvent.objects.get().pk
    if connection.vendor == "postgresql":  # the insert that did nothing read the row's status
        assert len(statements) == 1, statements
    else:  # the insert that did nothing, the read of the row
        assert len(statements) == 2, statements


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_an_events_insert_locks_and_reads_the_rows_it_names_so_the_apply_only_writes(
    signal_log,
):
    """On PostgreSQL one statement inserts the event and locks and reads whole the rows it
    names (its object, the session or payment it locks with), in the lock order; the apply
    then reads nothing: each event costs that statement plus its writes."""

    def sent(body):
        with CaptureQueriesContext(connection) as ctx:
            service.process_event(parse_event(body), source=EventSource.WEBHOOK)
        statements, _control = split(ctx.captured_queries)
        return [" ".join(s.split()[:3]) for s in statements]

    payment = {
        "id": "pay_4",
        "status": "succeeded",
        "amount": 5000,
        "currency": "IDR",
        "checkoutSessionId": "cs_4",
        "updatedAt": "2026-01-01T00:00:00Z",
    }
    refund = {"id": "rfd_4", "chargeId": "pay_4", "amount": 2000, "currency": "IDR"}
    opening = "WITH INSERTED AS"
    # the payment before its session: no session found, the payment inserted
    assert sent(build_event("payment.succeeded", payment)) == [
        opening,
        'INSERT INTO "DJANGO_PLUGIPAY_PAYMENT"',
    ]
    # the session: inserted; the payment it names, read with the event, linked to it
    assert sent(session_completed(4)) == [
        opening,
        'INSERT INTO "DJANGO_PLUGIPAY_CHECKOUTSESSION"',
        'UPDATE "DJANGO_PLUGIPAY_PAYMENT" SET',
    ]
    assert sent(build_event("refund.created", {**refund, "status": "pending"})) == [
        opening,
        'INSERT INTO "DJANGO_PLUGIPAY_REFUND"',
    ]
    # the refund and its payment, both read with the event: the refund moved, then recounted
    assert sent(build_event("refund.succeeded", {**refund, "status": "succeeded"})) == [
        opening,
        'UPDATE "DJANGO_PLUGIPAY_REFUND" SET',
        'UPDATE "DJANGO_PLUGIPAY_PAYMENT" SET',
    ]
    paid = Payment.objects.get()
    assert (paid.status, paid.amount_refunded, paid.checkout_session.plugipay_id) == (
        "succeeded",
        2000,
        "cs_4",
    )
    names = [name for name, _ in signal_log]
    assert names.count("payment_succeeded") == names.count("refund_succeeded") == 1, names
    assert names.count("checkout_session_completed") == 1, names


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_an_events_receivers_read_again_what_its_insert_did_not_find():
    """The insert notes the rows it named and did not find (so the event's own lookups read
    nothing); those notes are gone before any signal: a receiver finds a row written since."""
    from django_plugipay.db import find
    from django_plugipay.models import Invoice
    from tests.factories import CheckoutSessionFactory, InvoiceFactory

    CheckoutSessionFactory(plugipay_id="cs_5", status="completed")
    found = []

    def receiver(sender, instance, **kwargs):
        InvoiceFactory(plugipay_id="inv_5")
        found.append(find(Invoice, plugipay_id="inv_5"))

    payment = {"id": "pay_5", "status": "succeeded", "amount": 5000, "currency": "IDR"}
    body = build_event(
        "payment.succeeded", {**payment, "checkoutSessionId": "cs_5", "invoiceId": "inv_5"}
    )
    signals.payment_succeeded.connect(receiver, weak=False)
    try:
        service.process_event(parse_event(body), source=EventSource.WEBHOOK)
    finally:
        signals.payment_succeeded.disconnect(receiver)
    assert len(found) == 1 and found[0] is not None


def test_a_page_is_one_transaction_without_a_savepoint_per_event(signal_log):
    page = [parse_event(session_completed(n)) for n in range(10)]
    with CaptureQueriesContext(connection) as ctx:
        applied, known, left = service.apply_page(page, source=EventSource.RECONCILE)
    assert (applied, known, left) == (10, 0, [])
    _statements, control = split(ctx.captured_queries)
    # the page's transaction (a savepoint inside the test's own), none per event
    assert control.count("SAVEPOINT") + control.count("BEGIN") == 1, control
    names = [name for name, _ in signal_log]
    assert names.count("checkout_session_completed") == names.count("payment_succeeded") == 10
    again = service.apply_page(page, source=EventSource.RECONCILE)
    assert again == (0, 10, [])


def test_a_failing_event_leaves_the_rest_of_its_page_applied(
    signal_log, django_capture_on_commit_callbacks
):
    bad_receiver = build_event("customer.created", {"id": "cus_raise"})
    invalid = build_event("payment.succeeded", {"id": "pay_bad", "amount": "NaN"})
    orphan = build_event("refund.succeeded", {"id": "rfd_1", "amount": 100, "chargeId": "pay_x"})
    page = [
        parse_event(e)
        for e in (session_completed(1), bad_receiver, invalid, orphan, session_completed(2))
    ]

    def receiver(sender, instance, event, **kwargs):
        if instance.event_id == bad_receiver["id"]:
            raise RuntimeError("the shop's receiver failed")

    signals.webhook_received.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            applied, known, left = service.apply_page(page, source=EventSource.RECONCILE)
        assert (applied, known) == (2, 0)
        assert [e.id for e in left] == [bad_receiver["id"], invalid["id"], orphan["id"]]
        for parsed in left:
            with pytest.raises((RuntimeError, InvalidObject, UnresolvedReference)):
                service.process_event(parsed, source=EventSource.RECONCILE)
    finally:
        signals.webhook_received.disconnect(receiver)
    failed = dict(
        WebhookEvent.objects.filter(status="failed").values_list("event_id", "last_error")
    )
    assert set(failed) == {bad_receiver["id"], invalid["id"], orphan["id"]}
    assert failed[invalid["id"]].startswith("Invalid object: amount must be an integer")
    assert "RuntimeError" in failed[bad_receiver["id"]]
    assert Payment.objects.filter(status="succeeded").count() == 2
    # The page was applied without savepoints, rolled back at the failing event and applied
    # again with one savepoint per event: what the rolled-back attempt sent never committed.
    committed = [n for n, _ in signal_log.committed() if n == "payment_succeeded"]
    assert len(committed) == 2, signal_log.committed()


def payment_succeeded(n):
    return build_event(
        "payment.succeeded",
        {
            "id": f"pay_{n}",
            "status": "succeeded",
            "amount": 5000,
            "currency": "IDR",
            "checkoutSessionId": f"cs_{n}",
            "method": "card",
            "updatedAt": "2026-01-01T00:00:00Z",
        },
    )


def refund(n, status):
    obj = {"id": f"re_{n}", "chargeId": f"pay_{n}", "amount": 1500, "currency": "IDR"}
    return build_event(f"refund.{status}", {**obj, "status": status})


@pytest.mark.parametrize("first", ["session", "payment"])
def test_a_receiver_reading_the_payments_session_costs_no_query(first):
    """The README's receiver reads ``instance.checkout_session.metadata``: the engine hands the
    payment the session it locked, whichever event came first (only its raw ``data`` is left
    to read back)."""
    order = [session_completed(3, metadata={"order": "7"}), payment_succeeded(3)]
    if first == "payment":
        service.process_event(parse_event(order[0]), source=EventSource.WEBHOOK)
        Payment.objects.update(status="pending")  # so payment.succeeded moves it again
    seen = []

    def receiver(sender, instance, **kwargs):
        with CaptureQueriesContext(connection) as ctx:
            seen.append((instance.checkout_session.metadata, instance.checkout_session.status))
        seen.append(len(ctx.captured_queries))

    signals.payment_succeeded.connect(receiver, weak=False, dispatch_uid="reads_session")
    try:
        body = order[0] if first == "session" else order[1]
        service.process_event(parse_event(body), source=EventSource.WEBHOOK)
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="reads_session")
    assert seen == [({"order": "7"}, "completed"), 0]


def test_a_refund_receiver_reads_the_recounted_payment_without_a_query():
    service.process_event(parse_event(session_completed(4)), source=EventSource.WEBHOOK)
    seen = []

    def receiver(sender, instance, **kwargs):
        with CaptureQueriesContext(connection) as ctx:
            seen.append((instance.payment.plugipay_id, instance.payment.amount_refunded))
        seen.append(len(ctx.captured_queries))

    signals.refund_succeeded.connect(receiver, weak=False, dispatch_uid="reads_payment")
    try:
        for status in ("pending", "succeeded"):
            service.process_event(parse_event(refund(4, status)), source=EventSource.WEBHOOK)
    finally:
        signals.refund_succeeded.disconnect(dispatch_uid="reads_payment")
    assert seen == [("pay_4", 1500), 0]
    assert Payment.objects.get().amount_refunded == 1500


def customer_created(n):
    return build_event("customer.created", {"id": f"cus_{n}", "email": f"c{n}@example.com"})


def test_a_page_reads_a_linked_row_once(signal_log):
    """Sessions of one customer on one page: the customer's pk is read (or written) once, not
    once per session that links to it."""
    page = [parse_event(session_completed(n, customerId="cus_many")) for n in range(5)]
    service.process_event(parse_event(customer_created("many")), source=EventSource.WEBHOOK)
    with CaptureQueriesContext(connection) as ctx:
        applied, _known, left = service.apply_page(page, source=EventSource.RECONCILE)
    assert (applied, left) == (5, [])
    statements, _control = split(ctx.captured_queries)
    reads = [s for s in statements if s.startswith('SELECT "DJANGO_PLUGIPAY_CUSTOMER"')]
    assert len(reads) == 1, reads
    assert set(Payment.objects.values_list("customer__plugipay_id", flat=True)) == {"cus_many"}


def test_a_row_written_in_a_rolled_back_savepoint_is_not_linked_to():
    """The page's second pass gives each event a savepoint: a customer created by an event whose
    receiver then failed is gone, so a later session must not link to its remembered pk."""
    page = [
        parse_event(customer_created("gone")),
        parse_event(session_completed(9, customerId="cus_gone")),
    ]

    def receiver(sender, instance, event, **kwargs):
        if instance.kind == "customer.created":
            raise RuntimeError("the shop's receiver failed")

    signals.webhook_received.connect(receiver, weak=False, dispatch_uid="fails_customer")
    try:
        applied, _known, left = service.apply_page(page, source=EventSource.RECONCILE)
    finally:
        signals.webhook_received.disconnect(dispatch_uid="fails_customer")
    assert (applied, [e.kind for e in left]) == (1, ["customer.created"])
    payment = Payment.objects.get()
    assert payment.customer_id is None and payment.checkout_session.customer_id is None
    connection.check_constraints()  # no link to a row that does not exist


def renewed(sub_id, n, occurred_at=None):
    period = {
        "currentPeriodStart": f"2026-0{n}-01T00:00:00Z",
        "currentPeriodEnd": f"2026-0{n + 1}-01T00:00:00Z",
    }
    body = build_event("subscription.renewed", {"id": sub_id, **period}, occurred_at=occurred_at)
    return parse_event(body)


def fetching_subscription(monkeypatch, month):
    """Subscription ``sub_v``'s customer and plan, and its fetch answering it in the period
    beginning on ``month`` (changed then); return its spec and the list of ids fetched."""
    from django_plugipay.specs import registered
    from tests.factories import CustomerFactory, PlanFactory

    spec = registered("subscription")
    CustomerFactory(plugipay_id="cus_v"), PlanFactory(plugipay_id="plan_v")
    whole = {
        **spec.example,
        "currentPeriodStart": f"2026-0{month}-01T00:00:00Z",
        "currentPeriodEnd": f"2026-0{month + 1}-01T00:00:00Z",
        "updatedAt": f"2026-0{month}-01T00:00:00Z",
    }
    fetched = []
    monkeypatch.setattr(type(spec), "fetch", lambda self, oid: fetched.append(oid) or dict(whole))
    return spec, fetched


def test_a_pages_partial_events_are_applied_in_it_each_object_fetched_once(monkeypatch):
    """A renewal's event carries only the period: the subscription is fetched once for the
    page, before its transaction, and its events are applied on the page (not one by one)."""
    spec, fetched = fetching_subscription(monkeypatch, month=3)
    page = [renewed("sub_v", 1), renewed("sub_v", 2)]
    with CaptureQueriesContext(connection) as ctx:
        applied, _known, left = service.apply_page(page, source=EventSource.RECONCILE)
    assert (applied, left, fetched) == (2, [], ["sub_v"])
    _statements, control = split(ctx.captured_queries)
    assert control.count("SAVEPOINT") + control.count("BEGIN") == 1, control
    sub = spec.model.objects.get()
    assert (sub.customer.plugipay_id, sub.plan.plugipay_id) == ("cus_v", "plan_v")
    assert sub.current_period_end.month == 4


def test_a_later_page_uses_a_whole_object_again_only_while_it_is_as_fresh_as_the_page(
    monkeypatch,
):
    """Pages of one run share what they fetched: a renewal on a later page uses the object an
    earlier page fetched when the object holds its period and every event of that page
    occurred before the object's ``updatedAt``; otherwise the page fetches it anew."""
    spec, fetched = fetching_subscription(monkeypatch, month=4)

    def renewal(n, occurred):
        return renewed("sub_v", n, occurred)

    run: dict = {}
    for n, occurred in [(2, "2026-02-01T00:00:00Z"), (3, "2026-03-01T00:00:00Z")]:
        page = [renewal(n, occurred)]
        assert service.apply_page(page, source=EventSource.RECONCILE, fetched=run)[0] == 1
    assert fetched == ["sub_v"]  # the second page used the first page's object
    # a period the object does not hold, whatever time the event carries
    ahead = [renewal(5, "2026-03-15T00:00:00Z")]
    assert service.apply_page(ahead, source=EventSource.RECONCILE, fetched=run)[0] == 1
    assert fetched == ["sub_v", "sub_v"]
    later = [renewal(4, "2026-04-01T00:00:00Z")]  # at the instant of the object's last change
    assert service.apply_page(later, source=EventSource.RECONCILE, fetched=run)[0] == 1
    assert fetched == ["sub_v", "sub_v", "sub_v"]
    assert spec.model.objects.get().current_period_end.month == 5


def test_a_partial_event_whose_object_cannot_be_fetched_is_left_one_by_one(monkeypatch):
    from django_plugipay.exceptions import TransientError
    from django_plugipay.specs import registered

    def down(self, oid):
        raise TransientError("Plugipay did not answer")

    monkeypatch.setattr(type(registered("subscription")), "fetch", down)
    page = [parse_event(session_completed(5)), renewed("sub_x", 1)]
    applied, _known, left = service.apply_page(page, source=EventSource.RECONCILE)
    assert (applied, [e.kind for e in left]) == (1, ["subscription.renewed"])
    assert not WebhookEvent.objects.filter(kind="subscription.renewed").exists()


def subscription_event(kind, **changes):
    from django_plugipay.specs import registered

    return parse_event(build_event(kind, {**registered("subscription").example, **changes}))


def test_a_fetched_whole_object_comes_after_the_pages_other_events_of_it(monkeypatch, signal_log):
    """Renewed (Feb 1), paused (Feb 2), resumed (Feb 3) on one page, the subscription fetched
    active afterwards: the pause and the resume still send their signals, in order."""
    from django_plugipay.specs import registered
    from tests.factories import CustomerFactory, PlanFactory

    CustomerFactory(plugipay_id="cus_v"), PlanFactory(plugipay_id="plan_v")
    spec = registered("subscription")
    jan = {"currentPeriodStart": "2026-01-01T00:00:00Z", "currentPeriodEnd": "2026-02-01T00:00:00Z"}
    feb = {"currentPeriodStart": "2026-02-01T00:00:00Z", "currentPeriodEnd": "2026-03-01T00:00:00Z"}
    created = subscription_event(
        "subscription.created", status="active", updatedAt="2026-01-01T00:00:00Z", **jan
    )
    service.process_event(created, source=EventSource.WEBHOOK)
    whole = {**spec.example, "status": "active", "updatedAt": "2026-02-03T00:00:00Z", **feb}
    monkeypatch.setattr(type(spec), "fetch", lambda self, oid: dict(whole))
    page = [
        parse_event(build_event("subscription.renewed", {"id": "sub_v", **feb})),
        subscription_event(
            "subscription.paused", status="paused", updatedAt="2026-02-02T00:00:00Z", **feb
        ),
        subscription_event(
            "subscription.resumed", status="active", updatedAt="2026-02-03T00:00:00Z", **feb
        ),
    ]
    signal_log.clear()
    applied, _known, left = service.apply_page(page, source=EventSource.RECONCILE)
    assert (applied, left) == (3, [])
    names = [n for n in signal_log.names() if n != "webhook_received"]
    assert names == ["subscription_paused", "subscription_resumed", "subscription_activated"]


def test_a_refund_receiver_reads_the_amount_refunded_the_database_holds():
    """A settled refund's amount changed by fresher news is recounted too, and the payment a
    receiver is handed holds the database's sum, not a running total of its own."""
    service.process_event(parse_event(session_completed(6)), source=EventSource.WEBHOOK)
    first = {"id": "re_61", "chargeId": "pay_6", "amount": 1500, "currency": "IDR"}
    at = "2026-01-0{}T00:00:00Z".format
    for status, day, amount in (("succeeded", 2, 1500), ("updated", 3, 2000)):
        obj = {**first, "status": "succeeded", "amount": amount, "updatedAt": at(day)}
        service.process_event(parse_event(build_event(f"refund.{status}", obj)), source="webhook")
    assert Payment.objects.get().amount_refunded == 2000
    seen = []

    def receiver(sender, instance, **kwargs):
        stored = Payment.objects.values_list("amount_refunded", flat=True).get()
        seen.append((instance.payment.amount_refunded, stored))

    signals.refund_succeeded.connect(receiver, weak=False, dispatch_uid="reads_the_sum")
    try:
        second = {**first, "id": "re_62", "amount": 1000, "status": "succeeded", "updatedAt": at(4)}
        service.process_event(
            parse_event(build_event("refund.succeeded", second)), source="webhook"
        )
    finally:
        signals.refund_succeeded.disconnect(dispatch_uid="reads_the_sum")
    assert seen == [(3000, 3000)]


def test_a_page_locks_and_reads_each_row_once_and_changes_one_object_of_it(signal_log):
    """A session opened, moved by its pending payment, completed, and its payment succeeding,
    all on one page: each row is written by one insert and then changed through the object the
    page holds (no second upsert or locking read of it), and each event sees what the one
    before it changed (the session moved to pending is not announced pending again)."""
    session = {"id": "cs_h", "amount": 5000, "currency": "IDR", "paymentMethod": "bank_transfer"}
    payment = {"id": "pay_h", "amount": 5000, "currency": "IDR", "checkoutSessionId": "cs_h"}
    page = [
        build_event("checkout_session.created", {**session, "status": "open"}),
        build_event("payment.updated", {**payment, "status": "pending", "method": "va"}),
        build_event(
            "checkout_session.completed", {**session, "status": "completed", "paymentId": "pay_h"}
        ),
        build_event("payment.succeeded", {**payment, "status": "succeeded", "method": "va"}),
    ]
    with CaptureQueriesContext(connection) as ctx:
        applied, _known, left = service.apply_page(
            [parse_event(body) for body in page], source=EventSource.RECONCILE
        )
    assert (applied, left) == (4, [])
    statements, _control = split(ctx.captured_queries)
    sessions = [s for s in statements if '"DJANGO_PLUGIPAY_CHECKOUTSESSION"' in s.split("WHERE")[0]]
    payments = [s for s in statements if '"DJANGO_PLUGIPAY_PAYMENT"' in s.split("WHERE")[0]]
    for rows in (sessions, payments):
        assert [s.split()[0] for s in rows].count("INSERT") == 1, rows
        reads = [s for s in rows if s.startswith("SELECT")]
        # at most the page's one locking read per table, before its events (PostgreSQL)
        assert len(reads) <= 1 and all(" IN (" in s for s in reads), reads
    assert signal_log.names().count("checkout_session_pending") == 1
    assert signal_log.names().count("checkout_session_completed") == 1
    assert signal_log.names().count("payment_succeeded") == 1
    paid = Payment.objects.select_related("checkout_session").get()
    assert (paid.status, paid.checkout_session.status) == ("succeeded", "completed")


def test_a_row_found_another_way_is_the_object_the_page_holds(signal_log):
    """A refund naming only its session finds the payment by the session, not by its id: it
    still gets the payment object the page holds, so the recount lands on that object and a
    later refund's receivers read the sum the database holds."""
    page = [
        session_completed("r"),  # the page holds pay_r (its insert)
        build_event(
            "refund.succeeded",
            {
                "id": "re_r1",
                "status": "succeeded",
                "amount": 1500,
                "currency": "IDR",
                "sourceType": "checkout_session",
                "sourceId": "cs_r",
            },
        ),
        build_event(
            "refund.failed",
            {"id": "re_r2", "status": "failed", "amount": 1000, "chargeId": "pay_r"},
        ),
    ]
    seen = []

    def receiver(sender, instance, **kwargs):
        stored = Payment.objects.values_list("amount_refunded", flat=True).get()
        seen.append((instance.payment.amount_refunded, stored))

    signals.refund_failed.connect(receiver, weak=False, dispatch_uid="reads_held_payment")
    try:
        applied, _known, left = service.apply_page(
            [parse_event(body) for body in page], source=EventSource.RECONCILE
        )
    finally:
        signals.refund_failed.disconnect(dispatch_uid="reads_held_payment")
    assert (applied, left) == (3, [])
    assert seen == [(1500, 1500)]


def test_an_event_names_the_rows_its_spec_locks_first_in_the_lock_order():
    """The rows an event's insert locks up front come in the lock order, parents first (a
    price's plan before the price), as its apply would lock them."""
    from django_plugipay.models import CheckoutSession, Plan, Price, Refund
    from django_plugipay.specs import registered

    def named(kind, resource):
        return service._named_rows(parse_event(build_event(kind, registered(resource).example)))

    assert named("price.updated", "price") == [(Plan, "plan_v"), (Price, "price_v")]
    assert named("payment.succeeded", "payment") == [
        (CheckoutSession, "cs_v"),
        (Payment, "pay_v"),
    ]
    assert named("refund.succeeded", "refund") == [(Payment, "pay_v"), (Refund, "rfd_v")]
