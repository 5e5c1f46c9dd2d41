"""The instructor's flow (issue 27): "For instructors" one click from the top of Home, the class address in full (the
host the instructor's browser reached) with a copy button and a QR code for the projector (the board link too), never
as markup whatever the host says, and the class picker that shows a class the moment it is opened and names each class
by its code and challenge; and (issue 29) the seats the instructor sets for a class, which the board then keeps."""
import base64
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
import qrcode
import qrcode.constants
import streamlit as st
from helpers import ROOT, labelled, no_exceptions
from streamlit.runtime.context import ContextProxy
from streamlit.testing.v1 import AppTest
from test_verifier_fair import figures, setup, token

from explorer.board.records import BoardError
from explorer.board.rules import format_code
from explorer.board.store import Store
from ui.lesson import lessons
from ui.links import class_address
from ui.share import LOOPBACK_WARNING, qr_svg

KEY = "a-long-instructor-key-42"


def walk(node):
    """Every element of an AppTest tree, in page order."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def test_for_instructors_is_the_first_thing_under_the_title_of_home():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    no_exceptions(at)
    order = list(walk(at.main))
    first_expander = next(i for i, n in enumerate(order) if getattr(n, "type", "") == "expander")
    start_here = next(i for i, n in enumerate(order) if getattr(n, "value", None) == "Start here")
    assert order[first_expander].label.startswith("For instructors") and first_expander < start_here
    assert "?workshop=1" in [c.value for c in order[first_expander].code]  # the address, with st.code's copy button


@pytest.mark.parametrize(("url", "base", "address", "loopback"), [
    ("http://10.1.2.3:8501/", "", "http://10.1.2.3:8501/?workshop=1", False),
    ("https://class.example.org/pe/", "pe", "https://class.example.org/pe/?workshop=1", False),
    ("http://localhost:8501/", "", "http://localhost:8501/?workshop=1", True),
    ("http://127.0.0.1:8501/", "", "http://127.0.0.1:8501/?workshop=1", True),
])
def test_the_class_address_is_the_full_address_the_browser_reached(monkeypatch, url, base, address, loopback):
    monkeypatch.setattr(st, "context", SimpleNamespace(url=url))
    monkeypatch.setattr(st, "get_option", lambda name: base if name == "server.baseUrlPath" else None)
    assert class_address("?workshop=1") == (address, loopback)


@pytest.fixture
def instructor_page(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(tmp_path / "board.db"))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", KEY)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/instructor.py")
    at.run()
    labelled(at.text_input, "Instructor key").set_value(KEY)
    next(b for b in at.button if b.label == "Unlock").click().run()
    no_exceptions(at)
    return at


def open_class(at, challenge: str) -> str:
    labelled(at.text_input, "Challenge (shown to the class as written)").set_value(challenge)
    next(b for b in at.button if b.label == "Open a new class").click().run()
    no_exceptions(at)
    code = at.code[0].value
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code), code
    return code


def test_a_new_class_is_chosen_at_once_and_classes_are_listed_by_code_and_challenge(instructor_page):
    at = instructor_page
    first = open_class(at, "Sparsest net above 96 %")
    picker = labelled(at.selectbox, "Class")
    assert format_code(picker.value) == first
    second = open_class(at, "Fastest net above 90 %")
    picker = labelled(at.selectbox, "Class")
    assert format_code(picker.value) == second != first  # the class just opened, not the one before
    assert any(o.startswith(f"{first} · Sparsest net above 96 % · open") for o in picker.options)
    assert any(o.startswith(f"{second} · Fastest net above 90 % · open") for o in picker.options)


# ---- the address as a QR code (ui/share.py) ------------------------------------------------------------------------
HOSTILE = 'http://evil"><script>alert(1)</script><img src=x onerror=alert(2)>/instructor'
SVG = "{http://www.w3.org/2000/svg}"
MODULE = re.compile(r"M(\d+),(\d+)H(\d+)V(\d+)H(\d+)z")


def dark_modules(svg: str) -> set[tuple[int, int]]:
    """The (row, column) of every dark module the SVG draws: its path is one unit square per module."""
    root = ET.fromstring(svg)
    (path,) = root.iter(f"{SVG}path")
    d = path.get("d")
    squares = MODULE.findall(d)
    assert "".join(f"M{x},{y}H{x1}V{y1}H{x2}z" for x, y, x1, y1, x2 in squares) == d  # nothing else in the path
    assert all(int(x1) == int(x) + 1 == int(x2) + 1 and int(y1) == int(y) + 1 for x, y, x1, y1, x2 in squares)
    return {(int(y), int(x)) for x, y, *_ in squares}


@pytest.mark.parametrize("address", ["http://10.1.2.3:8501/?workshop=1&lesson=first_prune&step=1&lock=1",
                                     "https://class.example.org/pe/class_board?class=ABCDEFGHJK&workshop=1",
                                     "http://ünïcode.example/?workshop=1", "http://[::1]:8501/?" + "a" * 600,
                                     HOSTILE])
def test_the_qr_svg_is_plain_svg_that_draws_the_qr_code_of_exactly_the_address(address):
    svg = qr_svg(address)
    root = ET.fromstring(svg)  # well-formed XML
    assert {e.tag for e in root.iter()} == {f"{SVG}svg", f"{SVG}rect", f"{SVG}path"}
    assert all(not (e.text or "").strip() and not (e.tail or "").strip() for e in root.iter())  # no text anywhere
    for piece in ("evil", "script", "onerror", "10.1.2.3", "workshop", "example", "aaaa"):
        assert piece not in svg, piece  # nothing of the address is in the markup, escaped or not
    # The reference: the library's own QR code of the exact string (the same error correction), module by module.
    reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    reference.add_data(address)
    assert [d.data for d in reference.data_list] == [address.encode()]
    reference.make(fit=True)
    matrix = reference.get_matrix()  # the quiet zone (4 modules) included, as the SVG draws it
    assert root.get("viewBox") == f"0 0 {len(matrix)} {len(matrix)}"
    assert dark_modules(svg) == {(r, c) for r, row in enumerate(matrix) for c, dark in enumerate(row) if dark}


def test_an_address_too_long_for_any_qr_code_has_none():
    assert qr_svg("http://h/?" + "x" * 3000) is None


def shown_image(at) -> str:
    """The one image on the page, as the SVG text its data: address carries."""
    (image,) = at.image
    (url,) = image.value
    prefix = "data:image/svg+xml;base64,"
    assert url.startswith(prefix), url[:80]
    return base64.b64decode(url[len(prefix):]).decode()


def rendered_text(at) -> list[str]:
    """Everything the page renders as Markdown or HTML: text elements, and the labels and help of widgets and popovers
    (code blocks show text as written, and are left out)."""
    kinds = ("markdown", "caption", "error", "warning", "success", "info", "title", "subheader")
    out = [e.value for kind in kinds for e in getattr(at, kind)]
    for node in walk(at.main):
        out += [str(getattr(node, field, None) or "") for field in ("label", "help")]
        if getattr(node, "type", "") == "popover":
            out += [node.proto.popover.label, node.proto.popover.help]
    return out


def browser_at(monkeypatch, url: str) -> None:
    """The page runs as if the instructor's browser were at `url` (AppTest has no browser: st.context.url is None)."""
    monkeypatch.setattr(ContextProxy, "url", property(lambda self: url))


