"""Untrusted JSON, measured before it is parsed: size, nesting depth, key count and number length.

`json.loads` is fast but unbounded: a 100 MB object of unknown keys costs minutes of validation and gigabytes of
messages, thousands of nested brackets end in RecursionError, and a 10,000-digit integer in Python's conversion limit.
A real config is a few KB, four levels deep, with a few dozen keys, so every file, upload, link and CLI argument that
holds JSON goes through `load_json`, which checks those bounds with C-speed regular expressions first (a refused input
costs milliseconds) and raises ConfigError naming the bound, never anything else. A UTF-8 byte-order mark (which some
Windows editors write) is dropped: it is not part of the JSON. Versioned files (configs, presets, lessons) are read
through explorer/config/versioned.py, which calls this.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A config that cannot be used. `str(err)` is one line per problem, each starting with the field path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        # Bounded: an input with thousands of wrong keys gets a message of a few lines, not one line per key.
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = len(problems) - MAX_PROBLEMS_SHOWN
        super().__init__(shown + (f"; … and {more:,} more problem(s)" if more > 0 else ""))

# Strings first (so brackets, colons and digits inside them do not count), then what is left is structure. An
# unterminated string runs to the end of the text: the pattern then always matches where it starts, so substitution
# never rescans (a closing-quote-only pattern costs quadratic time on 30,000 escaped quotes).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_NUMBER = re.compile(r"[-+0-9.eE]+")
_KEYED_NUMBER = re.compile(r'"([A-Za-z_][A-Za-z0-9_]{0,39})"\s*:\s*[-+0-9.eE]{41,}')
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class JsonBounds:
    """The most a JSON text may hold before it is parsed. The defaults fit a config with room to spare."""
    max_bytes: int = 64_000        # a config is 1-3 KB; a preset with its paragraph under 2 KB
    max_depth: int = 8             # a config is four levels deep (config → section → per-layer object → value)
    max_keys: int = 2_000          # a config has about 60 keys; per-layer values add one per layer
    max_number_chars: int = 40     # a float64 needs at most 24 characters
    kind: str = "config"           # what the text should be, as messages name it ("a lesson is a few KB")


CONFIG_BOUNDS = JsonBounds()


def load_json(text: str | bytes, bounds: JsonBounds = CONFIG_BOUNDS,
              parse_int: Callable[[str], Any] | None = None) -> Any:
    """The parsed JSON of `text`, after checking it against `bounds`. Raises ConfigError with one problem that names
    what is too large (or what is not JSON); never RecursionError, MemoryError or ValueError."""
    if isinstance(text, bytes):
        if len(text) > bounds.max_bytes:  # before decoding: no copy of a huge upload is made
            raise ConfigError([too_big(len(text), bounds)])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError([f"not a UTF-8 text file; expected a {bounds.kind} JSON"]) from None
    if len(text.encode("utf-8", "surrogatepass")) > bounds.max_bytes:
        raise ConfigError([too_big(len(text.encode("utf-8", "surrogatepass")), bounds)])
    text = text.removeprefix("\ufeff")  # a byte-order mark: json.loads would refuse it as "Unexpected UTF-8 BOM"
    structure = _STRING.sub('""', text)
    _check_depth(structure, bounds)
    keys = structure.count(":")
    if keys > bounds.max_keys:
        typical = "a config has about 60" if bounds.kind == "config" else f"far more than a {bounds.kind} has"
        raise ConfigError([f"the JSON has {keys:,} keys; {typical} (at most {bounds.max_keys:,} are read)"])
    longest = max((len(m) for m in _NUMBER.findall(structure)), default=0)
    if longest > bounds.max_number_chars:
        named = _KEYED_NUMBER.search(text)  # the key it is written under, when it has one, to say which setting
        raise ConfigError([(f"{named[1]}: " if named else "") + f"the JSON holds a number written with {longest:,} "
                           f"characters; a setting needs at most {bounds.max_number_chars}"])
    try:
        return json.loads(text, parse_int=parse_int)
    except RecursionError:  # unreachable within the depth bound; kept so no input can escape as a traceback
        raise ConfigError([too_deep(bounds.max_depth, bounds.kind)]) from None
    except json.JSONDecodeError as e:
        raise ConfigError([f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"]) from None


def _check_depth(structure: str, bounds: JsonBounds) -> None:
    depth = 0
    for m in _BRACKET.finditer(structure):
        depth += 1 if m.group() in "[{" else -1
        if depth > bounds.max_depth:
            raise ConfigError([too_deep(bounds.max_depth, bounds.kind)])


def too_big(n: int, bounds: JsonBounds = CONFIG_BOUNDS) -> str:
    """The message for a text (or a file, measured before it is read) of `n` bytes, over what `bounds` allow."""
    return (f"the JSON is {n:,} bytes; a {bounds.kind} is a few KB (at most {bounds.max_bytes:,} bytes are read): "
            "is this the right file?")


def too_deep(max_depth: int = CONFIG_BOUNDS.max_depth, kind: str = "config") -> str:
    """The message for JSON nested deeper than a `kind` of file can be."""
    shape = "a config is four levels deep; " if kind == "config" else ""
    return f"the JSON is nested far too deeply to be a {kind} ({shape}at most {max_depth} read)"
