"""The shape docs/architecture.md describes, held by tests: no import cycle (module-level or inside a function), a thin
Experiment, a documented public engine, an engine without Streamlit, and one home per rule."""
import ast
from pathlib import Path

from tools import architecture

ROOT = Path(__file__).resolve().parents[1]
MAX_EXPERIMENT_LINES = 300


def _modules() -> dict[str, Path]:
    return {name: m.path for name, m in architecture.modules().items()}


def test_the_page_is_the_code_and_every_import_keeps_the_stated_rules():
    """docs/architecture.md's generated part equals what tools/architecture.py writes; no import breaks a folder's
    MAY_IMPORT, climbs into ui/ or brings Streamlit into the engine; no import cycle (module level or in a function)."""
    mods = architecture.modules()
    assert architecture.broken_rules(mods) == []
    assert architecture.cycles(mods) == []
    doc = architecture.DOC.read_text()
    assert architecture.written(doc, architecture.render(mods)) == doc, "run: python tools/architecture.py"


def test_the_check_catches_an_arrow_back_up_and_a_cycle(tmp_path):
    """The rule check is not vacuous: an engine module importing the experiment, and two modules importing each
    other, are both reported."""
    mods = architecture.modules()
    up = tmp_path / "up.py"
    up.write_text("from explorer.experiment import facade\nimport streamlit\n")
    mods["explorer.engine.up"] = architecture.Module("explorer.engine.up", up, "engine", "")
    broken = architecture.broken_rules(mods)
    assert any("explorer.engine.up → explorer.experiment.facade" in b for b in broken), broken
    assert any("imports streamlit" in b for b in broken), broken
    back = tmp_path / "back.py"
    back.write_text("from explorer.engine import up\n")
    up.write_text("from explorer.engine import back\n")
    mods["explorer.engine.back"] = architecture.Module("explorer.engine.back", back, "engine", "")
    assert architecture.cycles(mods), "a two-module cycle went unseen"


def test_experiment_is_thin():
    """Modules are split by idea, not by a line count; the façade alone has a size rule, so that its parts stay in
    their own modules instead of growing inside it."""
    tree = ast.parse((ROOT / "explorer" / "experiment" / "facade.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Experiment")
    assert cls.end_lineno - cls.lineno + 1 <= MAX_EXPERIMENT_LINES


def test_every_public_engine_function_and_class_has_a_docstring():
    missing = []
    for name, path in _modules().items():
        if not name.startswith("explorer"):
            continue
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{name} has no module docstring"
        nodes = [(n, "") for n in tree.body]
        nodes += [(m, n.name + ".") for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")
                  for m in n.body]
        for node, owner in nodes:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_") \
                    and not ast.get_docstring(node):
                missing.append(f"{name}.{owner}{node.name}")
    assert not missing, "no docstring: " + ", ".join(missing)


def test_engine_never_imports_streamlit_and_cli_starts_without_torch():
    for name, path in _modules().items():
        if name.startswith("explorer"):  # (server.serve starts `streamlit run` processes: a name, not an import)
            imported = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported |= {f"{node.module}.{a.name}" for a in node.names}
                elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
                    imported.add("dynamic")
            # importlib.resources reads package data; any other importlib could import Streamlit by name
            dynamic = {m for m in imported if m.split(".")[0] == "importlib" and m != "importlib.resources"}
            assert not any(m.split(".")[0] == "streamlit" for m in imported) and not dynamic, name
    import subprocess
    import sys

    code = "import sys; from explorer import cli; cli.main(['schema']); assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_sys_path_manipulation_in_tests_or_benchmarks():
    for folder in ("tests", "benchmarks"):
        for path in (ROOT / folder).glob("*.py"):
            assert "sys.path.insert" not in path.read_text() or path.name == "test_architecture.py", path


def _count_config_copies(monkeypatch) -> list:
    """Every ExperimentConfig made from another (model_copy) or validated anew, from now on."""
    from explorer.config.schema import ExperimentConfig

    made = []
    copy, validate = ExperimentConfig.model_copy, ExperimentConfig.model_validate.__func__

    def counting_copy(self, *args, **kwargs):
        made.append("model_copy")
        return copy(self, *args, **kwargs)

    def counting_validate(cls, *args, **kwargs):
        made.append("model_validate")
        return validate(cls, *args, **kwargs)

    monkeypatch.setattr(ExperimentConfig, "model_copy", counting_copy)
    monkeypatch.setattr(ExperimentConfig, "model_validate", classmethod(counting_validate))
    return made


def test_a_slider_move_copies_the_config_at_most_once(monkeypatch, trained_experiment_factory):
    from helpers import app, no_exceptions

    at = app(trained_experiment_factory(), "app_pages/weight_pruning.py")
    made = _count_config_copies(monkeypatch)
    at.slider(key="wp_all").set_value(70.0).run()
    no_exceptions(at)
    assert at.session_state["experiment"].config.weight_pruning.sparsity == 0.7
    assert made == ["model_copy"], made  # with_section: the one shallow copy of the new setting
    made.clear()
    at.run()  # a rerun that changes nothing copies nothing
    assert made == []


def test_cli_run_compacts_a_structured_model_once(monkeypatch, tmp_path):
    from helpers import tiny_config

    from explorer import cli
    from explorer.config.schema import config_json
    from explorer.engine import pruning

    calls = []
    compact = pruning.compact
    monkeypatch.setattr(pruning, "compact", lambda *a, **k: calls.append(1) or compact(*a, **k))
    cfg = tiny_config(weight_pruning={"structured": {"amount": 0.5}})
    (tmp_path / "setup.json").write_text(config_json(cfg))
    assert cli.main(["run", str(tmp_path / "setup.json"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "compact.pt").exists() and len(calls) == 1


def test_every_chart_is_drawn_with_the_apps_own_template():
    """Streamlit's chart theme overrides plotly's default template (12 px grey labels, unreadable on a projector):
    every st.plotly_chart passes theme=None so the `explorer` template of explorer/figures/plots.py applies."""
    missing = []
    for path in [*ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "plotly_chart":
                theme = [k for k in node.keywords if k.arg == "theme"]
                if not theme or not (isinstance(theme[0].value, ast.Constant) and theme[0].value.value is None):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, "plotly_chart without theme=None: " + ", ".join(missing)
