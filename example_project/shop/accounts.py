"""The demo's second Plugipay account, served when PLUGIPAY_SECOND_ACCOUNT is set: the shop
sells for it when a buyer picks it on the home page (``PLUGIPAY["API_ACCOUNT"]`` points at
:func:`api_account` for the DRF API too)."""

from django_plugipay import accounts, services
from django_plugipay.conf import app_settings
from django_plugipay.services import webhook_endpoints

#: the alias of the second account in settings.PLUGIPAY["ACCOUNTS"]
SECOND = "second"
#: the session key holding the buyer's pick
SESSION_KEY = "plugipay_account"


def served() -> bool:
    return SECOND in app_settings.ACCOUNTS


def api_account(request):
    """``PLUGIPAY["API_ACCOUNT"]``: the account the buyer picked (None: the default one)."""
    if served() and request.session.get(SESSION_KEY) == SECOND:
        return SECOND
    return None


def set_up_second_account(site_url: str) -> str:
    """Provision the second account at the sandbox with the platform key and register this
    site's webhook URL for it (again: its old endpoints there are removed); return the
    endpoint's signing secret. What ``make demo`` runs before the web server starts."""
    account_id = app_settings.ACCOUNTS[SECOND]["ON_BEHALF_OF"]
    platform = services.client_for(SECOND).for_merchant(None)  # the platform key itself
    platform.request(
        "POST",
        "/admin/workspaces",
        json_body={
            "accountId": account_id,
            "brandName": app_settings.ACCOUNTS[SECOND]["NAME"] or "Second shop",
            "businessEmail": "second@example.com",
        },
        idempotency_key=f"demo-provision:{account_id}",
    )
    url = webhook_endpoints.site_webhook_url(site_url)
    with accounts.acting_for(SECOND):
        for endpoint in webhook_endpoints.list_endpoints():
            if endpoint.get("url") == url:
                webhook_endpoints.delete_endpoint(endpoint_id=endpoint["id"])
        return webhook_endpoints.create_endpoint(url=url)["secret"]
