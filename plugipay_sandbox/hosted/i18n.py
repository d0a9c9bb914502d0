"""The hosted pages' languages: English and Bahasa Indonesia, chosen by ``Accept-Language``.

One table, English text as the key (an untranslated string shows in English)::

    from plugipay_sandbox.hosted import i18n
    _ = i18n.gettext
    _("Pay by card")                       # "Bayar dengan kartu" while "id" is active
    _("Pay {amount}", amount="IDR 5,000")  # str.format on the translated text
    i18n.money(250000, "IDR")              # "Rp 250.000" in id, "IDR 250,000" in en

``SandboxApp`` activates the request's language (``?lang=`` first, then ``Accept-Language``)
before every page handler; :func:`activate` and :func:`language_of` are public for other pages.
The language lives in a context variable, so threads serving other requests keep their own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping

LANGUAGES = ("en", "id")
DEFAULT = "en"
DISPLAY_EXPONENTS = {"IDR": 0, "USD": 2, "JPY": 0, "KRW": 0}

_current: contextvars.ContextVar[str] = contextvars.ContextVar("sandbox_language", default=DEFAULT)

ID: dict[str, str] = {
    # layout
    "Plugipay <b>Sandbox</b> — this is not Plugipay. No real money moves; only the sandbox "
    "test cards work.": "Plugipay <b>Sandbox</b> — ini bukan Plugipay. Tidak ada uang sungguhan "
    "yang berpindah; hanya kartu uji sandbox yang berfungsi.",
    "Name on card": "Nama pada kartu",
    "Card number": "Nomor kartu",
    "Expiry": "Masa berlaku",
    "CVC": "CVC",
    "Approve this payment?": "Setujui pembayaran ini?",
    "{amount} to {merchant}. A real bank would ask for a one-time code.": "{amount} kepada "
    "{merchant}. Bank sungguhan akan meminta kode sekali pakai.",
    "Approve": "Setujui",
    "Fail authentication": "Gagalkan autentikasi",
    # checkout
    "Checkout": "Pembayaran",
    "Card": "Kartu",
    "Bank transfer (VA)": "Transfer bank (VA)",
    "QRIS": "QRIS",
    "E-wallet": "Dompet digital",
    "Retail outlet": "Gerai ritel",
    "PayPal": "PayPal",
    "Manual transfer": "Transfer manual",
    "Checkout session": "Sesi pembayaran",
    "Pay by card": "Bayar dengan kartu",
    "Pay {amount}": "Bayar {amount}",
    "Or pay another way": "Atau bayar dengan cara lain",
    "Cancel and return to the shop": "Batalkan dan kembali ke toko",
    "Sandbox test cards (any future expiry, any 3-digit CVC)": "Kartu uji sandbox (masa "
    "berlaku apa pun di masa depan, CVC 3 digit apa pun)",
    "Payment received": "Pembayaran diterima",
    "Paid with {method}.": "Dibayar dengan {method}.",
    "Return to the shop": "Kembali ke toko",
    "Back to the shop": "Kembali ke toko",
    "Waiting for the merchant": "Menunggu konfirmasi penjual",
    "The merchant confirms manual transfers by hand. You claimed your transfer at {time}.": ""
    "Penjual mengonfirmasi transfer manual secara langsung. Anda mengklaim transfer pada {time}.",
    "Proof of transfer": "Bukti transfer",
    "This checkout has expired": "Pembayaran ini sudah kedaluwarsa",
    "This checkout was canceled": "Pembayaran ini dibatalkan",
    "This checkout is {status}": "Pembayaran ini berstatus {status}",
    "Start again from the shop.": "Mulai lagi dari toko.",
    "Cancel": "Batal",
    "Pay before {deadline}": "Bayar sebelum {deadline}",
    "Transfer exactly {amount} to this {bank} virtual account:": "Transfer tepat {amount} ke "
    "virtual account {bank} ini:",
    "Virtual account number": "Nomor virtual account",
    "Scan this QRIS code with any bank or e-wallet app to pay {amount}:": "Pindai kode QRIS ini "
    "dengan aplikasi bank atau dompet digital apa pun untuk membayar {amount}:",
    "QR string": "String QR",
    "Not a decodable QR code: the sandbox draws its string as a pattern.": "Bukan kode QR yang "
    "dapat dipindai: sandbox menggambar string-nya sebagai pola.",
    "Open {wallet} to approve the payment of {amount}.": "Buka {wallet} untuk menyetujui "
    "pembayaran sebesar {amount}.",
    "Open the {wallet} approval page": "Buka halaman persetujuan {wallet}",
    "Pay {amount} at any {outlet} cashier with this payment code:": "Bayar {amount} di kasir "
    "{outlet} mana pun dengan kode pembayaran ini:",
    "Payment code": "Kode pembayaran",
    "In the sandbox no money moves: settle the payment below.": "Di sandbox tidak ada uang yang "
    "berpindah: selesaikan pembayaran di bawah ini.",
    "Simulate payment": "Simulasikan pembayaran",
    "I will pay later: back to the shop": "Saya bayar nanti: kembali ke toko",
    "Simulate failure": "Simulasikan kegagalan",
    "Choose your bank": "Pilih bank Anda",
    "Choose your e-wallet": "Pilih dompet digital Anda",
    "Choose an outlet": "Pilih gerai",
    "Complete your {method} payment": "Selesaikan pembayaran {method} Anda",
    "{wallet} · approve payment": "{wallet} · setujui pembayaran",
    "{merchant} asks you to pay {amount}.": "{merchant} meminta Anda membayar {amount}.",
    "Decline": "Tolak",
    "Transfer {amount} to one of the merchant's bank accounts:": "Transfer {amount} ke salah satu "
    "rekening bank penjual:",
    "Bank": "Bank",
    "Account number": "Nomor rekening",
    "Account holder": "Pemilik rekening",
    "Proof of transfer (optional; PNG, JPEG or WEBP up to 4 MB)": "Bukti transfer (opsional; "
    "PNG, JPEG atau WEBP hingga 4 MB)",
    "I have transferred the money": "Saya sudah mentransfer uangnya",
    "The proof must be a PNG, JPEG or WEBP image.": "Bukti harus berupa gambar PNG, JPEG atau "
    "WEBP.",
    "The proof must be at most 4 MB.": "Bukti paling besar 4 MB.",
    "Pay by manual transfer": "Bayar dengan transfer manual",
    "Your card was declined.": "Kartu Anda ditolak.",
    "Try another card.": "Coba kartu lain.",
    "The payment failed. Choose a method to try again.": "Pembayaran gagal. Pilih metode untuk "
    "mencoba lagi.",
    # invoice and portal
    "Invoice": "Faktur",
    "Pay invoice": "Bayar faktur",
    "Paid": "Lunas",
    "Amount due": "Jumlah terutang",
    "Due": "Jatuh tempo",
    "Download PDF": "Unduh PDF",
    "billed to": "ditagihkan kepada",
    "Subtotal": "Subtotal",
    "Discount": "Diskon",
    "Tax": "Pajak",
    "Total": "Total",
    "Amount paid": "Jumlah dibayar",
    "Open": "Terbuka",
    "Void": "Dibatalkan",
    "Uncollectible": "Tidak tertagih",
    "Draft": "Draf",
    "Billing portal": "Portal tagihan",
    "Subscriptions": "Langganan",
    "Invoices": "Faktur",
    "Cancel subscription": "Batalkan langganan",
    "Pause": "Jeda",
    "Resume": "Lanjutkan",
    "Trial": "Masa uji coba",
    "Active": "Aktif",
    "Past due": "Lewat jatuh tempo",
    "Paused": "Dijeda",
    "Canceled": "Dibatalkan",
    "Awaiting payment": "Menunggu pembayaran",
    "This link has expired": "Tautan ini sudah kedaluwarsa",
}

TABLES: Mapping[str, Mapping[str, str]] = {"id": ID}


def language_of(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` if it names a language we have, else the best of ``Accept-Language``."""
    if query_lang in LANGUAGES:
        return query_lang  # type: ignore[return-value]
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary == "in":  # the old code for Indonesian
            primary = "id"
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else DEFAULT


def activate(language: str) -> contextvars.Token[str]:
    return _current.set(language if language in LANGUAGES else DEFAULT)


def reset(token: contextvars.Token[str]) -> None:
    _current.reset(token)


def current() -> str:
    return _current.get()


def gettext(text: str, **values: object) -> str:
    """``text`` in the active language, formatted with ``values`` when given."""
    translated = TABLES.get(current(), {}).get(text) or text
    return translated.format(**values) if values else translated


def money(amount: int, currency: str, language: str | None = None) -> str:
    """``Rp 250.000`` in Indonesian for IDR (``1.234,50`` separators otherwise), ``IDR 250,000``
    in English."""
    language = language or current()
    exponent = DISPLAY_EXPONENTS.get(currency, 2)
    value = abs(amount) / (10**exponent) if exponent else abs(amount)
    text = f"{value:,.{exponent}f}"
    sign = "−" if amount < 0 else ""
    if language == "id":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return f"{sign}{'Rp' if currency == 'IDR' else currency} {text}"
    return f"{sign}{currency} {text}"
