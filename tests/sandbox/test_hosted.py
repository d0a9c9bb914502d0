"""The hosted checkout page over plain HTTP (the browser test is in the service suite)."""

import requests


def page(sandbox, session, path="", **form):
    url = f"{sandbox.base_url}/c/{session['id']}{path}"
    if form:
        return requests.post(url, data=form, allow_redirects=False)
    return requests.get(url, allow_redirects=False)


def test_page_shows_amount_cards_and_sandbox_notice(sandbox, session_factory):
    session = session_factory(amount=250_000)
    response = page(sandbox, session)
    assert response.status_code == 200
    assert "IDR 250,000" in response.text and "not Plugipay" in response.text
    assert "4242 4242 4242 4242" in response.text and 'name="viewport"' in response.text


def test_successful_card_redirects_with_session_id(sandbox, session_factory):
    session = session_factory()
    response = page(
        sandbox, session, "/pay", number="4242 4242 4242 4242", expiry="12/39", cvc="123"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"https://shop.test/ok?session_id={session['id']}"
    assert "Payment received" in page(sandbox, session).text


def test_form_errors(sandbox, session_factory):
    session = session_factory()
    for fields, message in [
        ({"number": "4242 4242 4242 4241", "expiry": "12/39", "cvc": "123"}, "not valid"),
        ({"number": "4242424242424242", "expiry": "01/20", "cvc": "123"}, "has expired"),
        ({"number": "4242424242424242", "expiry": "12/39", "cvc": "12"}, "3 digits"),
        ({"number": "5555555555554444", "expiry": "12/39", "cvc": "123"}, "test cards"),
    ]:
        response = page(sandbox, session, "/pay", **fields)
        assert response.status_code == 400 and message in response.text


def test_decline_shows_message_and_stays_open(sandbox, session_factory):
    session = session_factory()
    response = page(sandbox, session, "/pay", number="4000000000009995", expiry="12/39", cvc="123")
    assert response.status_code == 402 and "insufficient funds" in response.text
    assert "Pay by card" in page(sandbox, session).text


def test_three_ds_pages(sandbox, session_factory):
    session = session_factory()
    response = page(sandbox, session, "/pay", number="4000002760003184", expiry="12/39", cvc="123")
    assert response.headers["Location"].endswith("/3ds")
    assert "Approve this payment?" in page(sandbox, session, "/3ds").text
    failed = page(sandbox, session, "/3ds", action="fail")
    assert failed.status_code == 402 and "authentication failed" in failed.text
    page(sandbox, session, "/pay", number="4000002760003184", expiry="12/39", cvc="123")
    assert page(sandbox, session, "/3ds", action="approve").status_code == 303


def test_cancel_and_status_pages(sandbox, session_factory, control):
    session = session_factory()
    response = page(sandbox, session, "/cancel", confirm="1")
    assert response.headers["Location"] == "https://shop.test/cancel"
    assert "was canceled" in page(sandbox, session).text
    expired = session_factory()
    control("POST", f"checkout-sessions/{expired['id']}/expire")
    assert "has expired" in page(sandbox, expired).text


def test_simulate_async_payment(sandbox, session_factory):
    session = session_factory()
    page(sandbox, session, "/method", method="qris")
    assert "Simulate payment" in page(sandbox, session).text
    response = page(sandbox, session, "/simulate", go="1")
    assert response.status_code == 303 and "session_id=" in response.headers["Location"]


def test_a_declined_card_is_explained_in_the_buyers_language(sandbox, session_factory):
    """The test card's own message is translated with the rest of the page."""
    session = session_factory()
    url = f"{sandbox.base_url}/c/{session['id']}"
    indonesian = {"Accept-Language": "id-ID,id;q=0.9"}
    card = {"expiry": "12/39", "cvc": "123"}
    declined = requests.post(
        f"{url}/pay", data={**card, "number": "4000000000009995"}, headers=indonesian
    )
    assert declined.status_code == 402 and "Saldo kartu tidak mencukupi." in declined.text
    assert "insufficient funds" not in declined.text
    requests.post(f"{url}/pay", data={**card, "number": "4000002760003184"}, headers=indonesian)
    failed = requests.post(f"{url}/3ds", data={"action": "fail"}, headers=indonesian)
    assert failed.status_code == 402 and "Autentikasi 3-D Secure gagal." in failed.text
