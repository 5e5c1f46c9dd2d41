"""Text that came from a user or a file (a file name, a layer key, a label, a snapshot name) is shown as written on
every path that echoes it: no Markdown link or image, no HTML, no colour or LaTeX (issue 16, item 7)."""
import base64
import json
import re
import zlib

import pandas as pd
import pytest
from helpers import app, csv_bytes, no_exceptions

from explorer.figures.plots import plain, snapshots_bytes
from ui.views import literal

PAYLOAD = "![p](http://127.0.0.1:9/x.png)[l](https://127.0.0.1:9)<b>b</b>:red[r]$x$**e**www.x.org a@b.org"


def assert_literal(at):
    """No element that renders Markdown shows the payload's markup unescaped."""
    kinds = ("error", "success", "info", "warning", "markdown", "caption")
    shown = [e.value for kind in kinds for e in getattr(at, kind)]
    assert shown, "nothing was shown"
    for text in shown:
        assert not re.search(r"(?<!\\)\]\(", text), text  # a link or image: ](  not escaped as \](
        for markup in ("<b>", ":red[", "$x$", "**e**", "http://", "https://", "www.x", "a@b"):
            assert markup not in text, (markup, text)


def test_literal_escapes_markup_and_keeps_the_text_readable():
    assert literal("not numeric: 'colour' in zoo.csv") == "not numeric: 'colour' in zoo.csv"
    assert literal("[x](http://e.org)") == "\\[x\\](http:\u200b//e.org)"
    assert len(literal("x" * 10_000)) <= 301 and literal("a\n\n# b") == "a # b"
    assert "<" not in plain("<a href='x'>y</a>")


def test_a_link_naming_a_layer_with_markup_is_shown_literally():
    raw = json.dumps({"weight_pruning": {"sparsity": {PAYLOAD: 0.5}}}).encode()
    at = app()
    at.query_params["setup"] = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    at.run()
    no_exceptions(at)
    assert at.error and "is not a layer" in at.error[0].value
    assert_literal(at)


def test_a_config_upload_with_markup_in_its_name_and_keys_is_shown_literally():
    at = app(page="app_pages/export.py")
    content = json.dumps({PAYLOAD: 1}).encode()
    at.file_uploader[0].set_value((PAYLOAD + ".json", content, "application/json")).run()
    no_exceptions(at)
    assert at.error and "unknown field" in at.error[0].value
    assert_literal(at)


@pytest.mark.parametrize("what", ["file name", "column", "labels"])
def test_a_data_upload_with_markup_is_shown_literally(what):
    at = app(page="app_pages/model_data.py")
    frame = pd.DataFrame({"a": [float(i % 7) for i in range(60)], "b": [float(i % 5) for i in range(60)],
                          "y": [f"{PAYLOAD}{i % 3}" if what == "labels" else str(i % 3) for i in range(60)]})
    if what == "column":
        frame[PAYLOAD] = "red"  # a non-numeric feature column: refused, naming the column
        frame = frame[["a", PAYLOAD, "b", "y"]]
    name = (PAYLOAD if what == "file name" else "data") + ".csv"
    at.file_uploader(key="data_upload").set_value((name, csv_bytes(frame), "text/csv")).run()
    at.button(key="data_use").click().run()
    no_exceptions(at)
    assert_literal(at)


def test_a_snapshot_name_and_a_checkpoint_name_with_markup_are_shown_literally(trained_experiment_factory):
    at = app(trained_experiment_factory(), "app_pages/export.py")
    at.text_input[0].set_value(PAYLOAD)
    at.form_submit_button[0].click().run()
    no_exceptions(at)
    assert at.success and PAYLOAD not in at.success[0].value
    assert_literal(at)
    fig = snapshots_bytes(at.session_state["experiment"].snapshots)
    assert "<b>" not in str(fig.data[0].x)
    at = app(trained_experiment_factory(), "app_pages/model_data.py")
    at.file_uploader(key="ckpt_upload").set_value((PAYLOAD + ".pt", b"junk", "application/octet-stream")).run()
    at.button(key="ckpt_load").click().run()
    no_exceptions(at)
    assert at.error
    assert_literal(at)
