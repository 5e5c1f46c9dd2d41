"""Words a student knows (issue 14): every technical term a page shows has a glossary entry of one or two plain
sentences, with the paper it comes from.

Every page runs through AppTest in the states that show the most (trained; trained in workshop mode; fine-tuned by
DNS with activation targets, a frozen layer, snapshots and sensitivity curves; structured pruning; a 2-D data set;
untrained), and everything it shows is collected: titles, Markdown, captions, alerts, widget labels, options and help,
metric labels and help, expander labels, table and dataframe headers and text cells, column help, figure titles, axes
and legends, and the words of the SVG pictures (code blocks are code, not words). Jargon in that text is
(a) a word or phrase of the curated JARGON list below: a new term is added there deliberately, and then needs an entry;
(b) any word shaped like an acronym or a symbol: two capitals (CSR, APoZ, MACs, ReLU, LeNet), a capital and a digit
    (L1), an underscore between letters (s_i, state_dict), or a Greek letter in a word (Δt), except the few in ALLOWED
    and names that the same text uses as code (`ModelConfig(…)`, `torch.load`, `x=…`).
Each one must have an entry in explorer/classroom/glossary.json; a failure names the page, the state and the term.
"""
from __future__ import annotations

import base64
import html
import json
import re

import pytest
from helpers import ROOT, no_exceptions, tiny_config
from streamlit.testing.v1 import AppTest

from explorer.classroom.glossary import GLOSSARY, entry, explain, help_text, markdown_literal, terms_in

PAGES = ["app_pages/home.py", "app_pages/playground.py", "app_pages/model_data.py", "app_pages/freeze.py",
         "app_pages/weight_pruning.py", "app_pages/activations.py", "app_pages/train.py", "app_pages/export.py",
         "app_pages/class_board.py", "app_pages/instructor.py"]

# (a) Technical words that a plain reader would not know or would misread, as pages use them. Matched as whole words,
# in any case, with plural or past endings ("masks", "pruned").
JARGON = (
    "Wanda", "winning ticket", "rewind", "random re-initialisation",
    "pruning", "sparsity", "weight sparsity", "activation sparsity", "magnitude", "magnitude pruning", "unstructured",
    "structured", "mask", "threshold", "scope", "per layer", "global ranking", "fine-tuning", "fine-tune", "retrain",
    "schedule", "one-shot", "iterative", "initial sparsity", "steps between prunings", "ramp", "splice",
    "splice margin", "surgery", "straight-through", "average percentage of zeros", "L1 norm", "L2 norm",
    "L1 penalty", "weight decay", "L2 penalty", "sensitivity", "pruning curve", "lottery ticket", "activation",
    "nonlinearity", "activation threshold", "forced-threshold ReLU", "target sparsity", "quantile", "dead unit",
    "zeroed", "units removed", "neuron", "unit", "filter", "channel", "kernel", "conv", "convolutional",
    "weight", "bias", "parameter", "trainable", "layer", "hidden layer", "hidden sizes", "output layer",
    "fully connected", "feature", "class", "loss", "gradient", "grad", "accuracy", "chance", "diverged",
    "baseline", "random initialisation", "training set", "validation", "validation split", "validation fraction",
    "test split", "test set", "test fraction", "stratified", "standardised", "decision region", "seed", "epoch",
    "learning rate", "batch size", "batch", "optimizer", "momentum", "adam", "adamw", "sgd", "frozen", "freeze",
    "snapshot", "preset", "config", "multiply-add", "skippable", "compaction", "compacted", "latency", "dense",
    "sparse format", "sparse file", "bitmask", "break-even", "matmul", "tensor", "fp32", "state_dict", "checkpoint",
    "fingerprint", "hash", "npz", "device", "overfit", "histogram", "log scale", "calibration", "calibrated",
    "bit-identical", "pickled", "benchmark", "BLAS", "DNN",
)
# Shaped like jargon but known to every student who uses a computer, so an entry would only add noise.
ALLOWED = {
    "CSV": "a spreadsheet file, named on the upload control with its format",
    "JSON": "a settings file; the config it holds has its own entry",
    "CPU": "the computer's processor, as on any computer's spec sheet",
    "GPU": "a graphics card, as above",
    "MB": "megabytes, as every file size is shown",
    "URL": "a web address",
    "QR": "the square code a phone's camera opens, as on any poster (the class address for the projector)",
    "OK": "plain English",
    "ID": "plain English",
    "BSD": "a software licence's name, where the MNIST images' source is stated",
    "LeCun": "a person's name (Yann LeCun, who made MNIST), in the same source line",
}

