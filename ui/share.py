"""An address shown to a room: in full with a copy button, as a QR code for the projector (drawn here, offline), and
with a warning when it names this computer only (localhost), which no one else in the room can open.

The address comes from the instructor's browser (its host is whatever the request said), so it is never placed in
Markdown or HTML: `st.code` shows it as text, and the QR code is an SVG of a white square and one path of dark modules,
made from the address's bytes but holding none of its text, shown by `st.image` as a base64 `data:` image."""
from __future__ import annotations

from functools import lru_cache

import qrcode
import qrcode.constants
import qrcode.exceptions
import qrcode.image.svg
import streamlit as st

QR_WIDTH_PX = 240  # scanned off a projector from the back of a room; small enough for a popover
QR_BORDER = 4      # modules of quiet zone around the code: the standard's minimum, which scanners need
LOOPBACK_WARNING = ("This address names this computer only (localhost): no other machine in the room can open it. For "
                    "the room, start the workshop server with `python -m explorer serve --address 0.0.0.0`, open this "
                    "page by the computer's network name or IP address, and copy the address again.")


def qr_code(text: str) -> qrcode.QRCode:
    """The QR code of `text` (the smallest version that holds it at error correction M); an error (DataOverflowError,
    or ValueError in qrcode 8.2) when `text` is longer than any QR code holds (about 2,300 characters)."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QR_BORDER,
                       image_factory=qrcode.image.svg.SvgPathFillImage)
    qr.add_data(text)
    qr.make(fit=True)
    return qr


@lru_cache(maxsize=16)  # a page redraws the same few addresses on every rerun (about 10 ms to encode one)
def qr_svg(text: str) -> str | None:
    """The QR code of `text` as an SVG document (a white square, then one path: a unit square per dark module, in
    module units, quiet zone included), or None when `text` is too long for a QR code."""
    try:
        return qr_code(text).make_image().to_string(encoding="unicode")
    except (qrcode.exceptions.DataOverflowError, ValueError):  # qrcode 8.2 raises ValueError: "version 41"
        return None


def show_address(address: str, loopback: bool) -> None:
    """`address` with st.code's copy button, its QR code folded in a popover (so the controls below stay in place), and
    the loopback warning when `loopback` (ui.links.class_address says which)."""
    st.code(address, language=None, wrap_lines=True)
    with st.popover("QR code for the projector", icon=":material/qr_code_2:",
                    help="the same address as a QR code: phones in the room open it with their camera"):
        svg = qr_svg(address)
        if svg is None:
            st.caption("This address is too long for a QR code: share it by copying it.")
        else:
            st.image(svg, width=QR_WIDTH_PX)
            if loopback:
                st.caption("Phones open this address on themselves, not on this computer: see the warning.")
    if loopback:
        st.warning(LOOPBACK_WARNING, icon=":material/warning:")
