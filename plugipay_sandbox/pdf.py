"""A one-page PDF of text lines, written by hand (PDF 1.4, the standard Helvetica fonts)."""

from __future__ import annotations

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 56
# Glyph widths (thousandths of an em) of ASCII 32–126 in Helvetica and Helvetica-Bold (the
# fonts' AFM metrics), to right-align text; other characters count as 556.
_PRINTABLE = "".join(chr(c) for c in range(32, 127))
_REGULAR = (
    "278 278 355 556 556 889 667 191 333 333 389 584 278 333 278 278 556 556 556 556 556 556 "
    "556 556 556 556 278 278 584 584 584 556 1015 667 667 722 722 667 611 778 722 278 500 667 "
    "556 833 722 778 667 778 722 667 611 722 667 944 667 667 611 278 278 278 469 556 333 556 "
    "556 500 556 556 278 556 556 222 222 500 222 833 556 556 556 556 333 500 278 556 500 722 "
    "500 500 500 334 260 334 584"
)
_BOLD = (
    "278 333 474 556 556 889 722 238 333 333 389 584 278 333 278 278 556 556 556 556 556 556 "
    "556 556 556 556 333 333 584 584 584 611 975 722 722 722 722 667 611 778 722 278 556 722 "
    "611 833 722 778 667 778 722 667 611 722 667 944 667 667 611 333 278 333 584 556 333 556 "
    "611 556 611 556 333 611 611 278 278 556 278 889 611 611 611 611 389 556 333 611 556 778 "
    "556 556 500 389 280 389 584"
)
WIDTHS = {
    False: dict(zip(_PRINTABLE, map(int, _REGULAR.split()), strict=True)),
    True: dict(zip(_PRINTABLE, map(int, _BOLD.split()), strict=True)),
}


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width of ``text`` in points."""
    widths = WIDTHS[bold]
    return sum(widths.get(char, 556) for char in text) * size / 1000


def _text(value: str) -> str:
    """A PDF literal string in WinAnsi (cp1252) bytes, with ( ) and \\ escaped.

    The stream is written as Latin-1, which carries each cp1252 byte through unchanged.
    """
    latin = value.encode("cp1252", "replace").decode("latin-1")
    return "(" + latin.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def one_page(rows: list[tuple[str, float, str, bool]]) -> bytes:
    """A PDF with one page of text rows: (text, font size, align "l"/"r", bold), top down.

    Rows whose text is empty leave a gap of their font size.
    """
    ops = ["BT"]
    y: float = PAGE_HEIGHT - MARGIN
    for text, size, align, bold in rows:
        y -= size * 1.45
        if not text:
            continue
        text = text.replace("\u2212", "-")  # the minus sign is not in WinAnsi
        x = PAGE_WIDTH - MARGIN - text_width(text, size, bold) if align == "r" else MARGIN
        font = "/F2" if bold else "/F1"
        ops.append(f"{font} {size:g} Tf 1 0 0 1 {x:.1f} {y:.1f} Tm {_text(text)} Tj")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] "
            "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
