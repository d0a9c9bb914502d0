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
