"""Every system check id, triggered."""

import pytest
from django.core.checks import Tags, run_checks

from django_plugipay.checks import check_settings, connection_health_warnings
from tests.settings import HAS_DRF

BASE = {
    "KEY_ID": "pk_test_x",
    "SECRET": "sk_test_x",
    "WEBHOOK_SECRETS": ["whsec_x"],
    "BASE_URL": "https://plugipay.com",
}


def ids(settings, **plugipay):
    settings.PLUGIPAY = {**BASE, **plugipay}
    return sorted({e.id for e in check_settings()})


def test_clean_configuration_has_no_messages(settings):
    settings.PLUGIPAY = {
        **BASE,
        "API_CHECKOUT_PARAMS": "tests.test_checks.pricing",
        "API_SUBSCRIBE_PARAMS": "tests.test_checks.pricing",
    }
    assert check_settings() == []


def pricing(request, data):
    return {}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"KEY_ID": None, "SECRET": None}, "django_plugipay.E001"),
        ({"SECRET": None}, "django_plugipay.E001"),
        ({"WEBHOOK_SECRETS": []}, "django_plugipay.E002"),
        ({"WEBHOOK_SECRETS": "whsec_x"}, "django_plugipay.E003"),
        ({"WEBHOOK_TOLERANCE": "300"}, "django_plugipay.E004"),
        ({"WEBHOOK_PROCESSING": "async"}, "django_plugipay.E005"),
        ({"TIMEOUT": "30"}, "django_plugipay.E006"),
        ({"API_BILLING_OWNERS": "django_plugipay.conf.DEFAULTS"}, "django_plugipay.E079"),
        ({"API_BILLING_OWNERS": "nowhere.owners"}, "django_plugipay.E079"),
        ({"PUBLISH_TIMEOUT": 0}, "django_plugipay.E006"),
        ({"PUBLISH_TIMEOUT": -1}, "django_plugipay.E006"),
        ({"DEFAULT_METHODS": "card"}, "django_plugipay.E007"),
        ({"CURRENCY_EXPONENTS": {"IDR": "0"}}, "django_plugipay.E008"),
        ({"API_CHECKOUT_PARAMS": "nowhere.pricing"}, "django_plugipay.E009"),
        ({"API_CHECKOUT_PARAMS": "django_plugipay.conf.DEFAULTS"}, "django_plugipay.E009"),
        ({"BASE_URL": "http://127.0.0.1:8787"}, "django_plugipay.W001"),
        ({"WEBHOOK_SECRET": "typo"}, "django_plugipay.W002"),
        pytest.param(
            {}, "django_plugipay.W003", marks=pytest.mark.skipif(not HAS_DRF, reason="needs DRF")
        ),
        pytest.param(
            {}, "django_plugipay.W035", marks=pytest.mark.skipif(not HAS_DRF, reason="needs DRF")
        ),
        ({"API_SUBSCRIBE_PARAMS": "nowhere.hook"}, "django_plugipay.W036"),
        ({"API_SUBSCRIBE_PARAMS": "django_plugipay.conf.DEFAULTS"}, "django_plugipay.W036"),
        ({"API_ACCOUNT": "nowhere.hook"}, "django_plugipay.E076"),
        ({"API_ACCOUNT": "django_plugipay.conf.DEFAULTS"}, "django_plugipay.E076"),
        ({"KEY_ID": "pk_live_acme…"}, "django_plugipay.E012"),
        ({"SECRET": "sk_test_x\n"}, "django_plugipay.E012"),
        ({"API_KEY": "sk_test_ x"}, "django_plugipay.E012"),
        ({"WEBHOOK_SECRETS": ["whsec_x", "whsec_id…"]}, "django_plugipay.E012"),
        ({"SECRET": '"sk_test_sandbox"'}, "django_plugipay.E012"),  # an env file's quotes
    ],
)
def test_each_check_id(settings, override, expected):
    assert expected in ids(settings, **override)


def test_plugipay_must_be_a_dict(settings):
    settings.PLUGIPAY = "pk_test_x"
    assert [e.id for e in check_settings()] == ["django_plugipay.E010"]


def test_hints_say_what_to_do(settings):
    settings.PLUGIPAY = {**BASE, "WEBHOOK_SECRETS": "whsec_x"}
    (error,) = [e for e in check_settings() if e.id == "django_plugipay.E003"]
    assert "list" in error.hint


def test_checks_are_registered(settings):
    settings.PLUGIPAY = {**BASE, "KEY_ID": None}
    assert "django_plugipay.E001" in {e.id for e in run_checks(tags=[Tags.security])}


