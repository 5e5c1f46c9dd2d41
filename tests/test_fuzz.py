"""Bad input, fuzzed: every config JSON, shared link and data file is accepted or refused with a message that names
what is wrong — never a traceback, never a hang."""
import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.config.links import decode_setup, encode_setup
from explorer.config.schema import ConfigError, ExperimentConfig, config_json, parse_config
from explorer.engine.userdata import parse_upload

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)  # the same 500 examples on every run: CI cannot turn red by luck

BASE = json.loads(config_json(ExperimentConfig(weight_pruning={"sparsity": {"fc1": 0.5}}, freeze=["fc3"])))
TOP_LEVEL = set(BASE)

# Values users (and tampered files) put in configs: wrong types, huge and negative numbers, NaN/inf, unknown names.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e-308, 1e6, 1e7, 0, -1, 2**32]),
    st.text(max_size=12), st.sampled_from(["fc1", "fc9", "conv1", "mlp", "cnn", "upload", "global", "dns", "digits"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["fc1", "fc2", "fc3", "fc9", "x"]), inner, max_size=3)),
    max_leaves=8)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))


ALL_PATHS = [p for p in paths(BASE) if p]


@st.composite
def mutated_configs(draw):
    raw = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = raw
        for key in path[:-1]:
            if not isinstance(parent, dict) or key not in parent:
                break
            parent = parent[key]
        else:
            if not isinstance(parent, dict):
                continue
            action = draw(st.sampled_from(["set", "set", "delete", "extra"]))
            if action == "set":
                parent[path[-1]] = draw(values)
            elif action == "delete":
                parent.pop(path[-1], None)
            else:
                parent[draw(st.sampled_from(["extra", "learning_rate", "Sparsity", "layers"]))] = draw(values)
    return raw


def assert_accepted_or_named(text):
    try:
        cfg = parse_config(text)
    except ConfigError as e:
        assert e.problems, "a refusal says why"
        for p in e.problems:
            field = re.match(r"([A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*): \S", p)
            named = (field is not None and (re.split(r"[.[]", field[1])[0] in TOP_LEVEL or "unknown field" in p)) or \
                p.startswith(("not valid JSON", "expected a JSON object", "not a UTF-8"))
            assert named, f"problem does not name a field: {p!r}"
    else:
        assert isinstance(cfg, ExperimentConfig)
        assert parse_config(config_json(cfg)) == cfg  # an accepted config round-trips


@pytest.mark.slow  # hypothesis: many whole configs parsed, validated and round-tripped (about 3 s on 2 cores)
@FUZZ
@given(mutated_configs())
def test_mutated_configs_are_accepted_or_refused_by_field(raw):
    assert_accepted_or_named(json.dumps(raw, allow_nan=True))


@FUZZ
@given(st.one_of(values, st.text(max_size=40), st.binary(max_size=40)))
def test_arbitrary_json_and_bytes_are_refused_cleanly(value):
    text = value if isinstance(value, (str, bytes)) else json.dumps(value, allow_nan=True)
    assert_accepted_or_named(text)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.builds(lambda s, i, c: s[:i] + c + s[i + 1:],
                                                     st.just(encode_setup(ExperimentConfig(seed=7))),
                                                     st.integers(0, 60), st.sampled_from("AZaz09-_=~%"))))
def test_shared_links_decode_or_refuse(text):
    try:
        cfg = decode_setup(text)
    except ConfigError as e:
        assert e.problems
    else:
        assert isinstance(cfg, ExperimentConfig)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["d.csv", "d.npz"]))
def test_random_bytes_as_data_files_are_one_message(data, name):
    try:
        parse_upload(name, data, None)
    except ValueError as e:
        assert str(e)


CSV_CELLS = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True).map(repr),
                      st.sampled_from(["", "NA", "inf", "x", "1e999", '"a,b"', "é"]))


@FUZZ
@given(st.lists(st.lists(CSV_CELLS, min_size=1, max_size=4), min_size=0, max_size=40))
def test_ragged_and_odd_csvs_are_one_message(rows):
    text = "a,b,c\n" + "\n".join(",".join(r) for r in rows)
    try:
        ud = parse_upload("d.csv", text.encode(), None)
    except ValueError as e:
        assert str(e)
    else:
        assert len(ud.y) >= 20 and len(ud.classes) >= 2
