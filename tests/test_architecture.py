"""The shape docs/architecture.md describes, held by tests: no import cycle (module-level or inside a function), small
modules, a thin Experiment, a documented public engine, an engine without Streamlit, and one home per rule."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("explorer", "ui")
MAX_MODULE_LINES = 400
MAX_EXPERIMENT_LINES = 300


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every project module `name` imports, wherever the import statement is (functions included)."""
    pkg = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = pkg + ("." + base if base else "")
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def test_no_import_cycle():
    modules = _modules()
    graph = {n: _imports(n, p, set(modules)) for n, p in modules.items()}
    state: dict[str, int] = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                pytest.fail("import cycle: " + " → ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in modules:
        if n not in state:
            visit(n, [n])


def test_modules_are_small_and_experiment_is_thin():
    big = {str(p.relative_to(ROOT)): n for p in [*_modules().values(), *(ROOT / "app_pages").glob("*.py")]
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"
    tree = ast.parse((ROOT / "explorer" / "experiment.py").read_text())
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
        if name.startswith("explorer"):  # (explorer.serve starts `streamlit run` processes: a name, not an import)
            imported = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module.split(".")[0])
                elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
                    imported.add("dynamic")
            assert "streamlit" not in imported and "importlib" not in imported, name
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
    from explorer.config import ExperimentConfig

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

    from explorer import cli, pruning
    from explorer.config import config_json

    calls = []
    compact = pruning.compact
    monkeypatch.setattr(pruning, "compact", lambda *a, **k: calls.append(1) or compact(*a, **k))
    cfg = tiny_config(weight_pruning={"structured": {"amount": 0.5}})
    (tmp_path / "setup.json").write_text(config_json(cfg))
    assert cli.main(["run", str(tmp_path / "setup.json"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "compact.pt").exists() and len(calls) == 1


def test_every_chart_is_drawn_with_the_apps_own_template():
    """Streamlit's chart theme overrides plotly's default template (12 px grey labels, unreadable on a projector):
    every st.plotly_chart passes theme=None so the `explorer` template of explorer/plots.py applies."""
    missing = []
    for path in [*ROOT.glob("app_pages/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "plotly_chart":
                theme = [k for k in node.keywords if k.arg == "theme"]
                if not theme or not (isinstance(theme[0].value, ast.Constant) and theme[0].value.value is None):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, "plotly_chart without theme=None: " + ", ".join(missing)