_CODE_SPAN = re.compile(r"`[^`]*`")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# Code inside prose: a name called, a dotted name (prune.global_unstructured, model.pt) or a name assigned (x=1).
_CODE_NAME = re.compile(r"(\w+)(?=\()|([^\W\d]\w*(?:\.[^\W\d]\w*)+)|(\w+)(?==)")
# An author of a cited paper ("LeCun et al. 1998", "Zhu & Gupta 2017") is a name, not jargon.
_AUTHOR = re.compile(r"([A-Z]\w*)(?=\s+(?:et al\b|&))|(?<=&\s)([A-Z]\w*)")
_SVG_TEXT = re.compile(r"<text\b[^>]*>([^<]*)</text>")
# A class code as people read it (explorer.board.rules.format_code: ABCDE-FGHJK) is a name drawn at random, not jargon.
_CLASS_CODE = re.compile(r"(?<![\w-])[A-Z2-9]{5}-[A-Z2-9]{5}(?![\w-])")


# ---- the jargon scan -------------------------------------------------------------------------------------------------
def plain(text: str) -> str:
    """What a reader sees of a Markdown text: escapes resolved, code spans (code, not words) and emphasis marks gone."""
    text = _CLASS_CODE.sub(" ", _CODE_SPAN.sub(" ", text))
    return _ESCAPE.sub(r"\1", text).replace("**", "")


def acronyms(text: str) -> set[str]:
    """(b): every word of `text` shaped like an acronym or a symbol, except names that the same text uses as code and
    the authors it cites."""
    code = {part for m in _CODE_NAME.finditer(text) for name in m.groups() if name for part in name.split(".")}
    code |= {name for m in _AUTHOR.finditer(text) for name in m.groups() if name}
    found = set()
    for word in re.findall(r"\w+", text):
        if word in code or word.isdigit():
            continue
        if (sum(c.isupper() for c in word) >= 2 or re.search(r"[A-Z]\d", word)
                or re.search(r"[^\W\d_]_[^\W\d_]", word) or (len(word) > 1 and re.search(r"[α-ωΑ-Ω]", word))):
            found.add(word)
    return found


def _mentions(text: str, phrase: str) -> bool:
    words = r"[\s-]+".join(map(re.escape, re.split(r"[\s-]+", phrase)))
    return re.search(rf"(?<!\w){words}(?:es|ed|s|d)?(?!\w)", text, re.IGNORECASE) is not None


def jargon_in(text: str, jargon=JARGON) -> set[str]:
    """The jargon `text` shows: the words of the curated list it uses, and its acronym-shaped words not in ALLOWED."""
    text = plain(text)
    return {p for p in jargon if _mentions(text, p)} | {w for w in acronyms(text)
                                                       if w not in ALLOWED and w.removesuffix("s") not in ALLOWED}


def has_entry(term: str) -> bool:
    try:
        entry(term)
    except KeyError:
        return False
    return True


def missing_terms(text: str, jargon=JARGON) -> set[str]:
    """The jargon of `text` that has no glossary entry."""
    return {t for t in jargon_in(text, jargon) if not has_entry(t)}


# ---- what a page shows -----------------------------------------------------------------------------------------------
_SHOWN_FIELDS = {"label", "help", "body", "options", "content", "placeholder", "text", "caption", "alt", "delta",
                 "delta_description"}
_SKIPPED = {"code", "html", "exception", "json"}  # code and style sheets are not words a student reads


def _proto_texts(msg, out: list) -> None:
    for field, value in msg.ListFields():
        values = value if field.is_repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for v in values:
                _proto_texts(v, out)
        elif field.type == field.TYPE_STRING and field.name in _SHOWN_FIELDS:
            out.extend(values)


