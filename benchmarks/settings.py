"""The example shop's settings on PostgreSQL, plus the baseline receiver for comparison."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example_project"))

from config.settings import *  # noqa: E402,F403
from config.settings import INSTALLED_APPS, PLUGIPAY  # noqa: E402

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.baseline"]
ROOT_URLCONF = "benchmarks.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB", "plugipay_bench"),
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "CONN_MAX_AGE": 60,
    }
}
PLUGIPAY = {
    **PLUGIPAY,
    "WEBHOOK_SECRETS": ["whsec_bench"],  # noqa: F405
    "WEBHOOK_PROCESSING": os.environ.get("BENCH_PROCESSING", "inline"),
    # No Plugipay answers the benchmark's sessions: the event path alone is measured.
    "SYNC_RECEIPTS": False,
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
