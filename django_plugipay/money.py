"""Minor units ↔ display units, using ``CURRENCY_EXPONENTS``. Storage is always the integer."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django_plugipay.conf import app_settings


def format_amount(amount: int | None, currency: str) -> str:
    """``format_amount(250000, "IDR")`` → ``"IDR 250,000"``; USD 1999 → ``"USD 19.99"``."""
    if amount is None:
        return "—"
    exponent = app_settings.exponent(currency)
    value = Decimal(amount).scaleb(-exponent)
    return f"{currency} {value:,.{exponent}f}"


def to_display(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-app_settings.exponent(currency))


def to_minor(value: str | Decimal, currency: str) -> int:
    """Parse a staff-entered amount in display units; reject sub-minor-unit precision."""
    exponent = app_settings.exponent(currency)
    try:
        number = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount.") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not an amount.")
    minor = number.scaleb(exponent)
    if minor != minor.quantize(Decimal(1), rounding=ROUND_DOWN):
        raise ValueError(f"{currency} amounts have at most {exponent} decimal places.")
    return int(minor)
