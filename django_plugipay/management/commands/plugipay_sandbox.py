"""``manage.py plugipay_sandbox``: run the offline sandbox wired to this project's settings."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import NoReverseMatch, reverse

from django_plugipay.conf import app_settings

STATE_FILE_NAME = ".plugipay_sandbox.json"


class Command(BaseCommand):
    help = (
        "Run plugipay_sandbox with this project's credentials and webhook secret, "
        "forwarding signed webhooks to this project's webhook URL."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--site-url",
            default="http://127.0.0.1:8000",
            help="where this project is served (default %(default)s)",
        )
        parser.add_argument("--event-style", choices=("sdk", "docs"), default="sdk")
        parser.add_argument(
            "--refund-delay",
            default="0",
            help="seconds before pending refunds succeed (0 at once, -1 never)",
        )
        parser.add_argument(
            "--state-file",
            help="keep the sandbox state in this JSON file (default: .plugipay_sandbox.json "
            "next to the SQLite database, else in the current directory)",
        )
        parser.add_argument(
            "--fresh", action="store_true", help="start with an empty sandbox (the file is reset)"
        )
        parser.add_argument(
            "--platform-key",
            action="append",
            default=[],
            metavar="KEY_ID:SECRET",
            help="also accept this platform-admin key (repeatable): it may act on behalf of "
            "the sandbox's accounts and provision them",
        )

    def handle(
        self,
        *args,
        site_url,
        event_style,
        refund_delay,
        state_file,
        fresh,
        platform_key,
        **options,
    ) -> None:
        from plugipay_sandbox.__main__ import main

        base = urlsplit(app_settings.BASE_URL)
        if base.hostname not in ("127.0.0.1", "localhost"):
            raise CommandError(
                f"PLUGIPAY['BASE_URL'] is {app_settings.BASE_URL}; point it at the sandbox "
                "(http://127.0.0.1:8787) to use it."
            )
        if not app_settings.KEY_ID or not app_settings.SECRET:
            raise CommandError("Set PLUGIPAY['KEY_ID'] and ['SECRET'] (any test values).")
        secrets = app_settings.WEBHOOK_SECRETS
        if not secrets:
            raise CommandError("Set PLUGIPAY['WEBHOOK_SECRETS'] so webhooks can be verified.")
        try:
            path = reverse("plugipay:webhook")
        except NoReverseMatch as exc:
            raise CommandError("Include django_plugipay.urls in your URLconf first.") from exc
        argv = [
            "--host",
            base.hostname or "127.0.0.1",
            "--port",
            str(base.port or 8787),
            "--key-id",
            app_settings.KEY_ID,
            "--secret",
            app_settings.SECRET,
            "--forward-to",
            site_url.rstrip("/") + path,
            "--webhook-secret",
            secrets[0],
            "--event-style",
            event_style,
            "--refund-delay",
            refund_delay,
        ]
        argv += ["--state-file", state_file or default_state_file()]
        if fresh:
            argv.append("--fresh")
        for key in platform_key:
            argv += ["--platform-key", key]
        raise SystemExit(main(argv, exit_deadline=True))


def default_state_file() -> str:
    """``.plugipay_sandbox.json`` beside the default SQLite database, else in the cwd."""
    database = settings.DATABASES.get("default", {})
    name = str(database.get("NAME") or "")
    directory = os.getcwd()
    if (
        "sqlite3" in str(database.get("ENGINE", ""))
        and name
        and not name.startswith((":memory:", "file:"))
    ):
        directory = os.path.dirname(os.path.abspath(name))
    return os.path.join(directory, STATE_FILE_NAME)
