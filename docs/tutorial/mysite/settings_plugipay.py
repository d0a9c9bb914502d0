INSTALLED_APPS += ["django_plugipay", "shop"]

PLUGIPAY = {
    # The sandbox's test credentials; for Plugipay itself use your pk_test_/sk_test_ keys.
    "KEY_ID": "pk_test_sandbox",
    "SECRET": "sk_test_sandbox",
    "BASE_URL": "http://127.0.0.1:8787",  # the sandbox; remove this line for Plugipay itself
    "WEBHOOK_SECRETS": ["whsec_dev"],
}

LOGIN_REDIRECT_URL = "shop:home"
# Print emails (the receipts) in the runserver terminal instead of sending them. A project made
# by Django 6.1 or later already does, with its MAILERS setting (which forbids EMAIL_BACKEND).
if "MAILERS" not in globals():
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