@pytest.mark.parametrize(("url", "loopback"), [("http://10.1.2.3:8501/", False), ("http://localhost:8501/", True)])
def test_home_shows_the_full_class_address_to_copy_and_as_a_qr_code(monkeypatch, url, loopback):
    browser_at(monkeypatch, url)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    no_exceptions(at)
    address = f"{url}?workshop=1"
    assert address in [c.value for c in at.code]
    assert shown_image(at) == qr_svg(address)
    assert any(LOOPBACK_WARNING == w.value for w in at.warning) == loopback
    labelled(at.selectbox, "Lock the class to one lesson").set_value(next(iter(lessons()))).run()
    locked = next(c.value for c in at.code if "lock=1" in c.value)
    assert locked.startswith(address + "&lesson=") and shown_image(at) == qr_svg(locked)  # follows the choice


def test_the_board_link_is_the_full_address_to_copy_and_as_a_qr_code(monkeypatch, instructor_page):
    browser_at(monkeypatch, "http://10.1.2.3:8501/instructor")
    at = instructor_page
    code = open_class(at, "Sparsest net above 96 %")
    link = f"http://10.1.2.3:8501/class_board?class={code.replace('-', '')}"
    assert [c.value for c in at.code] == [code, link]  # the code first, then the board link, each with its copy button
    assert shown_image(at) == qr_svg(link)
    assert not at.warning
    browser_at(monkeypatch, "http://127.0.0.1:8501/instructor")
    at.run()
    assert at.code[1].value == f"http://127.0.0.1:8501/class_board?class={code.replace('-', '')}"
    assert [w.value for w in at.warning] == [LOOPBACK_WARNING]


