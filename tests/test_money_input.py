"""Money input never 5xx: every amount parser refuses out-of-range and non-finite input with a
validation error naming the limit (the admin form, the DRF serializers, the services,
``to_minor``)."""

from importlib.util import find_spec

import pytest
from django.urls import reverse
from django.utils import translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_plugipay import services
from django_plugipay.admin.refunds import RefundForm
from django_plugipay.exceptions import PlugipayError, RefundError
from django_plugipay.models import Refund
from django_plugipay.money import MAX_AMOUNT, to_minor
from tests.factories import PaymentFactory
from tests.test_admin import staff

HOSTILE = ["99999999999999999999999999999", "1e100", "-1e100", "1E+999999999", "NaN", "inf"]
LIMIT_IDR = "at most IDR 9,007,199,254,740,991"

#: the API's tests; the rest runs where DRF is not installed too (the nodrf tox env)
needs_drf = pytest.mark.skipif(find_spec("rest_framework") is None, reason="DRF is not installed")


@pytest.mark.parametrize("currency", ["IDR", "USD"])
@pytest.mark.parametrize("text", [*HOSTILE, "-inf", "sNaN", "9007199254740992", "1" * 5000])
def test_to_minor_refuses_with_a_value_error(text, currency):
    with pytest.raises(ValueError, match=r"too large|not an amount"):
        to_minor(text, currency)


@pytest.mark.parametrize("text", ["99999999999999999999999999999", "1" * 40, str(MAX_AMOUNT + 1)])
def test_the_limit_is_named(text):
    with pytest.raises(ValueError, match=LIMIT_IDR):
        to_minor(text, "IDR")
    with translation.override("id"), pytest.raises(ValueError, match="Rp 9.007.199.254.740.991"):
        to_minor(text, "IDR")


def test_the_largest_amount_is_accepted():
    assert to_minor(str(MAX_AMOUNT), "IDR") == MAX_AMOUNT
    assert to_minor("90071992547409.91", "USD") == MAX_AMOUNT


@pytest.mark.django_db
@pytest.mark.parametrize("text", HOSTILE)
def test_admin_refund_page_shows_the_error_instead_of_500(client, text):
    payment = PaymentFactory(amount=250_000)
    client.force_login(staff("refund_payment"))
    url = reverse("admin:django_plugipay_payment_refund", args=[payment.pk])
    response = client.post(url, {"post": "yes", "amount": text, "reason": "duplicate"})
    assert response.status_code == 200
    html = response.content.decode()
    assert LIMIT_IDR in html or "is not an amount" in html
    assert not Refund.objects.exists()


