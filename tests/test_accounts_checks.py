"""System checks of ``PLUGIPAY["ACCOUNTS"]``: a malformed entry is named with a hint."""

import pytest

from django_plugipay.checks import check_accounts


def ids(settings, accounts):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "ACCOUNTS": accounts}
    return sorted(message.id for message in check_accounts())


@pytest.mark.parametrize(
    ("accounts", "expected"),
    [
        ({}, []),
        ({"b": {"KEY_ID": "pk_test_b", "SECRET": "sk", "WEBHOOK_SECRETS": ["whsec_b"]}}, []),
        ({"m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": ["whsec_m"]}}, []),
        (["not", "a", "dict"], ["django_plugipay.E070"]),
        ({"b": "pk_test_b"}, ["django_plugipay.E070"]),
        (
            {"m": {"ON_BEHALF": "acc_m", "WEBHOOK_SECRETS": ["w"]}},
            ["django_plugipay.E071", "django_plugipay.E074"],
        ),
        ({"default": {"API_KEY": "sk_test_x"}}, ["django_plugipay.E072"]),
        ({"m": {"ON_BEHALF_OF": "ws_m", "WEBHOOK_SECRETS": ["w"]}}, ["django_plugipay.E073"]),
        ({"m": {"API_KEY": "sk_test_m"}}, ["django_plugipay.W070"]),
        (
            {"acme": {"API_KEY": "sk_live_acme…", "WEBHOOK_SECRETS": ["whsec_acme"]}},
            ["django_plugipay.E077"],
        ),
        (
            {"sg": {"KEY_ID": "pk_sg", "SECRET": "sk_sg", "WEBHOOK_SECRETS": ["whsec_sg\n"]}},
            ["django_plugipay.E077"],
        ),
    ],
)
def test_account_entries_are_checked(settings, accounts, expected):
    assert ids(settings, accounts) == expected


def test_the_hint_shows_a_working_entry(settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"m": {"SECRET": "x", "WEBHOOK_SECRETS": ["w"]}},
    }
    [message] = check_accounts()
    assert "ON_BEHALF_OF" in message.hint and "KEY_ID" in message.hint


def test_the_account_database_hook_needs_the_router(settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNT_DATABASE": "tests.test_accounts.tenant_database",
    }
    settings.DATABASE_ROUTERS = []
    assert [m.id for m in check_accounts()] == ["django_plugipay.E075"]
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    assert check_accounts() == []


def test_a_key_that_cannot_be_sent_names_the_entry_and_key(settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"acme": {"API_KEY": "sk_live_acme…", "WEBHOOK_SECRETS": ["whsec_a"]}},
    }
    [message] = check_accounts()
    assert message.msg.startswith("PLUGIPAY['ACCOUNTS']['acme']['API_KEY'] contains '…'")
