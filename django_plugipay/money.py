"""Minor units ↔ display units, using ``CURRENCY_EXPONENTS``. Storage is always the integer.

Display follows the active language: ``IDR 250,000`` in English, ``Rp 250.000`` in Indonesian
(``.`` groups thousands and ``,`` marks decimals there, as staff type them).
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from django_plugipay.conf import app_settings

#: Currency symbols used in Indonesian; other currencies keep their ISO code.
ID_SYMBOLS = {"IDR": "Rp"}

#: The largest amount, in minor units, accepted anywhere: the largest integer a JSON number
#: carries exactly in every client (JavaScript's ``Number.MAX_SAFE_INTEGER``), well inside the
#: database's 64-bit column.
MAX_AMOUNT = 2**53 - 1


def _indonesian() -> bool:
    return (get_language() or "").split("-")[0] in ("id", "in")


def format_amount(amount: int | None, currency: str) -> str:
    """``format_amount(250000, "IDR")`` → ``"IDR 250,000"`` (``"Rp 250.000"`` in Indonesian);
    USD 1999 → ``"USD 19.99"`` (``"USD 19,99"``)."""
    if amount is None:
        return "—"
    exponent = app_settings.exponent(currency)
    value = Decimal(amount).scaleb(-exponent)
    text = f"{value:,.{exponent}f}"
    if _indonesian():
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return f"{ID_SYMBOLS.get(currency, currency)} {text}"
    return f"{currency} {text}"


def to_display(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-app_settings.exponent(currency))


def input_value(amount: int, currency: str) -> str:
    """The amount as staff would type it in the active language (no grouping)."""
    text = str(to_display(amount, currency))
    return text.replace(".", ",") if _indonesian() else text


def amount_limit_error(currency: str) -> str:
    """The message for an amount above :data:`MAX_AMOUNT`, naming the limit in ``currency``."""
    return _("The amount is too large: at most %(limit)s.") % {
        "limit": format_amount(MAX_AMOUNT, currency)
    }


def check_amount(amount: object, currency: str) -> int:
    """``amount`` as minor units when it is a whole number from 1 to :data:`MAX_AMOUNT`;
    else ``ValueError`` with a message fit to show (naming the limit when it is too large)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(_("The amount must be a positive whole number of minor units."))
    if amount > MAX_AMOUNT:
        raise ValueError(amount_limit_error(currency))
    return amount


#: a number grouped by three with each language's grouping mark (``1.250.000,50``, ``1,250,000.50``)
_GROUPED = {
    ".": re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?"),
    ",": re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"),
}


#: an amount as people write it, once its grouping is removed and its decimal mark is "."
_WRITTEN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _decimals_error(currency: str, exponent: int) -> str:
    return _("%(currency)s amounts have at most %(places)d decimal places.") % {
        "currency": currency,
        "places": exponent,
    }


#: what no written amount holds: a letter (``Rp``, ``IDR``, an exponent's ``e``)
_NOT_A_NUMBER = re.compile(r"[^\W\d_]")


def to_minor(value: str | Decimal, currency: str) -> int:
    """Parse a staff-entered amount in display units; reject sub-minor-unit precision.

    In Indonesian ``250.000`` is two hundred and fifty thousand and ``19,99`` has decimals.
    A grouping mark that does not group digits by three (``19.99`` in Indonesian, ``1,5`` in
    English) is the other language's decimal mark, and more decimals written than the
    currency has (``250.000`` rupiah in English) the other language's grouping: both are
    refused, never read as an amount a hundred or a thousand times off. Text is written as
    people write amounts: digits, the marks, a sign — no exponent (``1e3``) and no underscore
    (``1_000``). Anything that is not a finite number, or is beyond :data:`MAX_AMOUNT` either
    way, raises ``ValueError`` (never ``decimal.InvalidOperation``), the latter naming the
    limit.
    """
    exponent = app_settings.exponent(currency)
    text = str(value).strip()
    if not isinstance(value, Decimal):
        group, mark = (".", ",") if _indonesian() else (",", ".")
        if _NOT_A_NUMBER.search(text):  # ``Rp 1.000``: not a grouping mistake
            raise ValueError(
                _(
                    "%(value)r is not an amount: write the number alone, without the "
                    "currency or other letters."
                )
                % {"value": value}
            )
        if group in text and not _GROUPED[group].fullmatch(text):
            raise ValueError(
                _(
                    "%(value)r is not an amount: group thousands by three with “%(group)s” and "
                    "write decimals after “%(mark)s”."
                )
                % {"value": value, "group": group, "mark": mark}
            )
        text = text.replace(group, "").replace(mark, ".")
        if not _WRITTEN.fullmatch(text):
            raise ValueError(_("%(value)r is not an amount.") % {"value": value})
        written = text.partition(".")[2]
        # three decimals or more where the currency has fewer are the other language's
        # grouping (``1.000000`` a million with a dot dropped); zeros written out to two
        # decimals (``250.000,00`` rupiah) are the amount
        if len(written) > max(exponent, 2):
            raise ValueError(_decimals_error(currency, exponent))
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(_("%(value)r is not an amount.") % {"value": value}) from None
    if not number.is_finite():
        raise ValueError(_("%(value)r is not an amount.") % {"value": value})
    if number.adjusted() > len(str(MAX_AMOUNT)):  # settled before any arithmetic on it
        raise ValueError(amount_limit_error(currency))
    # Bounded above, so these stay within the context's 28 digits and never round.
    if number != number.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_DOWN):
        raise ValueError(_decimals_error(currency, exponent))
    minor = int(number.scaleb(exponent))
    if abs(minor) > MAX_AMOUNT:
        raise ValueError(amount_limit_error(currency))
    return minor
