"""Settings for the test suite: Django's defaults (in-memory SQLite, no Celery) unless the
environment asks for PostgreSQL (DATABASE_URL) and a Celery worker (CELERY_BROKER_URL)."""

import os
from importlib.util import find_spec

import dj_database_url

SECRET_KEY = "django-plugipay-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HAS_DRF = find_spec("rest_framework") is not None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_plugipay",
    "tests.teams",
]
if HAS_DRF:
    INSTALLED_APPS += ["rest_framework", "drf_spectacular"]
# Django 5.2 needs the django-tasks backport for django.tasks; django-tasks-db's tables are
# always migrated where it is installed, its backend used only when a test (or a worker) asks.
_TASK_APPS = (
    ("django_tasks_db",) if find_spec("django.tasks") else ("django_tasks", "django_tasks_db")
)
INSTALLED_APPS += [app for app in _TASK_APPS if find_spec(app)]
if os.environ.get("PLUGIPAY_TASKS_BACKEND"):  # a db_worker joining the suite
    TASKS = {"default": {"BACKEND": os.environ["PLUGIPAY_TASKS_BACKEND"]}}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
    if os.environ.get("PLUGIPAY_TEST_DB_NAME"):  # a worker joining the suite's test database
        DATABASES["default"]["NAME"] = os.environ["PLUGIPAY_TEST_DB_NAME"]
else:  # what startproject writes: the tests run on Django's in-memory test database
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
    if os.environ.get("PLUGIPAY_SQLITE_TEST_FILE"):  # a worker process shares it (a file)
        DATABASES["default"]["TEST"] = {"NAME": os.environ["PLUGIPAY_SQLITE_TEST_FILE"]}
    if os.environ.get("PLUGIPAY_TEST_DB_NAME"):  # a worker joining the suite's test database
        DATABASES["default"]["NAME"] = os.environ["PLUGIPAY_TEST_DB_NAME"]

# A tenant's database, for the test of PLUGIPAY["ACCOUNT_DATABASE"] (created only for it).
DATABASES["tenant"] = {
    **DATABASES["default"],
    "NAME": f"{DATABASES['default']['NAME']}_tenant",
    "TEST": {},
}

STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A Celery worker started by the service suite gets the sandbox's address from the environment.
PLUGIPAY = {
    "KEY_ID": "pk_test_sandbox",
    "SECRET": "sk_test_sandbox",
    "BASE_URL": os.environ.get("PLUGIPAY_BASE_URL", "http://127.0.0.1:8787"),
    "WEBHOOK_SECRETS": ["whsec_plugipay_testing"],
    "RETRY_BACKOFF": 0.01,
    "TIMEOUT": float(os.environ.get("PLUGIPAY_TIMEOUT", "10")),
    "MAX_RETRIES": int(os.environ.get("PLUGIPAY_MAX_RETRIES", "3")),
    "STRANDED_AFTER": float(os.environ.get("PLUGIPAY_STRANDED_AFTER", "300")),
}

# No Celery app by default: with TASKS="auto" task work runs in-process, as on a fresh project.
# The service suite sets CELERY_BROKER_URL; tests/conftest.py then creates the app (tests.celery)
# and tasks go through a real worker.
if os.environ.get("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
    # Short visibility and sweep intervals so a killed worker's unacked task comes back in seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 5,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
    CELERY_TASK_ACKS_LATE = True
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"django_plugipay": {"handlers": ["null"], "propagate": False}},
}
