"""Settings of the example shop: SQLite and eager Celery unless the environment says otherwise."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-shop-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_plugipay",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DEMO_DB", BASE_DIR / "db.sqlite3"),
            # Django's defaults work; for your own concurrent writes, manage.py check
            # (django_plugipay.W004) recommends "OPTIONS": {"transaction_mode": "IMMEDIATE",
            # "timeout": 20}.
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Asia/Jakarta"
# English and Bahasa Indonesia: the browser's Accept-Language picks one, the switcher in the
# header (Django's set_language view) overrides it.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("id", "Bahasa Indonesia")]
STATIC_URL = "/static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shop:home"
LOGOUT_REDIRECT_URL = "shop:home"
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "shop@example.com"

# django-plugipay: the sandbox's test credentials. For Plugipay itself, drop BASE_URL and put
# real keys in the environment (PLUGIPAY_KEY_ID, PLUGIPAY_SECRET, PLUGIPAY_WEBHOOK_SECRET).
PLUGIPAY = {
    "KEY_ID": os.environ.get("PLUGIPAY_KEY_ID", "pk_test_sandbox"),
    "SECRET": os.environ.get("PLUGIPAY_SECRET", "sk_test_sandbox"),
    "BASE_URL": os.environ.get("PLUGIPAY_BASE_URL", "http://127.0.0.1:8787"),
    "WEBHOOK_SECRETS": [os.environ.get("PLUGIPAY_WEBHOOK_SECRET", "whsec_demo")],
    "WEBHOOK_PROCESSING": "celery" if os.environ.get("CELERY_BROKER_URL") else "inline",
    "API_CHECKOUT_PARAMS": "shop.pricing.checkout_params",
    # Indonesian buyers pay by bank transfer (VA), QRIS, e-wallet or a manual transfer that
    # staff confirm in the admin ("Confirm transfer received…").
    "DEFAULT_METHODS": ["card", "va", "qris", "ewallet", "manual"],
    "API_SUBSCRIBE_PARAMS": "shop.pricing.subscribe_params",
    "API_SYNC_INTERVAL": 1,
    # The catalog `manage.py plugipay_plans` creates (run_demo.py runs it): IDR 99,000 a month
    # with a 7-day trial.
    "PLANS": {
        "member": {
            "name": "Member",
            "description": "Members-only recipes and free delivery.",
            "interval": "month",
            "intervalCount": 1,
            "trialDays": 7,
            "prices": [
                {"currency": "IDR", "model": "flat", "unitAmount": 99_000, "taxMode": "inclusive"}
            ],
            "portalFeatures": {
                "selfServeCancel": True,
                "selfServePause": True,
                "selfServeUpgrade": False,
                "selfServeDowngrade": False,
                "updatePaymentMethod": True,
            },
        },
    },
}

# A second Plugipay account (docs/how-to/multi-tenant.md), only when PLUGIPAY_SECOND_ACCOUNT is set
# to its acc_… id: the platform key (the sandbox's test one unless PLUGIPAY_PLATFORM_KEY_ID and
# PLUGIPAY_PLATFORM_SECRET say otherwise) acts on behalf of it, and its events, signed with
# PLUGIPAY_SECOND_WEBHOOK_SECRET, reach the same webhook URL. `make demo` provisions it at the
# sandbox, registers its webhook endpoint and passes the secret on; buyers pick the shop on the
# home page (shop.accounts.api_account, also the DRF API's PLUGIPAY["API_ACCOUNT"]). The sweep
# and reconcile tasks of CELERY_BEAT_SCHEDULE cover both accounts. The default demo is unchanged.
PLUGIPAY["API_ACCOUNT"] = "shop.accounts.api_account"
if os.environ.get("PLUGIPAY_SECOND_ACCOUNT"):
    PLUGIPAY["ACCOUNTS"] = {
        "second": {
            "KEY_ID": os.environ.get("PLUGIPAY_PLATFORM_KEY_ID", "pk_test_platform"),
            "SECRET": os.environ.get("PLUGIPAY_PLATFORM_SECRET", "sk_test_platform"),
            "ON_BEHALF_OF": os.environ["PLUGIPAY_SECOND_ACCOUNT"],
            "WEBHOOK_SECRETS": [os.environ.get("PLUGIPAY_SECOND_WEBHOOK_SECRET", "whsec_second")],
            "NAME": "Second shop",
        }
    }

# Celery only when CELERY_BROKER_URL is set (config/__init__.py then creates the app and
# TASKS="auto" sends task work to the worker); without it, that work runs in-process.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "plugipay-reconcile": {"task": "django_plugipay.reconcile", "schedule": 15 * 60},
    "plugipay-sweep": {"task": "django_plugipay.sweep", "schedule": 60},
    # durable receivers' retries, and deliveries a crashed process left behind
    "plugipay-run-deliveries": {"task": "django_plugipay.run_deliveries", "schedule": 60},
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_plugipay": {"handlers": ["console"], "level": "WARNING"}},
}

# Without this, Celery's Django fix-up closes the database connection around every task
# (a new PostgreSQL connection per task, several times slower).
CELERY_DB_REUSE_MAX = 1000
