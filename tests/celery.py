"""The Celery app the tests (and their worker subprocess) use."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_plugipay"])

import tests.signal_log  # noqa: E402,F401 - worker-side signal counting for the service suite
