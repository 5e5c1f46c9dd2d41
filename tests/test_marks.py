"""The marks that say what a test is (tests/conftest.py): the rule that gives unit / app / browser, and every collected
test carries exactly one of them."""
from types import SimpleNamespace

import conftest
import pytest
from helpers import app


def _runs_a_page():
    return app()


CASES = {"page": lambda: _runs_a_page(), "engine": lambda: 1}


def _one_case(case):
    return CASES[case]()


def item(function, fixtures=(), params=None):
    """What the rule reads of a collected test."""
    return SimpleNamespace(function=function, fixturenames=list(fixtures),
                           _fixtureinfo=SimpleNamespace(name2fixturedefs={}),
                           callspec=SimpleNamespace(params=params) if params else None)


@pytest.mark.unit  # names functions that run pages, to classify them, without running one
def test_the_rule_follows_the_tests_own_functions_and_tables_to_apptest():
    assert conftest._kind(item(lambda: 1)) == "unit"
    assert conftest._kind(item(_runs_a_page)) == "app"
    assert conftest._kind(item(lambda: _runs_a_page())) == "app"  # through a function of the tests
    assert conftest._kind(item(_one_case, params={"case": "page"})) == "app"  # a table's entry, by the parameter
    assert conftest._kind(item(_one_case, params={"case": "engine"})) == "unit"
    assert conftest._kind(item(lambda: 1, fixtures=["browser"])) == "browser"
    assert conftest._kind(item(_runs_a_page, fixtures=["app_url"])) == "browser"


def test_every_collected_test_has_exactly_one_kind(request):
    for collected in request.session.items:
        kinds = [k for k in conftest.KINDS if collected.get_closest_marker(k) is not None]
        assert len(kinds) == 1, (collected.nodeid, kinds)
        if "browser" in kinds:
            assert collected.get_closest_marker("slow") is not None, collected.nodeid
