"""``manage.py plugipay_plans``: make Plugipay's plans and prices match the declared catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_plugipay import services
from django_plugipay.exceptions import PlugipayError


def read_definitions(path: str) -> dict[str, Any]:
    """A catalog file: JSON, or TOML (Python 3.11+) when the name ends in ``.toml``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
    try:
        if path.endswith(".toml"):
            if sys.version_info < (3, 11):
                raise CommandError("TOML catalogs need Python 3.11 or later; use JSON.")
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{path} is not a valid catalog: {exc}") from exc
    plans = data.get("plans", data) if isinstance(data, dict) else data
    if not isinstance(plans, dict):
        raise CommandError(f"{path} must hold an object of plans by key.")
    return plans


class Command(BaseCommand):
    help = (
        "Create or update Plugipay plans and prices from PLUGIPAY['PLANS'] (or --file), then "
        "mirror them. Idempotent: a second run creates nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--file",
            help="a JSON (or TOML) file of plans by key, instead of the PLANS setting",
        )

    def handle(self, *args, file=None, **options) -> None:
        definitions = read_definitions(file) if file else None
        try:
            results = services.ensure_plans(definitions=definitions)
        except PlugipayError as exc:
            raise CommandError(str(exc)) from exc
        if not results:
            self.stdout.write("No plans declared: set PLUGIPAY['PLANS'] or pass --file.")
            return
        for result in results:
            prices = result.plan.prices.filter(active=True).count()
            line = f"{result.key}: {result.action} {result.plan}, active prices: {prices}"
            if result.prices_added or result.prices_deactivated:
                line += f" ({result.prices_added} added, {result.prices_deactivated} deactivated)"
            self.stdout.write(self.style.SUCCESS(line))
            if result.fixed_differences:
                fields = ", ".join(result.fixed_differences)
                self.stdout.write(
                    self.style.WARNING(
                        f"{result.key}: {fields} differ from the definition but cannot change "
                        "on an existing plan; declare the plan under a new key (and archive "
                        "the old one) to change them."
                    )
                )
