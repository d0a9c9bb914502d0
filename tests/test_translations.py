"""Bahasa Indonesia: the catalog covers every marked string, and pages render translated.

After adding or changing a user-facing string: ``make messages``, translate the new entries in
``django_plugipay/locale/id/LC_MESSAGES/django.po``, ``make messages`` again (compiles the .mo).
"""

import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.html import strip_tags

import django_plugipay
from django_plugipay.money import format_amount, to_minor
from tests.test_admin import staff
from tests.test_async_payments import start

PACKAGE = Path(django_plugipay.__file__).parent
CATALOG = PACKAGE / "locale" / "id" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOG.with_suffix(".mo")


def entries(text: str):
    """(flags, msgid, msgid_plural, msgstrs) of each entry of a .po file, header excluded."""
    found = []
    for block in text.strip().split("\n\n"):
        flags = " ".join(line for line in block.splitlines() if line.startswith("#,"))
        body = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
        parts = re.findall(r'^(msgid|msgid_plural|msgstr(?:\[\d+\])?) ((?:".*"\n?)+)', body, re.M)
        values = {key: "".join(eval(s) for s in raw.split("\n") if s) for key, raw in parts}
        if values.get("msgid"):
            strs = [v for k, v in values.items() if k.startswith("msgstr")]
            found.append((flags, values["msgid"], values.get("msgid_plural"), strs))
    return found


def untranslated(text: str):
    return [msgid for flags, msgid, _p, strs in entries(text) if "fuzzy" in flags or not all(strs)]


def test_committed_catalog_is_complete_and_compiled():
    catalog = entries(CATALOG.read_text())
    assert len(catalog) > 150
    assert untranslated(CATALOG.read_text()) == []
    compiled = gettext.GNUTranslations(COMPILED.open("rb"))
    for _flags, msgid, plural, strs in catalog:
        if plural:
            assert compiled.ngettext(msgid, plural, 1) == strs[0], msgid
        else:
            assert compiled.gettext(msgid) == strs[0], f"{msgid!r}: run make messages"


def test_the_example_shops_catalog_is_complete():
    shop = PACKAGE.parent / "example_project" / "shop" / "locale" / "id" / "LC_MESSAGES"
    text = (shop / "django.po").read_text()
    assert len(entries(text)) > 40 and untranslated(text) == []
    assert (shop / "django.mo").exists()


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")
def test_every_marked_string_of_the_code_is_in_the_catalog(tmp_path):
    """makemessages over a copy of the package finds nothing the catalog does not translate."""
    copy = tmp_path / "django_plugipay"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    subprocess.run(
        ["django-admin", "makemessages", "-l", "id", "--no-location"],
        cwd=copy,
        check=True,
        capture_output=True,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    fresh = (copy / "locale" / "id" / "LC_MESSAGES" / "django.po").read_text()
    missing = untranslated(fresh)
    assert missing == [], f"translate these in {CATALOG.name} (make messages): {missing}"


def test_money_follows_the_language():
    with translation.override("id"):
        assert format_amount(250_000, "IDR") == "Rp 250.000"
        assert format_amount(1999, "USD") == "USD 19,99"
        assert to_minor("250.000", "IDR") == 250_000
        assert to_minor("19,99", "USD") == 1999
    with translation.override("en"):
        assert format_amount(250_000, "IDR") == "IDR 250,000"
        assert to_minor("250,000", "IDR") == 250_000


def english_left(page: str) -> list[str]:
    """Our multi-word English strings still visible in a page rendered in Indonesian."""
    text = " ".join(strip_tags(page).split())
    return [
        msgid
        for _f, msgid, _p, strs in entries(CATALOG.read_text())
        if " " in msgid and "%" not in msgid and msgid != strs[0] and msgid in text
    ]


def test_admin_refund_and_confirm_pages_render_in_indonesian(plugipay_sandbox, client):
    payment = plugipay_sandbox.paid_payment(250_000)
    session = start()
    plugipay_sandbox.claim(session, proof_url="https://proof.test/p.png")
    client.force_login(staff("refund_payment", "confirm_payment"))
    with translation.override("id"):
        refund = client.get(f"/admin/django_plugipay/payment/{payment.pk}/refund/").content
        confirm = client.get(
            f"/admin/django_plugipay/checkoutsession/{session.pk}/confirm/"
        ).content
        rejected = client.post(
            f"/admin/django_plugipay/payment/{payment.pk}/refund/",
            {"post": "yes", "amount": "0", "reason": "other"},
        ).content
    refund, confirm, rejected = (p.decode() for p in (refund, confirm, rejected))
    assert "Kembalikan dana pembayaran" in refund and "Rp 250.000" in refund
    assert 'value="250000"' in refund
    assert "Ya, uangnya sudah masuk" in confirm and "Rp 250.000" in confirm
    assert "Lihat bukti" in confirm
    assert "Masukkan jumlah di atas nol." in rejected
    assert "Jelaskan alasannya" in rejected
    for page in (refund, confirm, rejected):
        assert english_left(page) == []