@pytest.mark.parametrize("page", ["home", "instructor"])
def test_markup_in_the_host_is_shown_as_text_never_rendered(monkeypatch, tmp_path, page):
    monkeypatch.setenv("PRUNING_EXPLORER_BOARD_DB", str(tmp_path / "board.db"))
    monkeypatch.setenv("PRUNING_EXPLORER_INSTRUCTOR_KEY", KEY)
    browser_at(monkeypatch, HOSTILE)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    if page == "instructor":
        labelled(at.text_input, "Instructor key").set_value(KEY)
        next(b for b in at.button if b.label == "Unlock").click().run()
        open_class(at, "Sparsest net above 96 %")
    no_exceptions(at)
    shown = [c.value for c in at.code if "evil" in c.value]
    assert len(shown) == 1 and '<script>alert(1)' in shown[0]  # in a code block, as written: text, not markup
    svg = shown_image(at)
    assert "evil" not in svg and "script" not in svg and "onerror" not in svg
    assert {e.tag for e in ET.fromstring(svg).iter()} <= {f"{SVG}svg", f"{SVG}rect", f"{SVG}path"}
    for text in rendered_text(at):
        assert "evil" not in text and "<script" not in text and "onerror" not in text, text


# ---- the seats of a class (issue 29) -------------------------------------------------------------------------------
def seats_label(at) -> str:
    return next(n.proto.popover.label for n in walk(at.main) if getattr(n, "type", "") == "popover"
                and n.proto.popover.label.startswith("Seats: "))


def test_the_instructor_sets_and_removes_the_seats_and_the_board_keeps_them(instructor_page, tmp_path):
    at, db = instructor_page, Store(str(tmp_path / "board.db"))
    stored = open_class(at, "Sparsest net above 96 %").replace("-", "")
    assert db.class_info(stored).seats is None and seats_label(at) == "Seats: any number"
    assert next(b for b in at.button if b.label == "Admit any number").disabled  # nothing to remove yet
    labelled(at.number_input, "Participants the class admits").set_value(2)
    next(b for b in at.button if b.label == "Set the seats").click().run()
    no_exceptions(at)
    assert db.class_info(stored).seats == 2 and seats_label(at) == "Seats: 2"
    assert [s.value for s in at.success] == ["This class now admits at most 2 participants: whoever has submitted "
                                             "keeps a seat, and a new participant is refused once 2 have submitted."]
    at.run()
    assert not at.success  # said once
    for n, name in enumerate(("ada", "bo")):
        db.submit(stored, name, token(n), setup(), figures())
    with pytest.raises(BoardError, match=r"every seat of this class is taken \(2\)"):
        db.submit(stored, "cy", token(2), setup(), figures())
    db.submit(stored, "ada", token(0), setup(), figures())  # a seated participant keeps the seat
    next(b for b in at.button if b.label == "Admit any number").click().run()
    no_exceptions(at)
    assert db.class_info(stored).seats is None and seats_label(at) == "Seats: any number"
    assert [s.value for s in at.success] == ["This class now admits any number of participants."]
    db.submit(stored, "cy", token(2), setup(), figures())  # no limit: the third participant is admitted


def test_a_refused_seat_count_is_a_message_and_changes_nothing(instructor_page, tmp_path, monkeypatch):
    at, db = instructor_page, Store(str(tmp_path / "board.db"))
    stored = open_class(at, "Sparsest net above 96 %").replace("-", "")

    def refuse(self, code, seats):
        raise BoardError("seats: a whole number from 1 to 10,000, or none for any number")

    monkeypatch.setattr(Store, "set_seats", refuse)
    labelled(at.number_input, "Participants the class admits").set_value(5)
    next(b for b in at.button if b.label == "Set the seats").click().run()
    no_exceptions(at)
    assert "The seats cannot be set" in at.error[0].value and "1 to 10,000" in at.error[0].value
    assert not at.success and db.class_info(stored).seats is None and seats_label(at) == "Seats: any number"
