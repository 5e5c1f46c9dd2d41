"""Fixtures (shared helper functions are in helpers.py; pyproject.toml puts the repo root and tests/ on sys.path), and
the marks that say what each test is.

Every test gets exactly one of `unit`, `app` and `browser`, here, at collection (an explicit mark on a test wins):
- `browser`: the test uses a fixture that starts Chromium or a real server for it (`browser`, `app_url`,
  `chromium_path`); browser tests are also `slow` (a real server and a real browser: 5–40 s each).
- `app`: the test, a fixture it uses, or a function of the tests it calls (followed through the names its code uses)
  reaches `helpers.app` or `streamlit.testing.v1.AppTest`: it runs pages through AppTest.
- `unit`: everything else (the engine, the CLI in process, the board's store…).
`slow` stays an explicit mark on the tests that are slow for a reason of their own (CLI subprocesses, the load script,
Han replays, long trainings), plus the browser rule above. A test that ends up with none, or more than one, of the
three kinds stops the collection with its name."""

import pytest
from helpers import tiny_config

from explorer.config.schema import ExperimentConfig

KINDS = ("unit", "app", "browser")
BROWSER_FIXTURES = {"browser", "app_url", "chromium_path"}


def pytest_configure(config):
    _scan_installed_components_once()


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """The test modules' imports (torch, Streamlit, plotly, the engine) live as long as the test process: imported
    with the cyclic collector paused, then frozen (explorer.long_lived_imports, as the CLI and the server do)."""
    from explorer import long_lived_imports

    with long_lived_imports():
        import ui.main  # noqa: F401 (the app's modules, which every AppTest run imports: frozen with the rest)
        return (yield)


def _scan_installed_components_once() -> None:
    """Each AppTest's first run looks for Streamlit components in every installed distribution (streamlit 1.67:
    BidiComponentManager.discover_and_register_components parses each package's metadata): about 0.45 s of CPU per
    AppTest, and the suite makes hundreds of them (in tests/test_app.py it was half of the file's time). What is
    installed does not change while the tests run, so one scan per test process serves them all; each AppTest still
    registers what it found in a manager of its own, as before."""
    import functools

    from streamlit.components.v2 import manifest_scanner

    if not hasattr(manifest_scanner.scan_component_manifests, "cache_info"):
        manifest_scanner.scan_component_manifests = functools.cache(manifest_scanner.scan_component_manifests)


def _app_targets() -> tuple:
    import helpers
    from streamlit.testing.v1 import AppTest

    return helpers.app, AppTest


def _code_objects(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            yield from _code_objects(const)


def _reaches(obj, targets, seen: set, params: tuple = ()) -> bool:
    """Whether `obj` is one of `targets`, or is a function of the tests whose code names one, directly or through the
    functions of the tests, and the tables of them (a dict, list or tuple of functions), that it names. Of a dict keyed
    by one of the test's parameters only that parameter's entry is followed."""
    import inspect
    from pathlib import Path

    if any(obj is t for t in targets):
        return True
    if isinstance(obj, dict):
        keys = [p for p in params if isinstance(p, str | int) and p in obj] or list(obj)
        return any(_reaches(obj[k], targets, seen, params) for k in keys)
    if isinstance(obj, list | tuple):
        return any(_reaches(o, targets, seen, params) for o in obj)
    if not inspect.isfunction(obj):
        return False
    func = inspect.unwrap(obj)
    code = func.__code__
    if code in seen or Path(code.co_filename).parent != Path(__file__).parent:
        return False
    seen.add(code)
    scope = func.__globals__
    return any(name in scope and _reaches(scope[name], targets, seen, params)
               for co in _code_objects(code) for name in co.co_names)


def _kind(item) -> str:
    if BROWSER_FIXTURES & set(item.fixturenames):
        return "browser"
    callspec = getattr(item, "callspec", None)
    params = tuple(callspec.params.values()) if callspec else ()
    functions = [getattr(item, "function", None), *params]
    for defs in getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).values():
        functions += [d.func for d in defs]
    targets, seen = _app_targets(), set()
    return "app" if any(_reaches(f, targets, seen, params) for f in functions) else "unit"


# Seconds the slowest test files take on the 2-core machine (pytest --durations=0 summed per file, 2026-12-06). The
# suite runs on two xdist workers a file at a time (--dist loadfile with --no-loadscope-reorder: files are handed out
# in collection order), so the longest start first and the many short files fill the end: longest processing time
# first. xdist's own order (most tests first) sent the long browser files, which hold one or two tests each, last,
# and one worker waited for the other. A file not listed keeps its place after these.
LONGEST_FILES = {
    "test_mnist.py": 85, "test_lesson_fits_browser.py": 75, "test_playground_browser.py": 75, "test_browser.py": 65,
    "test_threads.py": 60, "test_preset_seeds_lenet5.py": 51, "test_preset_seeds_mnist.py": 50,
    "test_two_hosts_browser.py": 85, "test_serve.py": 45, "test_verifier_fair.py": 55, "test_cli.py": 45,
    "test_lint.py": 42, "test_workshop_browser.py": 33, "test_mnist_browser.py": 33, "test_load_script.py": 27,
    "test_preset_seeds.py": 26, "test_session_memory.py": 25, "test_app.py": 22, "test_install.py": 18,
    "test_attacks.py": 60, "test_fair_slots_server.py": 13,
}


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -LONGEST_FILES.get(item.path.name, 0))  # stable: each file's own order is kept
    wrong = []
    for item in items:
        explicit = [k for k in KINDS if item.get_closest_marker(k) is not None]
        kind = explicit[0] if explicit else _kind(item)
        if not explicit:
            item.add_marker(getattr(pytest.mark, kind))
        if kind == "browser" and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
        kinds = [k for k in KINDS if item.get_closest_marker(k) is not None]
        if len(kinds) != 1:
            wrong.append(f"{item.nodeid}: {kinds or 'none'}")
    if wrong:
        raise pytest.UsageError("every test needs exactly one of the marks unit, app, browser:\n" + "\n".join(wrong))


@pytest.fixture(scope="session")
def trained_experiment_factory():
    """Trained experiments are cached per config JSON; each call returns a deep copy, so tests cannot leak state."""
    import copy

    from explorer.experiment.facade import Experiment

    cache = {}

    def make(config: ExperimentConfig | None = None):
        config = config or tiny_config()
        key = config.model_dump_json()
        if key not in cache:
            exp = Experiment(config)
            exp.train_baseline()
            cache[key] = exp
        return copy.deepcopy(cache[key])

    return make


# ---- browser tests: Debian's chromium driven by Playwright; missing chromium is installed, never skipped ----------
@pytest.fixture(scope="session")
def chromium_path() -> str:
    from helpers import debian_program

    return debian_program("chromium")


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium_path, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
        except Exception as e:  # a browser that cannot start is a failure in CI, not a skip
            pytest.fail(f"chromium at {chromium_path} did not start: {e}")
        yield b
        b.close()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """`streamlit run app.py` headless on a free port; waits for /_stcore/health."""
    from helpers import StreamlitServer

    server = StreamlitServer(tmp_path_factory.mktemp("streamlit") / "server.log")
    server.wait_healthy()
    yield server.url
    server.stop()
