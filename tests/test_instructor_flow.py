"""The instructor's flow (issue 27): "For instructors" one click from the top of Home, the class address in full (the
host the instructor's browser reached) with a copy button, and the class picker that shows a class the moment it is
opened and names each class by its code and challenge."""
import re
from types import SimpleNamespace

import pytest
import streamlit as st
from helpers import ROOT, labelled, no_exceptions
from streamlit.testing.v1 import AppTest

from explorer.board.rules import format_code
from ui.links import class_address

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