def _figure_texts(node, out: list) -> None:
    """Titles, axis titles, legend names and labels of a plotly figure (not its numbers, template or hover format)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("template", "hovertemplate", "texttemplate", "x", "y", "z", "customdata", "colorscale"):
                continue
            if k in ("text", "name", "title", "hovertext") and isinstance(v, str):
                out.append(v)
            elif k in ("text", "hovertext", "ticktext") and isinstance(v, list):
                out.extend(s for s in v if isinstance(s, str))
            else:
                _figure_texts(v, out)
    elif isinstance(node, list):
        for v in node:
            _figure_texts(v, out)


def _frame_texts(df, out: list) -> None:
    out.extend(str(c) for c in df.columns)
    out.extend(str(n) for n in df.index.names if n)
    for col in df.columns:
        if df[col].dtype.kind not in "biufcm":
            out.extend(str(v) for v in df[col] if v is not None)
    if df.index.dtype.kind not in "biufcm":
        out.extend(str(v) for v in df.index)


def _walk(node, out: list) -> None:
    kind, proto = getattr(node, "type", ""), getattr(node, "proto", None)
    if kind in _SKIPPED:
        return
    if kind == "plotly_chart":
        _figure_texts(json.loads(proto.spec), out)
    elif kind in ("dataframe", "table"):
        _frame_texts(node.value, out)
        config = json.loads(proto.columns) if kind == "dataframe" and proto.columns else {}
        out.extend(str(c.get(k)) for c in config.values() for k in ("label", "help") if c.get(k))
    elif kind == "imgs":
        for img in proto.imgs:
            if img.url.startswith("data:image/svg+xml;base64,"):
                svg = base64.b64decode(img.url.split(",", 1)[1]).decode()
                out.extend(html.unescape(t) for t in _SVG_TEXT.findall(svg))
            out.extend(t for t in (img.caption, img.alt) if t)
    elif proto is not None:
        _proto_texts(proto, out)
    for child in getattr(node, "children", {}).values():
        _walk(child, out)


def shown_text(at: AppTest) -> list[str]:
    """Every text the app shows after a run (main area and sidebar)."""
    out: list[str] = []
    _walk(at._tree, out)
    return [t for t in out if t.strip()]


def missing_on(at: AppTest, where: str) -> dict[str, set[str]]:
    """{term: {where}} for each term that the app shows without a glossary entry."""
    return {t: {where} for t in missing_terms("\n".join(shown_text(at)))}


def run_page(page: str, experiment=None, workshop: bool = False, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if experiment is not None:
        at.session_state["experiment"] = experiment
    for k, v in (state or {}).items():
        at.session_state[k] = v
    if workshop:
        at.query_params["workshop"] = "1"
    at.switch_page(page)
    at.run()
    no_exceptions(at)
    return at


def _merge(into: dict, found: dict) -> None:
    for t, wheres in found.items():
        into.setdefault(t, set()).update(wheres)


def _report(missing: dict) -> str:
    return ("terms shown without a glossary entry (add one to explorer/classroom/glossary.json, or, if a term is not "
            "jargon, to ALLOWED in tests/test_glossary.py with the reason):\n"
            + "\n".join(f"  {t!r} on {', '.join(sorted(w))}" for t, w in sorted(missing.items())))


# ---- the states that show the most -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def states(trained_experiment_factory):
    """{state name: (a maker of the session's experiment, session extras, pages, workshop mode)}; each page run gets
    its own copy of the experiment."""
    import copy

    from explorer.config.schema import ActivationConfig, FinetuneConfig, StructuredConfig, WeightPruningConfig
    from explorer.engine.sparse import latency_tradeoff
    from explorer.experiment.studies import TrainedComparison, regulariser_configs

    tuned = trained_experiment_factory()
    tuned.set_pruning(WeightPruningConfig(sparsity=0.8))
    tuned.set_activation(ActivationConfig(target_sparsity=0.6))
    tuned.set_frozen([tuned.layer_names[0]])
    tuned.set_finetune(FinetuneConfig.model_validate({**tuned.config.finetune.model_dump(), "schedule": "dns",
                                                      "epochs": 1}))
    tuned.finetune()
    tuned.snapshot("tuned", latency_repeats=1)
    tuned.sensitivity()
    structured = trained_experiment_factory()
    structured.set_pruning(WeightPruningConfig(structured=StructuredConfig(method="apoz", amount=0.5)))
    structured.snapshot("structured", latency_repeats=1)
    # The Compare page's two studies, as their results (training them is their own tests' business).
    fake = TrainedComparison(curve=[(0.0, 0.9), (0.9, 0.5)], near_zero=0.1, baseline_accuracy=0.9, hist=[3.0, 1.0],
                             edges=[0.0, 0.5, 1.0])
    extras = {"tradeoff": latency_tradeoff(32, 32, 4, sparsities=(0.0, 0.9), budget_s=1.0),
              "l1_vs_l2": {label: fake for label in regulariser_configs()}}
    moons = tiny_config(data={"name": "moons"})

    def copy_of(exp):
        return lambda: copy.deepcopy(exp)

    return {
        "trained": (trained_experiment_factory, {}, PAGES, False),
        "trained, workshop": (trained_experiment_factory, {}, PAGES, True),
        "fine-tuned by DNS": (copy_of(tuned), extras, PAGES, False),
        "structured": (copy_of(structured), {}, ["app_pages/playground.py", "app_pages/weight_pruning.py",
                                                 "app_pages/activations.py", "app_pages/export.py"], False),
        "2-D data": (lambda: trained_experiment_factory(moons), {}, [
            "app_pages/playground.py", "app_pages/model_data.py", "app_pages/weight_pruning.py",
            "app_pages/activations.py"], False),
        "untrained": (lambda: None, {}, PAGES, False),
    }


@pytest.mark.parametrize("state", ["trained", "trained, workshop", "fine-tuned by DNS", "structured", "2-D data",
                                   "untrained"])
@pytest.mark.slow  # an app run of several seconds: in the full suite, not the fast part
def test_every_term_a_page_shows_has_an_entry(state, states):
    make, extras, pages, workshop = states[state]
    missing: dict = {}
    for page in pages:
        at = run_page(page, make(), workshop, extras)
        _merge(missing, missing_on(at, f"{page} ({state})"))
    assert not missing, _report(missing)


def test_every_preset_text_has_entries():
    """A preset's title and paragraph show on Model & data when it is chosen."""
    from explorer.config.presets import load_presets

    missing: dict = {}
    for key, p in load_presets().items():
        where = f"preset {key} (app_pages/model_data.py)"
        _merge(missing, {t: {where} for t in missing_terms(p.title + "\n" + p.about)})
    assert not missing, _report(missing)


LESSON_TEXT_KEYS = {"title", "summary", "papers", "goal", "do", "question", "choices", "why", "hint"}


def _lesson_texts(node, key: str = "") -> list[str]:
    if isinstance(node, dict):
        return [t for k, v in node.items() for t in _lesson_texts(v, k)]
    if isinstance(node, list):
        return [t for v in node for t in _lesson_texts(v, key)]
    return [node] if isinstance(node, str) and key in LESSON_TEXT_KEYS else []


def test_every_lesson_text_has_entries():
    """Each step of a lesson shows its goal, what to do, the question, the choices, why and the hint in the lesson
    panel; the page runs above see only the first step."""
    files = sorted((ROOT / "lessons").glob("*.json"))
    missing: dict = {}
    for f in files:
        text = "\n".join(_lesson_texts(json.loads(f.read_text())))
        _merge(missing, {t: {f"lessons/{f.name}"} for t in missing_terms(text)})
    assert not missing, _report(missing)


# ---- the scan can fail -----------------------------------------------------------------------------------------------
def test_the_scan_reports_an_invented_acronym_and_a_listed_word_without_entry():
    text = "The XQZ ratio of the network, its frobnication and its APoZ, L1 norm and s_i."
    assert missing_terms(text) == {"XQZ"}
    assert missing_terms(text, JARGON + ("frobnication",)) == {"XQZ", "frobnication"}
    assert acronyms("ReLU, MACs, FLOPs, L1, s_i, Δt, CSR; not fc1, Adam, 2-D or 256") == {
        "ReLU", "MACs", "FLOPs", "L1", "s_i", "Δt", "CSR"}
    # Code is not a word: a name called, dotted or assigned in the same text, or in a code span.
    assert acronyms(plain("build_model(ModelConfig(**d), …) with torch.load(path, weights_only=True), `XQZ`")) == set()
    assert acronyms("compacted.macs_per_example ≤ 9; prune.global_unstructured; LeCun et al. 1998; Zhu & McXy 2017") \
        == set()
    assert missing_terms("CPU and JSON are known") == set()


def test_the_page_scan_reads_every_kind_of_text():
    """A page with an invented acronym in every kind of element: each one is reported."""
    def page():
        import pandas as pd
        import plotly.graph_objects as go
        import streamlit as st

        st.title("QAA title")
        st.caption("QAB caption", help="QAC caption help")
        st.metric("QAD metric", 1, help="QAE metric help")
        st.radio("QAF radio", ["QAG option"], help="QAH radio help")
        st.selectbox("QAI select", ["QAJ option"])
        st.slider("QAK slider", 0, 1, help="QAL slider help")
        st.info("QAM info")
        with st.expander("QAN expander"):
            st.dataframe(pd.DataFrame({"QAO column": ["QAP cell"]}),
                         column_config={"QAO column": st.column_config.TextColumn(help="QAQ column help")})
        st.table(pd.DataFrame({"QAR column": ["QAS cell"]}))
        st.plotly_chart(go.Figure(go.Bar(x=[1], y=[1], name="QAT trace")).update_layout(
            title="QAU title", xaxis_title="QAV axis"), theme=None)
        st.button("QAW button", help="QAX button help")
        st.code("QAY = 1")  # code: not reported
        st.sidebar.markdown("**QAZ** sidebar")

    at = AppTest.from_function(page, default_timeout=60).run()
    no_exceptions(at)
    found = missing_terms("\n".join(shown_text(at)))
    expected = {f"QA{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXZ"}
    assert found == expected, (expected - found, found - expected)


# ---- the entries -----------------------------------------------------------------------------------------------------
# Terms that come from a paper, and a name that its source must hold.
PAPER_TERMS = {
    "magnitude pruning": "Han", "unstructured pruning": "Han", "one-shot": "Han", "iterative pruning": "Han",
    "fine-tuning": "Han", "L1 penalty": "Han", "sensitivity analysis": "Han", "structured pruning": "Li",
    "L1 norm": "Li", "AGP": "Zhu & Gupta 2017", "s_i": "Zhu", "Δt": "Zhu", "DNS": "Guo et al. 2016",
    "splice margin": "Guo", "splice": "Guo", "straight-through estimator": "Bengio", "APoZ": "Hu et al. 2016",
    "ThiNet": "Luo et al. 2017", "forced-threshold ReLU": "Kurtz", "activation threshold": "Kurtz",
    "lottery ticket": "Frankle", "Adam": "Kingma", "AdamW": "Loshchilov", "ReLU": "Nair",
    "LeNet-300-100": "LeCun", "MNIST": "LeCun", "CIFAR-10": "Krizhevsky", "VGG-16": "Simonyan",
    "ImageNet": "Deng", "Torch-Pruning": "Fang",
}
# Markdown that Streamlit would render (emphasis, code, links, HTML, tables, maths) and its ":colour[…]" codes. An
# underscore inside a name (state_dict) is allowed: help_text and the Home table escape it.
_MARKDOWN = re.compile(r"[\\`*\[\]<>#|~$]|:\w|(?<!\w)_|_(?!\w)")


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?=\s|$)", text))


@pytest.mark.parametrize("term", list(GLOSSARY))
def test_an_entry_is_one_or_two_plain_sentences(term):
    e = GLOSSARY[term]
    m = e.meaning
    assert not m[0].islower() and m.endswith("."), m
    assert 1 <= _sentences(m) <= 2 and len(m) <= 300, f"{term}: one or two sentences, at most 300 characters"
    assert not re.search(r"\b(e\.g|i\.e|et al|etc)\.", m), f"{term}: no abbreviation that hides a sentence's end"
    assert not _MARKDOWN.search(m) and not _MARKDOWN.search(e.source or ""), f"{term}: no Markdown in the text"
    assert e.source is None or e.source.strip() == e.source and e.source


def test_entries_explain_with_words_the_glossary_has():
    missing = {t: {f"the glossary's entry {term!r}"} for term, e in GLOSSARY.items() for t in missing_terms(e.meaning)}
    assert not missing, _report(missing)


def test_paper_derived_terms_name_their_paper():
    wrong = {t: entry(t).source for t, who in PAPER_TERMS.items() if who not in (entry(t).source or "")}
    assert not wrong, wrong


def test_the_issue_terms_have_entries():
    for name in ("sparsity", "magnitude pruning", "unstructured pruning", "structured pruning", "mask", "fine-tuning",
                 "one-shot", "iterative pruning", "AGP", "s_i", "Δt", "DNS", "splice margin",
                 "straight-through estimator", "APoZ", "ThiNet", "L1 norm", "L2 norm", "activation threshold",
                 "forced-threshold ReLU", "dead unit", "zeroed unit", "MACs", "skippable MACs", "FLOPs", "compaction",
                 "latency", "CSR", "COO", "bitmask", "state_dict", "checkpoint", "fingerprint", "baseline",
                 "validation split", "test split", "epoch", "learning rate", "batch size", "optimizer", "Adam", "SGD",
                 "weight decay", "L1 penalty", "frozen layer", "snapshot", "break-even sparsity", "global ranking",
                 "per layer", "sensitivity analysis"):
        assert entry(name).term == name


# ---- the functions ---------------------------------------------------------------------------------------------------
def test_entry_is_case_insensitive_and_knows_aliases_and_endings():
    assert entry("apoz") is entry("Average percentage of zeros") is entry("APoZ")
    assert entry("Fine tuning") is entry("fine-tuned") is entry("retraining") is GLOSSARY["fine-tuning"]
    assert entry("masks") is GLOSSARY["mask"] and entry("dead units") is GLOSSARY["dead unit"]
    assert entry("dynamic network surgery") is GLOSSARY["DNS"] and entry("initial sparsity") is GLOSSARY["s_i"]
    with pytest.raises(KeyError, match="XQZ"):
        entry("XQZ")


def test_terms_in_finds_whole_words_only():
    assert terms_in("APoZ ranks units; the masks are held while fine-tuning with AGP's s_i and Δt.") == {
        "APoZ", "neuron", "mask", "fine-tuning", "AGP", "s_i", "Δt"}
    assert terms_in("Weight sparsity of LeNet-300-100, SHA-256 fingerprints") == {
        "weight sparsity", "LeNet-300-100", "SHA-256", "fingerprint"}
    assert terms_in("unmasked masking, apozzz, maskless, subunits") == set()
    assert terms_in("average percentage of zeros") == {"APoZ"}


def test_help_text_is_the_plain_sentences_escaped_for_markdown():
    for term in GLOSSARY:
        text = help_text(term)
        assert _ESCAPE.sub(r"\1", text) == explain(term)
        assert not re.search(r"(?<!\\)[`*_\[\]<>#|~$]", text), text  # every special is escaped
        assert not re.search(r":\w", text), text
    assert help_text("s_i").startswith("s\\_i — AGP's initial sparsity") and "Zhu & Gupta 2017" in help_text("s_i")
    assert help_text("APoZ", "masks").count("\n\n") == 1
    assert markdown_literal("|w| < t, *x*") == "\\|w\\| \\< t, \\*x\\*"
    with pytest.raises(KeyError):
        help_text("mask", "XQZ")


def test_show_glossary_draws_every_entry_and_finds_a_word():
    def page():
        from ui.glossary import show_glossary

        show_glossary(expanded=True)

    at = AppTest.from_function(page, default_timeout=60).run()
    no_exceptions(at)
    table = at.table[0].value
    assert list(table.columns) == ["term", "meaning", "source"] and len(table) == len(GLOSSARY)
    assert "s\\_i" in set(table["term"])  # st.table cells are Markdown: escaped
    at.text_input(key="glossary_find").set_value("average percentage").run()
    assert list(at.table[0].value["term"]) == ["APoZ"]
    at.text_input(key="glossary_find").set_value("[xqz](http://x)").run()
    assert not at.table and "xqz" in at.caption[0].value


def test_the_search_ignores_case_hyphens_and_word_endings():
    from ui.glossary import glossary_rows

    terms = {r["term"] for r in glossary_rows("Fine Tuning")}
    assert any("fine" in t.casefold() for t in terms)
    assert any("sparsity" in r["term"].casefold() for r in glossary_rows("sparse"))
    assert glossary_rows("xqzzy") == []
