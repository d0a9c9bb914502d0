"""What scripts/stock_project.py reads from a runserver log: errors, locks, 5xx and receipts."""

import pytest

from tests.scripts import loaded

LOG = """\
Performing system checks...

System check identified some issues:

WARNINGS:
?: (django_plugipay.W004) ... your own code may still see 'database is locked'.

System check identified 1 issue (0 silenced).
[30/Nov/2026 12:00:00] "GET /accounts/login/ HTTP/1.1" 200 812
Internal Server Error: /orders/12/thanks/
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/django/core/handlers/exception.py", line 55, in inner
    response = get_response(request)
  File "/project/shop/views.py", line 52, in thanks
    services.sync_checkout_session(session=order.checkout_session)
  File "/src/django_plugipay/services/checkout.py", line 80, in sync_checkout_session
    return upsert_checkout_session(obj)
sqlite3.OperationalError: database is locked

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
django.db.utils.OperationalError: database is locked
[30/Nov/2026 12:00:01] "GET /orders/12/thanks/?session_id=cs_1 HTTP/1.1" 500 145
[30/Nov/2026 12:00:01] "POST /plugipay/webhook/ HTTP/1.1" 200 2
Subject: Receipt for order #12
Subject: Receipt for order #13
[30/Nov/2026 12:00:02] "POST /plugipay/webhook/ HTTP/1.1" 502 0
"""


@pytest.fixture(scope="module")
def script():
    with loaded("stock_project") as module:
        yield module


def test_an_error_report_names_the_path_the_exception_and_our_frames(script):
    [(path, error, frames)] = script.error_reports(LOG)
    assert path == "/orders/N/thanks/"
    assert error == "django.db.utils.OperationalError: database is locked"
    assert frames == [
        "shop/views.py:52 thanks: services.sync_checkout_session(session=order.checkout_session)",
        "django_plugipay/services/checkout.py:80 sync_checkout_session: "
        "return upsert_checkout_session(obj)",
    ]


def test_locks_are_counted_but_not_the_checks_advice(script):
    assert script.locked_count(LOG) == 2
    assert script.locked_count(LOG.split("[30/Nov/2026 12:00:00]")[0]) == 0


def test_request_lines_and_receipts(script):
    statuses = [int(m[2]) for m in script.REQUEST_LINE.findall(LOG)]
    assert statuses == [200, 500, 200, 502]
    assert script.RECEIPT.findall(LOG) == ["12", "13"]


def test_webhook_answers_other_than_2xx_are_counted(script):
    log = (
        '[30/Nov/2026 12:00:03] "POST /plugipay/webhook/ HTTP/1.1" 302 0\n'
        '[30/Nov/2026 12:00:04] "POST /plugipay/webhook/ HTTP/1.1" 200 2\n'
    )
    assert script.webhooks_not_2xx(LOG + log) == [
        "POST /plugipay/webhook/ 502",
        "POST /plugipay/webhook/ 302",
    ]


def test_the_matrix_runs_fewer_payments_per_variant_unless_told(script):
    args = script.parse_args(["--matrix", "--variants", "use-tz-false,uuid-user"])
    assert (args.sequential, args.buyers, args.per_buyer) == (3, 2, 1)
    assert args.variants == ["use-tz-false", "uuid-user"]
    assert script.parse_args(["--matrix", "--sequential", "9"]).sequential == 9
    assert script.parse_args([]).sequential == 20
    assert script.parse_args([]).per_buyer == 4
    with pytest.raises(SystemExit):
        script.parse_args(["--matrix", "--variants", "use-tz-true"])


def test_each_variant_writes_its_settings_into_the_project(script, tmp_path):
    project = script.Project(
        tmp_path,
        1,
        2,
        celery=False,
        log_retries=False,
        variant=script.VARIANTS["uuid-user"],
    )
    settings = tmp_path / "settings.py"
    settings.write_text("INSTALLED_APPS = []\n")
    project.apply_variant(settings)
    namespace: dict = {}
    exec(settings.read_text(), namespace)  # the addition is valid Python after startproject's
    assert namespace["AUTH_USER_MODEL"] == "accounts.User"
    assert "UUIDField(primary_key=True" in (tmp_path / "accounts" / "models.py").read_text()
    # its migration too: the tutorial's first `migrate` needs it
    assert (tmp_path / "accounts" / "migrations" / "0001_initial.py").is_file()
    assert not list(tmp_path.rglob("__pycache__"))
    assert project.login("buyer1") == "buyer1@example.com"


def test_the_variants_follow_the_pages_without_their_pytest_steps(script, tmp_path):
    project = script.Project(
        tmp_path, 1, 2, celery=False, log_retries=False, variant=script.VARIANTS["use-tz-false"]
    )
    steps = [s for page in script.doc_steps.PAGES for s in script.doc_steps.steps(page)]
    kept = project.without_tests(steps)
    tests = [s for s in steps if s.kind == "command" and s.text.startswith("pytest")]
    assert tests and len(kept) == len(steps) - len(tests)
    assert not any(s.kind == "command" and s.text.startswith("pytest") for s in kept)
    assert [s for s in steps if s not in tests] == kept  # the order is the pages'
    assert project.build.done == [
        "  left out, as a variant: the pages' `pytest` steps ("
        + ", ".join(s.where() for s in tests)
        + ")"
    ]


def test_a_start_up_error_variant_passes_only_when_the_docs_stop_there(script, tmp_path):
    variant = script.VARIANTS["atomic-requests-sqlite-default"]
    check_id, fix = variant.start_up_error

    def outcome(failed):
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        root.mkdir()
        project = script.Project(root, 1, 2, celery=False, log_retries=False, variant=variant)
        return script.expect_start_up_error(project, variant, failed, script.Result("v")).ok

    stopped = script.doc_steps.StepFailed(
        f"docs/tutorial.md:47 (2. Settings): `manage.py check` exited 1:\n"
        f"ERRORS:\n?: ({check_id}) ATOMIC_REQUESTS ...\n\tHINT: {fix}\n"
    )
    assert outcome(stopped)
    assert not outcome(None)
    assert not outcome(script.doc_steps.StepFailed("docs/tutorial.md:114: migrate exited 1"))
