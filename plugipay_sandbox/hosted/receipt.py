"""A receipt's documents: a one-page PDF, printable HTML and ESC/POS for thermal printers.

The PDF is drawn by :mod:`plugipay_sandbox.pdf` like the invoice's; all three show the same
rows: brand, number, dates, lines, the PPN split when the receipt carries one, the NPWP, and the
payment method and reference. A receipt is a commercial receipt, not a Faktur Pajak.
"""

from __future__ import annotations

from html import escape
from typing import Any

from plugipay_sandbox import pdf
from plugipay_sandbox.app import Response
from plugipay_sandbox.hosted.i18n import gettext as _
from plugipay_sandbox.hosted.invoice import day
from plugipay_sandbox.hosted.layout import money, page

Row = tuple[str, float, str, bool]


def totals(receipt: dict[str, Any]) -> list[tuple[str, int, bool]]:
    """(label, amount, bold) rows: the PPN split when the receipt has tax, then the total."""
    currency_rows: list[tuple[str, int, bool]] = []
    if receipt["taxAmount"]:
        rate = round(receipt["taxRate"] * 100, 2)
        currency_rows += [
            (_("Subtotal"), receipt["subtotal"], False),
            (_("PPN {rate}% (included)", rate=f"{rate:g}"), receipt["taxAmount"], False),
        ]
    currency_rows.append((_("Total"), receipt["total"], True))
    return currency_rows


def rows(receipt: dict[str, Any]) -> list[Row]:
    """The receipt as text rows (text, size, align "l"/"r", bold), top down."""
    currency = receipt["currency"]
    customer = receipt["customer"]
    out: list[Row] = [
        (receipt["brand"]["name"], 11, "l", True),
        (_("Not Plugipay: a test document. No real money moves."), 9, "l", False),
        ("", 12, "l", False),
        (f"{_('Receipt')} {receipt['number']}", 22, "l", True),
        (_("Issued: {issued}", issued=day(receipt["issuedAt"])), 11, "l", False),
    ]
    if receipt["taxId"]:
        out.append((_("NPWP: {tax_id}", tax_id=receipt["taxId"]), 11, "l", False))
    billed = " ".join(v for v in (customer.get("name"), customer.get("email")) if v)
    if billed:
        out.append((_("Billed to: {customer}", customer=billed), 11, "l", False))
    out.append(("", 12, "l", False))
    for line in receipt["lines"]:
        out.append((line["description"], 11, "l", True))
        out.append(
            (
                f"{line['quantity']} x {money(line['unitAmount'], currency)}   "
                f"{money(line['amount'], currency)}",
                10,
                "r",
                False,
            )
        )
    out.append(("", 10, "l", False))
    for label, amount, bold in totals(receipt):
        out.append((f"{label}: {money(amount, currency)}", 11, "r", bold))
    out += [
        ("", 10, "l", False),
        (
            _(
                "Paid by {method}, reference {reference}",
                method=receipt["method"] or "-",
                reference=receipt["providerReference"],
            ),
            10,
            "l",
            False,
        ),
        (_("A commercial receipt, not a tax invoice (Faktur Pajak)."), 9, "l", False),
    ]
    return out


def pdf_response(receipt: dict[str, Any]) -> Response:
    return Response(
        pdf.one_page(rows(receipt)),
        200,
        "application/pdf",
        {"Content-Disposition": f'inline; filename="{receipt["number"]}.pdf"'},
    )


def html_document(receipt: dict[str, Any]) -> Response:
    """The receipt as a printable HTML page."""
    currency = receipt["currency"]
    lines = "".join(
        f"<tr><td>{escape(line['description'])}<div class=muted>{line['quantity']} × "
        f"{money(line['unitAmount'], currency)}</div></td>"
        f"<td class=r>{money(line['amount'], currency)}</td></tr>"
        for line in receipt["lines"]
    )
    sums = "".join(
        f"<tr><td>{'<b>' if bold else ''}{escape(label)}{'</b>' if bold else ''}</td>"
        f"<td class=r>{money(amount, currency)}</td></tr>"
        for label, amount, bold in totals(receipt)
    )
    head = "".join(
        f"<div class=muted>{escape(text)}</div>"
        for text, _size, _align, _bold in rows(receipt)[4:6]
    )
    tail = "".join(f"<p class=muted>{escape(text)}</p>" for text, *_rest in rows(receipt)[-2:])
    body = (
        '<div class="wrap" style="grid-template-columns:1fr;max-width:640px"><div class="card">'
        f'<div class="brand"><span class="logo"></span>{escape(receipt["brand"]["name"])}</div>'
        f"<h1>{_('Receipt')} {escape(receipt['number'])}</h1>{head}"
        f"<table style='margin-top:16px'>{lines}{sums}</table>{tail}</div></div>"
    )
    return page(f"{_('Receipt')} {receipt['number']}", body)


#: ESC/POS: initialise, centre, bold on/off, feed and cut.
ESC_INIT, ESC_CENTER, ESC_LEFT = b"\x1b@", b"\x1ba\x01", b"\x1ba\x00"
ESC_BOLD_ON, ESC_BOLD_OFF, ESC_CUT = b"\x1bE\x01", b"\x1bE\x00", b"\n\n\n\x1dV\x00"
ESCPOS_WIDTH = 32


def escpos(receipt: dict[str, Any]) -> bytes:
    """The receipt for a 58 mm thermal printer: 32 columns, CP437 text, a cut at the end.

    The brand is centred; right-aligned rows are padded to the right edge.
    """
    brand, *rest = rows(receipt)
    out = [ESC_INIT, ESC_CENTER, ESC_BOLD_ON, _escpos_text(brand[0]), ESC_BOLD_OFF, ESC_LEFT]
    for text, _size, align, bold in rest:
        pieces = [text[i : i + ESCPOS_WIDTH] for i in range(0, len(text), ESCPOS_WIDTH)] or [""]
        for piece in pieces:
            line = _escpos_text(piece.rjust(ESCPOS_WIDTH) if align == "r" else piece)
            out.append(ESC_BOLD_ON + line + ESC_BOLD_OFF if bold else line)
    out.append(ESC_CUT)
    return b"".join(out)


def _escpos_text(text: str) -> bytes:
    return text.replace("\u2212", "-").encode("cp437", "replace") + b"\n"


def escpos_response(receipt: dict[str, Any]) -> Response:
    return Response(
        escpos(receipt),
        200,
        "application/octet-stream",
        {"Content-Disposition": f'attachment; filename="{receipt["number"]}.bin"'},
    )
