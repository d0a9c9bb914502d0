"""The sandbox's test cards and the card-form validation of the hosted checkout page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

SUCCESS = "succeeded"
DECLINED = "declined"
REQUIRES_3DS = "requires_3ds"


@dataclasses.dataclass(frozen=True)
class TestCard:
    number: str
    outcome: str
    failure_code: str | None
    description: str

    @property
    def display(self) -> str:
        return " ".join(self.number[i : i + 4] for i in range(0, 16, 4))


TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("4242424242424242", SUCCESS, None, "Succeeds"),
    TestCard("4000000000000002", DECLINED, "card_declined", "Declined (generic)"),
    TestCard("4000000000009995", DECLINED, "insufficient_funds", "Declined (insufficient funds)"),
    TestCard("4000002760003184", REQUIRES_3DS, None, "Asks for a 3-D Secure step"),
)
_BY_NUMBER = {card.number: card for card in TEST_CARDS}

FAILURE_MESSAGES = {
    "card_declined": "The card was declined.",
    "insufficient_funds": "The card has insufficient funds.",
    "authentication_failed": "3-D Secure authentication failed.",
}


def charge(card: TestCard, three_ds: str | None) -> tuple[str, str | None]:
    """What charging a test card does: (outcome, failure code).

    ``three_ds`` is the answer to the 3-D Secure step ("approve"/"fail"); without one, a card
    that asks for the step answers REQUIRES_3DS.
    """
    if card.outcome == REQUIRES_3DS and three_ds is None:
        return REQUIRES_3DS, None
    if card.outcome == DECLINED:
        return DECLINED, card.failure_code
    if three_ds == "fail":
        return DECLINED, "authentication_failed"
    return SUCCESS, None


class CardError(ValueError):
    """A card form value that cannot be charged; ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_number(number: str) -> str:
    return re.sub(r"[\s-]", "", number or "")


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def check_card(number: str, expiry: str | None, cvc: str | None, *, today: dt.date) -> TestCard:
    """Validate the form values and return the test card they name.

    ``expiry`` and ``cvc`` may be None (the control route pays with a number only).
    """
    digits = normalise_number(number)
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        raise CardError("number", "That card number is not valid.")
    card = _BY_NUMBER.get(digits)
    if card is None:
        raise CardError(
            "number", "Use one of the sandbox test cards listed on this page; no real card works."
        )
    if expiry is not None:
        match = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*", expiry)
        if not match:
            raise CardError("expiry", "Enter the expiry as MM/YY.")
        month, year = int(match.group(1)), int(match.group(2))
        year += 2000 if year < 100 else 0
        if not 1 <= month <= 12:
            raise CardError("expiry", "The expiry month must be between 01 and 12.")
        if (year, month) < (today.year, today.month):
            raise CardError("expiry", "The card has expired.")
    if cvc is not None and not re.fullmatch(r"\d{3}", cvc.strip()):
        raise CardError("cvc", "The CVC is the 3 digits on the back of the card.")
    return card
