"""Untrusted JSON is measured before json.loads (explorer.config.jsontext): every refused input is refused before it is
built (a few MiB at most, whatever its size; how many milliseconds that takes is `python benchmarks/bench_bounds.py`'s
figure) and raises ConfigError, through each entry point that reads JSON (config file or upload, shared link, preset
files)."""
import base64
import json
import tracemalloc
import zlib

import pytest

from explorer.config.jsontext import CONFIG_BOUNDS, JsonBounds, load_json
from explorer.config.links import decode_setup
from explorer.config.schema import ConfigError, parse_config

ATTACKS = {
    "30 MB of spaces": b" " * 30_000_000,
    "a million unknown keys": ("{" + ",".join(f'"k{i}":1' for i in range(10**6)) + "}").encode(),
    "60 KB of keys": "{" + ",".join(f'"{i}":0' for i in range(6000)) + "}",
    "nested lists": "[" * 50_000,
    "nested objects": '{"a":' * 20 + "1" + "}" * 20,
    "a 10,000-digit integer": '{"seed": ' + "7" * 10_000 + "}",
    "a 10,000-digit float": '{"train": {"lr": 0.' + "1" * 10_000 + "}}",
    "an unterminated string": '{"a": "' + "\\\"" * 30_000,
    "only quotes": '"' * 60_000,
    "not UTF-8": b"{\"seed\": \xff}",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_refused_json_is_refused_before_it_is_built_and_says_why(name):
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as err:
            parse_config(ATTACKS[name])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # json.loads of the 30 MB or million-key inputs would build tens of MB
    assert 0 < len(str(err.value)) < 400


def test_the_bounds_fit_every_real_config_with_room_to_spare():
    from explorer.config.presets import PRESETS_DIR

    for path in PRESETS_DIR.glob("*.json"):
        assert len(path.read_bytes()) < CONFIG_BOUNDS.max_bytes / 10
        load_json(path.read_bytes())  # within every bound


def test_depth_key_and_number_bounds_are_exact():
    tight = JsonBounds(max_bytes=1000, max_depth=2, max_keys=2, max_number_chars=3)
    assert load_json('{"a": [1, 2], "b": 123}', tight) == {"a": [1, 2], "b": 123}
    for text in ('{"a": [[1]]}', '{"a": 1, "b": 2, "c": 3}', '{"a": 1234}', " " * 1001):
        with pytest.raises(ConfigError):
            load_json(text, tight)
    # brackets, colons and digits inside strings are text, not structure
    assert load_json('{"a": "[[[[: 123456 :]]]]"}', tight) == {"a": "[[[[: 123456 :]]]]"}


def test_thousands_of_wrong_keys_make_a_short_message():
    text = json.dumps({f"k{i}": 1 for i in range(1900)})
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert len(err.value.problems) == 1900
    assert len(str(err.value)) < 2000 and "1,880 more" in str(err.value)


def test_a_link_to_deep_json_is_a_message():
    link = base64.urlsafe_b64encode(zlib.compress(b"[" * 20_000, 9)).decode().rstrip("=")
    with pytest.raises(ConfigError, match="nested far too deeply"):
        decode_setup(link)
