"""The Celery app the tests (and their worker subprocess) use."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A queue per test session (its worker is told the name), so two copies of the service suite
# can share one Redis database without taking each other's tasks.
app.conf.task_default_queue = os.environ.get("PLUGIPAY_TEST_QUEUE") or f"plugipay-{os.getpid()}"
app.autodiscover_tasks(["django_plugipay"])
if os.environ.get("PLUGIPAY_SHIP_LOG"):  # the durable-receiver crash test's receiver
    app.conf.imports = ["tests.durable_crash"]
if os.environ.get("PLUGIPAY_TEST_BEAT"):  # the documented schedule, every second
    app.conf.beat_schedule = {
        "plugipay-run-deliveries": {"task": "django_plugipay.run_deliveries", "schedule": 1.0}
    }

import tests.signal_log  # noqa: E402,F401 - worker-side signal counting for the service suite