@needs_drf
@pytest.mark.django_db
@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, 10**30, "1e100", "NaN", "inf", 1e100])
def test_api_refund_amount_out_of_range_is_400(amount):
    from rest_framework.test import APIClient

    payment = PaymentFactory(amount=250_000)
    api = APIClient()
    api.force_authenticate(staff("refund_payment"))
    response = api.post(
        f"/plugipay/api/payments/{payment.plugipay_id}/refunds/",
        {"amount": amount, "reason": "duplicate"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "amount" in response.json()
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_services_name_the_limit():
    payment = PaymentFactory(amount=250_000)
    with pytest.raises(RefundError, match=LIMIT_IDR):
        services.refund_payment(payment=payment, amount=MAX_AMOUNT + 1, reason="duplicate")
    with pytest.raises(PlugipayError, match=LIMIT_IDR) as caught:
        services.create_checkout_session(
            amount=10**30,
            currency="IDR",
            success_url="https://a.test/",
            cancel_url="https://a.test/",
        )
    assert caught.value.code == "amount"
    assert not Refund.objects.exists()


# What a person or a frontend may type or send as an amount: numbers of every size and kind,
# their text with exponents, separators and junk, and anything at all.
numbers = st.one_of(
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
)
amounts = st.one_of(
    numbers,
    numbers.map(str),
    st.from_regex(r"\A[-+ ]?[0-9.,]{0,40}([eE][-+]?[0-9]{1,12})?\s?\Z"),
    st.sampled_from(["NaN", "sNaN", "-inf", "Infinity", "1e100", "١٢٣", "²", "0x10", "1_000"]),
    st.text(max_size=60),
)
PROPERTY = settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(
    amount=amounts, language=st.sampled_from(["en", "id"]), currency=st.sampled_from(["IDR", "USD"])
)
def test_the_admin_form_only_ever_validates(amount, language, currency):
    payment = PaymentFactory.build(amount=MAX_AMOUNT, currency=currency)
    data = {"amount": str(amount), "reason": "duplicate"}
    with translation.override(language):
        form = RefundForm(data, payment=payment, remaining=MAX_AMOUNT)
        if form.is_valid():
            value = form.cleaned_data["amount"]  # None: blank, everything left
            assert value is None or 0 < value <= MAX_AMOUNT
        else:
            assert form.errors


@needs_drf
@PROPERTY
@given(amount=st.one_of(amounts, st.none(), st.booleans()))
def test_the_serializers_only_ever_validate(amount):
    from django_plugipay.api.serializers import CheckoutRequestSerializer, RefundRequestSerializer

    payment = PaymentFactory.build(amount=MAX_AMOUNT)
    refund = RefundRequestSerializer(
        data={"amount": amount, "reason": "duplicate"}, context={"payment": payment}
    )
    if refund.is_valid():
        value = refund.validated_data.get("amount")
        assert value is None or 0 < value <= MAX_AMOUNT
    checkout = CheckoutRequestSerializer(data={"reference": "order-1", "quantity": amount})
    checkout.is_valid()  # never raises


@pytest.mark.parametrize(
    ("language", "text", "currency"),
    [
        ("id", "19.99", "USD"),  # an English decimal in an Indonesian admin: not USD 1,999.00
        ("id", "1.5", "USD"),
        ("id", "250.00", "IDR"),
        ("en", "19,99", "USD"),  # an Indonesian decimal in an English admin
        ("en", "1,5", "IDR"),
        ("en", "250.000", "IDR"),  # Indonesian grouping in English: not IDR 250
        ("en", "1.000000", "IDR"),  # a million with a dot dropped: not IDR 1
        ("en", "12,34,567", "IDR"),
        ("en", "250.000e0", "IDR"),  # the grouping guard is not stepped round by an exponent
        ("en", "250.000_0", "IDR"),
        ("en", "1.000E0", "IDR"),
        ("en", "1e3", "IDR"),  # nobody writes amounts so: refused, not read
        ("en", "1.5e1", "USD"),
        ("id", "1,000e2", "IDR"),
        ("en", "1_000", "IDR"),
        ("id", "_1", "IDR"),
        ("en", "250_00", "USD"),
        ("en", "0E0", "IDR"),
    ],
)
def test_the_other_language_s_marks_are_refused_not_read_a_hundred_times_off(
    language, text, currency
):
    with translation.override(language), pytest.raises(ValueError, match="amount|jumlah"):
        to_minor(text, currency)


@pytest.mark.parametrize(
    ("language", "text", "currency", "minor"),
    [
        ("id", "1.250.000", "IDR", 1_250_000),
        ("id", "1.250,50", "USD", 125_050),
        ("id", "19,99", "USD", 1999),
        ("id", "250000", "IDR", 250_000),
        ("en", "1,250,000", "IDR", 1_250_000),
        ("en", "1,250.5", "USD", 125_050),
        ("en", "19.99", "USD", 1999),
        ("en", "-1,000", "IDR", -1000),
    ],
)
def test_each_language_s_own_marks_are_read(language, text, currency, minor):
    with translation.override(language):
        assert to_minor(text, currency) == minor


@pytest.mark.django_db
def test_a_usd_refund_typed_with_a_dot_in_indonesian_asks_for_the_comma():
    payment = PaymentFactory(amount=500_000, currency="USD")
    with translation.override("id"):
        form = RefundForm(
            {"amount": "19.99", "reason": "duplicate"},
            payment=payment,
            remaining=payment.remaining_to_refund(),
        )
        assert not form.is_valid()
    assert "“,”" in str(form.errors["amount"])


@pytest.mark.parametrize(
    ("language", "text", "currency", "minor"),
    [
        ("id", "250.000,00", "IDR", 250_000),  # how rupiah are often written in Indonesian
        ("id", "1000,00", "IDR", 1000),
        ("en", "1,000.00", "IDR", 1000),
        ("en", "250000.00", "IDR", 250_000),
    ],
)
def test_zero_decimals_written_out_are_the_amount(language, text, currency, minor):
    """Two written decimals cannot be the other language's grouping (it groups by three)."""
    with translation.override(language):
        assert to_minor(text, currency) == minor


@pytest.mark.parametrize("text", ["Rp 1.000", "IDR 5000", "1.000 rupiah", "Rp1.000"])
def test_an_amount_with_its_currency_is_told_to_drop_it(text):
    """Not a hint to group thousands (which ``Rp 1.000`` does): the currency is the mistake."""
    with translation.override("id"), pytest.raises(ValueError, match="tanpa mata uang"):
        to_minor(text, "IDR")


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ({"USD": 2}, "IDR 95,000"),  # another currency added: IDR stays whole rupiah
        ({}, "IDR 95,000"),
        ({"idr": 2}, "IDR 950.00"),  # the project's own scale for IDR, its code in any case
    ],
)
def test_currency_exponents_given_are_added_over_the_defaults(settings, given, shown):
    """A project that adds one currency does not lose the defaults: with ``{"USD": 2}``
    alone, IDR 95,000 was shown (and pre-filled in the refund form) as IDR 950.00."""
    from django_plugipay.money import format_amount

    settings.PLUGIPAY = {**settings.PLUGIPAY, "CURRENCY_EXPONENTS": given}
    assert format_amount(95_000, "IDR") == shown