def test_string_secret_is_one_secret_not_its_characters(settings):
    from django_plugipay.conf import app_settings

    settings.PLUGIPAY = {**BASE, "WEBHOOK_SECRETS": "whsec_x"}
    assert app_settings.WEBHOOK_SECRETS == ["whsec_x"]


def test_env_fallbacks(settings, monkeypatch):
    from django_plugipay.conf import app_settings

    settings.PLUGIPAY = {}
    monkeypatch.setenv("PLUGIPAY_KEY_ID", "pk_live_env")
    monkeypatch.setenv("PLUGIPAY_WEBHOOK_SECRET", "whsec_env")
    assert app_settings.KEY_ID == "pk_live_env" and app_settings.MODE == "live"
    assert app_settings.WEBHOOK_SECRETS == ["whsec_env"]


@pytest.mark.parametrize("secret", ["whsec_env", "whsec_new, whsec_old"])
def test_the_webhook_secret_from_the_environment_passes_every_settings_check(
    settings, monkeypatch, secret
):
    settings.PLUGIPAY = {}
    monkeypatch.setenv("PLUGIPAY_KEY_ID", "pk_live_env")
    monkeypatch.setenv("PLUGIPAY_SECRET", "sk_live_env")
    monkeypatch.setenv("PLUGIPAY_WEBHOOK_SECRET", secret)
    assert [e.id for e in check_settings() if e.level >= 40] == []


def unsendable(settings, **plugipay):
    settings.PLUGIPAY = plugipay
    return [e.msg for e in check_settings() if e.id == "django_plugipay.E012"]


def test_a_pasted_placeholder_names_the_setting(settings, monkeypatch):
    settings.PLUGIPAY = {**BASE, "WEBHOOK_SECRETS": ["whsec_x", "whsec_id…"]}
    [error] = [e for e in check_settings() if e.id == "django_plugipay.E012"]
    assert error.msg == (
        "PLUGIPAY['WEBHOOK_SECRETS'][1] contains '…', which cannot be sent "
        "(only printable ASCII can)."
    )
    assert "Paste the whole value" in error.hint
    monkeypatch.setenv("PLUGIPAY_KEY_ID", "pk_test_x ")
    monkeypatch.setenv("PLUGIPAY_SECRET", "sk_test_x")
    assert unsendable(settings, WEBHOOK_SECRETS=["whsec_x"]) == [
        "PLUGIPAY_KEY_ID (environment) contains whitespace (' ')."
    ]
    monkeypatch.setenv("PLUGIPAY_KEY_ID", "pk_test_x")
    monkeypatch.setenv("PLUGIPAY_WEBHOOK_SECRET", "whsec_new, whsec_old")  # a rotation
    assert unsendable(settings) == []


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({"CONN_MAX_AGE": 60}, True),
        ({"CONN_MAX_AGE": None}, True),
        ({"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}, False),
        ({"CONN_MAX_AGE": 0}, False),
    ],
)
def test_persistent_connections_without_health_checks_are_warned(options, warned):
    config = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", **options}
    found = [m for m in connection_health_warnings("pg", config) if m.id.endswith("W060")]
    assert bool(found) is warned
    if found:
        assert "CONN_HEALTH_CHECKS" in found[0].hint and "'pg'" in found[0].msg


def test_base_url_from_the_environment_is_named_as_such(settings, monkeypatch):
    """going-live.md moves the values to the environment: W001 and E052 then name the
    variable to fix, not a PLUGIPAY key the settings do not have."""
    from django_plugipay.checks import check_settings

    plugipay = {k: v for k, v in settings.PLUGIPAY.items() if k != "BASE_URL"}
    settings.PLUGIPAY, settings.DEBUG = plugipay, False
    monkeypatch.setenv("PLUGIPAY_BASE_URL", "http://127.0.0.1:8787/api/v1")
    found = {m.id: m for m in check_settings(None)}
    for check_id in ("django_plugipay.W001", "django_plugipay.E052"):
        assert "PLUGIPAY_BASE_URL environment variable" in found[check_id].msg
        assert "PLUGIPAY['BASE_URL']" not in found[check_id].msg + (found[check_id].hint or "")


def test_the_settings_checks_name_what_to_fix(settings):
    """A misspelt key is answered with the key meant; credentials half given name the half
    missing."""
    from django_plugipay.checks import check_settings

    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRET": "whsec_x"}
    [typo] = [e for e in check_settings() if e.id == "django_plugipay.W002"]
    assert typo.hint == "Did you mean: WEBHOOK_SECRET → WEBHOOK_SECRETS?"
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SECRET": None}
    [missing] = [e for e in check_settings() if e.id == "django_plugipay.E001"]
    assert missing.msg == "Plugipay's SECRET is missing (and no API_KEY is set)."
