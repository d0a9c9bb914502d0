"""``manage.py plugipay_webhooks``: list, create, rotate, enable, disable and delete Plugipay's
webhook endpoints for this site."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_plugipay.accounts import acting_for
from django_plugipay.conf import ENV_FALLBACKS, app_settings
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Account
from django_plugipay.services import webhook_endpoints as endpoints

ENV_NAME = ENV_FALLBACKS["WEBHOOK_SECRETS"]
DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> int:
    """``90``, ``90s``, ``15m``, ``24h`` or ``7d`` in seconds, at most Plugipay's 7 days (a
    usage error otherwise, before Plugipay is asked)."""
    match = DURATION.match(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (e.g. 3600, 15m, 24h, 7d).")
    seconds = int(match[1]) * UNITS[match[2]]
    if seconds > endpoints.MAX_OVERLAP:
        raise argparse.ArgumentTypeError(
            f"{value!r} is longer than 7d, the longest Plugipay signs with an old secret too."
        )
    return seconds


class Command(BaseCommand):
    help = (
        "Manage Plugipay's webhook endpoints for this site: list; create (this site's "
        "plugipay:webhook URL, subscribed to exactly the events the app handles); rotate the "
        "signing secret with an overlap; enable, disable or delete an endpoint."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--account",
            help="the alias of the account whose endpoints to manage (default: the default "
            "account); before the action",
        )
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        self._site(actions.add_parser("list", help="every endpoint, marking this site's"))
        create = actions.add_parser("create", help="register this site's webhook URL")
        self._site(create)
        self._secret_out(create)
        rotate = actions.add_parser("rotate", help="a new signing secret, with an overlap")
        self._target(rotate)
        rotate.add_argument(
            "--overlap",
            type=duration,
            default=86400,
            help="how long Plugipay keeps signing with the old secret too (default 24h)",
        )
        rotate.add_argument(
            "--finish",
            action="store_true",
            help="after the overlap: keep only the new secret (the first in WEBHOOK_SECRETS)",
        )
        self._secret_out(rotate)
        for name, text in (
            ("enable", "re-enable an endpoint (clears its failure streak)"),
            ("disable", "pause an endpoint (queued deliveries fail)"),
            ("delete", "delete an endpoint"),
        ):
            self._target(actions.add_parser(name, help=text))

    @staticmethod
    def _site(parser) -> None:
        parser.add_argument(
            "--site-url",
            help="this site's public address, e.g. https://shop.example (default: the "
            "current Site's domain, with django.contrib.sites)",
        )

    def _target(self, parser) -> None:
        parser.add_argument("--id", dest="endpoint_id", help="the endpoint (default: this site's)")
        self._site(parser)

    @staticmethod
    def _secret_out(parser) -> None:
        parser.add_argument(
            "--env-file",
            help=f"append {ENV_NAME}=… to this .env file instead of printing the secret",
        )

    def handle(self, *args, action: str, account: str | None = None, **options: Any) -> None:
        try:
            with acting_for(account):
                getattr(self, f"do_{action}")(**options)
        except Account.DoesNotExist as exc:
            raise CommandError(f"--account: {exc}") from exc
        except PlugipayError as exc:
            raise CommandError(str(exc)) from exc

    # ── the actions ───────────────────────────────────────────────────────────

    def do_list(self, *, site_url=None, **options: Any) -> None:
        expected = endpoints.site_webhook_url(site_url) if site_url else None
        found = endpoints.list_endpoints()
        if not found:
            self.stdout.write("No webhook endpoints at Plugipay.")
        for endpoint in found:
            url = str(endpoint.get("url"))
            ours = " (this site)" if endpoints.is_this_site(url, expected=expected) else ""
            status = endpoint.get("status") or ("active" if endpoint.get("active") else "disabled")
            failures = endpoint.get("consecutiveFailures") or 0
            line = f"{endpoint.get('id')}  {status:<8}  {endpoint.get('url')}{ours}"
            line += f"  failures: {failures}"
            if endpoint.get("disabledReason"):
                line += f"  ({endpoint['disabledReason']})"
            self.stdout.write(line)

    def do_create(self, *, site_url=None, env_file=None, **options: Any) -> None:
        url = endpoints.site_webhook_url(site_url)
        found = endpoints.list_endpoints()
        existing = [e for e in found if e.get("url") == url]
        if existing:
            raise CommandError(
                f"{url} is registered already ({existing[0].get('id')}); use `rotate` for a new "
                "secret, or `delete` it first."
            )
        # Another endpoint of this site stays active (the sandbox's local URL beside
        # --site-url, say): its deliveries still need the secrets accepted now.
        others = [e for e in found if endpoints.is_this_site(str(e.get("url"))) and _active(e)]
        created = endpoints.create_endpoint(url=url)
        events = created.get("events") or []
        self.stdout.write(f"Created {created['id']} for {url} ({len(events)} event types).")
        keep = (_written(env_file) or app_settings.WEBHOOK_SECRETS) if others else []
        if keep:
            self.stdout.write(
                f"{', '.join(str(e.get('id')) for e in others)} of this site stays active: "
                "its secrets are kept after the new one; delete it to keep the new one alone."
            )
        self._write_secret(self._secret(created), keep, env_file)

    def do_rotate(
        self, *, endpoint_id=None, site_url=None, overlap, finish=False, env_file=None, **options
    ) -> None:
        if finish:  # the old secret signs nothing any more: stop accepting it
            # the rotation's line in the file, when there is one: this process may not have
            # loaded the file (Django reads no .env), so its settings hold the old secret first
            current = _written(env_file) or app_settings.WEBHOOK_SECRETS
            if not current:
                raise CommandError("WEBHOOK_SECRETS is empty: nothing to finish.")
            self._write_secret(current[0], [], env_file)
            return
        endpoint_id = endpoint_id or self._ours(site_url)["id"]
        rotated = endpoints.rotate_secret(endpoint_id=endpoint_id, overlap=overlap)
        until = rotated.get("previousSecretExpiresAt")
        self.stdout.write(
            f"Rotated {endpoint_id}'s secret. "
            + (
                f"Plugipay signs with both secrets until {until}: deploy the new one (kept "
                "first, the old one after it) before then, and remove the old one after."
                if until
                else "The old secret no longer signs deliveries."
            )
        )
        # the secrets accepted now: the file's when it has them (this process may not have
        # loaded it), else the settings'
        current = _written(env_file) or app_settings.WEBHOOK_SECRETS
        self._write_secret(self._secret(rotated), current, env_file)

    def do_enable(self, **options: Any) -> None:
        self._set_active(True, **options)

    def do_disable(self, **options: Any) -> None:
        self._set_active(False, **options)

    def do_delete(self, *, endpoint_id=None, site_url=None, **options: Any) -> None:
        endpoint_id = endpoint_id or self._ours(site_url)["id"]
        endpoints.delete_endpoint(endpoint_id=endpoint_id)
        self.stdout.write(f"Deleted {endpoint_id}.")

    # ── helpers ───────────────────────────────────────────────────────────────

    def _set_active(self, active: bool, *, endpoint_id=None, site_url=None, **options) -> None:
        endpoint_id = endpoint_id or self._ours(site_url)["id"]
        updated = endpoints.set_active(endpoint_id=endpoint_id, active=active)
        self.stdout.write(
            f"{endpoint_id} is {updated.get('status') or ('active' if active else 'disabled')}."
        )

    @staticmethod
    def _ours(site_url: str | None) -> dict[str, Any]:
        expected = endpoints.site_webhook_url(site_url) if site_url else None
        found = [
            e
            for e in endpoints.list_endpoints()
            if endpoints.is_this_site(str(e.get("url")), expected=expected)
        ]
        if len(found) != 1:
            urls = ", ".join(str(e.get("url")) for e in found) or "none"
            raise CommandError(
                f"Cannot tell which endpoint is this site's (matching: {urls}); pass --id."
            )
        return found[0]

    @staticmethod
    def _secret(answer: dict[str, Any]) -> str:
        secret = answer.get("signingSecret") or answer.get("secret")
        if not secret:
            raise CommandError("Plugipay's answer carries no secret.")
        return str(secret)

    def _write_secret(self, secret: str, keep: list[str], env_file: str | None) -> None:
        """Print the secret once, or append it (first, then the ones still accepted during a
        rotation's overlap) to ``env_file``."""
        value = ",".join([secret, *[s for s in keep if s != secret]])
        if env_file is None:
            self.stdout.write(f"{ENV_NAME}={value}")
            self.stdout.write(
                "The secret is shown once: store it now (PLUGIPAY['WEBHOOK_SECRETS'] or the "
                "environment variable above)."
            )
            return
        stamp = timezone.now().isoformat(timespec="seconds")
        with Path(env_file).open("a", encoding="utf-8") as out:
            out.write(f"# plugipay_webhooks, {stamp}\n{ENV_NAME}={value}\n")
        self.stdout.write(f"Appended {ENV_NAME} to {env_file}.")
        if "WEBHOOK_SECRETS" in (getattr(settings, "PLUGIPAY", None) or {}):
            self.stderr.write(
                f"PLUGIPAY['WEBHOOK_SECRETS'] is set in your settings, and it wins over "
                f"{ENV_NAME}: the site keeps verifying with it. Put {value.split(',')} there "
                f"instead, or remove that key and have the site's environment load {env_file}."
            )


def _active(endpoint: dict[str, Any]) -> bool:
    status = endpoint.get("status")
    return status == "active" if status else bool(endpoint.get("active", True))


def _written(env_file: str | None) -> list[str]:
    """The secrets of the last ``PLUGIPAY_WEBHOOK_SECRET=`` line of ``env_file`` (none: [])."""
    if env_file is None or not Path(env_file).exists():
        return []
    values = []
    for line in Path(env_file).read_text(encoding="utf-8").splitlines():
        line = line.strip().removeprefix("export ").strip()  # shell style, as well
        if line.startswith(f"{ENV_NAME}="):
            values.append(line.split("=", 1)[1].strip().strip("'\""))
    return [s.strip() for s in values[-1].split(",") if s.strip()] if values else []
