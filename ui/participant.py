"""Who a participant is on a server without accounts: a browser, recognised by a cookie this server signed.

The server's fair share (explorer.server.slots: round robin, a bound of runs per participant, time slices) is per
participant, so the identity must not be something a tab, a link or a client can multiply or choose:

- Not the session: every tab, reload or fresh websocket is a new session (four tabs took every slot, issue 29).
- Not the IP address alone: a classroom behind one NAT, or every participant behind the workshop's nginx, is one
  address; and it says nothing about the browser.
- Not a value the client chooses: nginx's `pe_sticky` routing cookie is a random id, but unsigned, so a client could
  pick one (another participant's, or a new one per tab).

Decision: the app issues each browser a random id in a cookie, `pe_participant=<id>.<mac>`, where the mac is an
HMAC-SHA256 of the id under this server's secret. A session reads it from its websocket's handshake
(`st.context.cookies`, fixed for the session's life); a valid one names the participant, so every tab of a browser is
one participant. A session without it, or with one whose mac does not verify (forged, or signed by an earlier server),
gets a fresh id, and the browser is given that id's signed cookie (a few characters of JavaScript through
`st.html`: Streamlit has no API to set a cookie, and nginx cannot sign one), so the tabs it opens from then on share
it. Where no cookie can be read or set (AppTest, a websocket client without cookies, a browser refusing them), the
session is its own participant, as before. A signed id can be copied, but only to merge clients into one participant,
which shares one bound; it cannot be forged.

The secret: `PRUNING_EXPLORER_PARTICIPANT_SECRET` when the operator sets it (every process of a server must then use
the same), else a random one per process at start. The latter suffices behind `python -m explorer serve`: nginx's
sticky cookie keeps a browser on one process, whose slots are the ones it competes for; after a restart an old cookie
no longer verifies and the browser is simply given a new one.

What this does not stop: someone who clears cookies, opens private windows or scripts cookie-less clients gets a new
participant each time. Without accounts nothing can; the bound is against the ordinary case (tabs and links of one
browser), and round robin bounds what each of those extra identities gets.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets

import streamlit as st

from ui import reconnect

COOKIE = "pe_participant"
SECRET_ENV = "PRUNING_EXPLORER_PARTICIPANT_SECRET"
KEY = "_participant"            # session_state: the session's participant id, decided at its first script run
OWED = "_participant_element"   # session_state: the element owed to the browser until a finished run sends it
MAX_AGE_S = 7 * 24 * 3600       # longer than any workshop; the cookie holds nothing but the id
_ID = re.compile(r"[0-9a-f]{32}")
_MAC_HEX = 32                   # 128 bits of HMAC-SHA256: far beyond guessing, short in every request
MAX_COOKIE = 100                # a longer value is not ours: refused before any work is done on it


def _secret_from_env() -> bytes:
    value = os.environ.get(SECRET_ENV, "")
    # a short secret would make the mac guessable offline from one cookie: ignored, as if unset
    return value.encode() if len(value) >= 16 else secrets.token_bytes(32)


SECRET = _secret_from_env()


def new_id() -> str:
    """A fresh participant id: 128 random bits in hex."""
    return secrets.token_hex(16)


def signed(pid: str, secret: bytes | None = None) -> str:
    """The cookie value naming participant `pid`: the id and its mac under `secret` (this server's by default)."""
    mac = hmac.new(secret or SECRET, f"participant:{pid}".encode(), hashlib.sha256).hexdigest()[:_MAC_HEX]
    return f"{pid}.{mac}"


def verified(value: str | None, secret: bytes | None = None) -> str | None:
    """The participant id of a cookie value when this server signed it, else None (absent, malformed, forged)."""
    if not isinstance(value, str) or len(value) > MAX_COOKIE:
        return None
    pid, _, mac = value.strip('"').partition(".")
    if not _ID.fullmatch(pid):
        return None
    return pid if hmac.compare_digest(signed(pid, secret), f"{pid}.{mac}") else None


def _browser_cookie() -> tuple[bool, str | None]:
    """Whether a client that keeps cookies is there (a connection with HTTP headers: not AppTest, whose headers are
    empty, nor a bare script), and the participant cookie it sent with its websocket's handshake."""
    if not isinstance(st.context.headers.get("host"), str):
        return False, None
    value = st.context.cookies.get(COOKIE)
    return True, value if isinstance(value, str) else None


def _cookie_script(value: str) -> str:
    # The value is ours (hex and a dot), never the client's; json.dumps quotes it for JavaScript all the same.
    return ("<script>document.cookie = " + json.dumps(f"{COOKIE}={value}; Path=/; Max-Age={MAX_AGE_S}; SameSite=Lax")
            + " + (location.protocol === 'https:' ? '; Secure' : '');</script>")


# Marks the owed element and lifts its container out of the column's flex flow (no gap is left for it).
OUT_OF_FLOW = ('<span id="pe-boot" hidden></span><style>[data-testid="stElementContainer"]:has(#pe-boot) '
               '{position: absolute}</style>')


def identify() -> str:
    """This session's participant id, decided once per session (at its first script run, before any training): the
    signed cookie's id, else a fresh one, whose cookie is then owed to the browser (with the page's reconnect script,
    ui/reconnect.py, in one element that send_owed_element() draws at the end of the run). Call at the top of every
    script run; later calls only read the session's state."""
    pid = st.session_state.get(KEY)
    if isinstance(pid, str):
        return pid
    in_browser, cookie = _browser_cookie()
    pid = verified(cookie)
    new = pid is None
    if new:
        pid = new_id()
    if in_browser:  # AppTest has no browser to keep a cookie: there the session stays its own participant
        st.session_state[OWED] = (_cookie_script(signed(pid)) if new else "") + reconnect.SCRIPT
    st.session_state[KEY] = pid
    return pid


def send_owed_element() -> None:
    """At the end of a script run: the element identify() owes this browser (its cookie, the reconnect script), once.

    At the end, not the top: st.html's code is fetched by the browser the first time one is drawn, and until it
    arrives the element is a 56-px placeholder in the column's flow; at the top of a session's first page it pushed
    the whole page down until then (for as long as a busy server took to send the code). Below the page nothing
    moves. A run that ends before this (a rerun cut it, st.stop) leaves it owed to the next run; its effects outlive
    the element, which later runs no longer draw."""
    owed = st.session_state.get(OWED)
    if owed is not None:
        st.html(OUT_OF_FLOW + owed, unsafe_allow_javascript=True, width=1)
        del st.session_state[OWED]
