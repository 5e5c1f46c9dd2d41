"""One loader for the app's versioned JSON files (configs, presets, lessons): a bounded read, one version check and one
way of saying what is wrong.

Each kind of file is a `VersionedJson`: the word its messages use ("config"), the version this app reads, its pydantic
model and its bounds. `parse(text)` reads untrusted text through jsontext.load_json (bytes, depth, keys and number
length measured first; a UTF-8 byte-order mark is dropped), checks `version`, validates, and raises ConfigError whose
problems each start with the field path ("train.epochs: …", "steps[2].predict.answer: …"); `validate(raw)` does the
same for an object already parsed (a form, a setup nested in a lesson); `read(path)` measures a file before reading
it. Every kind's model derives from `FileModel`, whose rules hold for every file: unknown fields are refused, a float
must be finite (JSON's NaN and Infinity are refused by name), and true/false is never read as a number.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from explorer.config.jsontext import CONFIG_BOUNDS, ConfigError, JsonBounds, load_json, too_big, too_deep
from explorer.config.names import clipped

__all__ = ["FileModel", "VersionedJson", "field_problems", "nested", "read_bounded", "read_object"]

M = TypeVar("M", bound=BaseModel)
_MAX_INT_DIGITS = 100  # far above any real setting; below Python's 4300-digit conversion limit


class FileModel(BaseModel):
    """The base of every model read from a file (a config's sections, a lesson's parts, a preset). Frozen: a value read
    is shared, never changed in place. Unknown fields are refused rather than silently dropped; NaN and ±Infinity
    (which Python's json reads) are refused in every float, so a bad number is named as not finite instead of being
    compared with a bound it can never meet; and true/false is refused where a number is meant (pydantic would read
    `"epochs": true` as 1)."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        wanted = _number_kind(cls, info.field_name)
        if wanted is None or not isinstance(value, (bool, list, dict)):
            return value
        if isinstance(value, bool):
            raise ValueError(f"must be {wanted}, not {json.dumps(value)}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for where, v in items:
            if isinstance(v, bool):
                named = f"'{clipped(where)}'" if isinstance(where, str) else f"item {where}"
                raise ValueError(f"{named} must be {wanted}, not {json.dumps(v)}")
        return value


@cache
def _number_kind(model: type[BaseModel], field: str) -> str | None:
    """"a whole number" or "a number" when `field` of `model` holds only numbers (one, or a list or dict of them),
    None when it may hold true/false or a nested model (which validates its own fields)."""
    kinds = _kinds(model.model_fields[field].annotation)
    if not kinds & {"int", "float"} or kinds & {"bool", "model"}:
        return None
    return "a number" if "float" in kinds else "a whole number"


def _kinds(tp: Any) -> set[str]:
    origin = get_origin(tp)
    if origin is Annotated:
        return _kinds(get_args(tp)[0])
    if origin in (Union, UnionType, list, tuple, set, dict):
        args = get_args(tp)[1:] if origin is dict else get_args(tp)  # a dict's keys are names
        return set().union(*(_kinds(a) for a in args)) if args else {"other"}
    if origin is Literal:
        return {"other"}
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {"model"}
    return {{bool: "bool", int: "int", float: "float"}.get(tp, "other")}


# ---- reading -------------------------------------------------------------------------------------------------------
def _int_or_inf(digits: str) -> int | float:
    # A huge integer is read as inf, so validation names its field (not Python's set_int_max_str_digits advice).
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


def read_object(text: str | bytes, bounds: JsonBounds = CONFIG_BOUNDS) -> dict:
    """The JSON object of untrusted `text`, measured against `bounds` first (explorer.config.jsontext; a UTF-8
    byte-order mark is dropped). Raises ConfigError naming what is wrong, and for JSON that is not an object."""
    raw = load_json(text, bounds, parse_int=_int_or_inf)
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a JSON object at the top level, got {type(raw).__name__}"])
    return raw


def read_bounded(path: Path, bounds: JsonBounds = CONFIG_BOUNDS) -> bytes:
    """The bytes of the file at `path`, measured before it is read: a file larger than `bounds` allows raises
    ConfigError and is never read into memory. OSError (a missing or unreadable file) is the caller's to word."""
    size = Path(path).stat().st_size
    if size > bounds.max_bytes:
        raise ConfigError([too_big(size, bounds)])
    return Path(path).read_bytes()


@dataclass(frozen=True)
class VersionedJson(Generic[M]):
    """One kind of versioned JSON file: `kind` is the word messages use ("config", "preset", "lesson"), `version` the
    one this app reads, `model` what the file must be, `bounds` how large a file may be before it is parsed. With
    `version_required` False a file without "version" is read as this version (a config written by hand).

    `upgrades`: the version steps, oldest first: upgrades[i] turns a parsed file of version `oldest + i` into one of
    the next version with the same meaning (a field whose default changed is written out with the old value), so an
    old file replays to what it gave. A file is upgraded before its version is checked and before it is validated."""
    kind: str
    model: type[M]
    version: int
    bounds: JsonBounds = CONFIG_BOUNDS
    version_required: bool = True
    upgrades: tuple[Callable[[dict], dict], ...] = ()

    @property
    def oldest(self) -> int:
        """The oldest version this app reads (the ones before `version` through `upgrades`)."""
        return self.version - len(self.upgrades)

    def upgraded(self, raw: dict) -> dict:
        """`raw` as a file of this version: each version step from its own version on applied in turn. Anything else
        (this version, no version, a version this app does not read) is returned as it is, for the version check."""
        v = raw.get("version")
        if type(v) is not int or not self.oldest <= v < self.version:  # true is not 1
            return raw
        for step in self.upgrades[v - self.oldest:]:
            v += 1
            raw = {**step(raw), "version": v}
        return raw

    def parse(self, text: str | bytes, source: str | None = None) -> M:
        """The model of a JSON text: bounded read, version check, validation. Raises ConfigError whose problems each
        name the field (each starting with `source`, e.g. the file's name, when given)."""
        return _from(source, lambda: self.validate(read_object(text, self.bounds)))

    def read(self, path: Path) -> M:
        """The model of the file at `path`, measured before it is read; problems start with the file's name. A file
        that cannot be read raises ConfigError saying so."""
        path = Path(path)
        try:
            text = read_bounded(path, self.bounds)
        except OSError as e:
            raise ConfigError([f"{path.name}: cannot be read ({e.strerror or e})"]) from None
        except ConfigError as e:
            raise ConfigError([f"{path.name}: {p}" for p in e.problems]) from None
        return self.parse(text, path.name)

    def validate(self, raw: Any, source: str | None = None) -> M:
        """The model of an already parsed object (a dict from a form or a file): version check, then validation.
        Raises ConfigError whose problems each name the field."""
        def check() -> M:
            current = self.upgraded(raw) if isinstance(raw, dict) else raw
            if isinstance(current, dict) and (problem := self.version_problem(current)):
                raise ConfigError([problem])
            try:
                return self.model.model_validate(current)
            except ValidationError as e:
                raise ConfigError(self.problems(e)) from None
            except RecursionError:  # nesting below json's limit can still exhaust validation or a message's repr
                raise ConfigError([too_deep(self.bounds.max_depth, self.kind)]) from None
        return _from(source, check)

    def version_problem(self, raw: dict) -> str | None:
        """What is wrong with the "version" of a parsed file, in the one wording every kind uses; None when it is the
        version this app reads (or absent where that is allowed)."""
        reads = f"{self.kind} version {self.version}" if not self.upgrades else \
            f"{self.kind} versions {self.oldest} to {self.version}"
        if "version" not in raw:
            if not self.version_required:
                return None
            return f"version: missing; this app reads {reads} (write \"version\": {self.version})"
        v = raw["version"]
        if type(v) is int and v == self.version:  # true is not 1
            return None
        return f"version: this app reads {reads}, the file has version " \
               f"{clipped(json.dumps(v) if v is None or isinstance(v, bool) else repr(v))}"

    def problems(self, err: ValidationError) -> list[str]:
        """`err` as messages that each start with the field path (see field_problems)."""
        return field_problems(err, self.kind, self.version)

    def json_schema(self) -> dict:
        """The JSON Schema of this kind of file (what `python -m explorer schema` prints)."""
        return self.model.model_json_schema()


def nested(kind: VersionedJson) -> Callable[[Any], Any]:
    """A before-validator for a field that holds a whole file of another kind (a lesson's or a preset's config): a
    dict is read through `kind`, so its version is checked in the same words and its problems name its own fields
    ("setup: train.epochs: …"); anything else is left to the field's type."""
    def read(raw: Any) -> Any:
        # ConfigError is a ValueError: pydantic reports it under the field that holds the file.
        return kind.validate(raw) if isinstance(raw, dict) else raw
    return read


def _from(source: str | None, make: Callable[[], M]) -> M:
    if source is None:
        return make()
    try:
        return make()
    except ConfigError as e:
        raise ConfigError([f"{source}: {p}" for p in e.problems]) from None


# ---- messages --------------------------------------------------------------------------------------------------------
# pydantic adds the member of a union to the path ('float', 'dict[str,float]', 'function-after[...]'): users never
# wrote those, so the path shown leaves them out.
_UNION_TAG = re.compile(r"^(float|int|str|bool|none|[a-z-]+\[.*\])$")
_MISMATCH = re.compile(r"_(type|parsing)$")  # the value is not of that union member's kind at all


def _tag(part: object) -> bool:
    return isinstance(part, str) and bool(_UNION_TAG.match(part))


def _path(parts: Iterable[int | str]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a dict key that is refused (rather than its value)
            path += " (the name)"
        elif not _tag(part):
            path += ("." if path else "") + str(part)
    return path


def _said(value: object) -> str:
    try:
        return clipped(json.dumps(value))  # as the file wrote it: NaN, Infinity, true, null
    except (TypeError, ValueError):
        return clipped(repr(value))


def _message(e: Mapping[str, Any], kind: str, version: int) -> str:
    kind_of = e["type"]
    if kind_of == "extra_forbidden":
        return f"unknown field (not part of {kind} version {version})"
    if kind_of == "missing":
        return "missing (required)"
    if kind_of == "finite_number":
        return f"must be a finite number, not {_said(e['input'])}"
    if kind_of == "json_invalid":
        return f"not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}"
    return e["msg"].removeprefix("Value error, ")


def field_problems(err: ValidationError, kind: str, version: int) -> list[str]:
    """The one wording of a pydantic ValidationError for every kind of file: one problem per field path, which it
    starts with ("train.lr: must be a finite number, not NaN", "steps[0].hint: missing (required)"). A value refused
    by every member of a union is one problem; when one member got further (a per-layer object with a bad value, a
    number that is not finite) only what that member says is kept."""
    entries = []  # (union base, path shown, tagged, got further, error)
    for e in err.errors():
        loc = e["loc"]
        at = next((i for i, p in enumerate(loc) if _tag(p)), None)
        base = _path(loc if at is None else loc[:at])
        further = at is not None and (len(loc) > at + 1 or not _MISMATCH.search(e["type"]))
        entries.append((base, _path(loc), at is not None, further, e))
    by_path: dict[str, list[str]] = {}
    for base in dict.fromkeys(b for b, *_ in entries):
        group = [x for x in entries if x[0] == base]
        tagged = [x for x in group if x[2]]
        if tagged and not any(x[3] for x in tagged):  # no member took the value at all
            if any(str(p).startswith("dict[") for x in tagged for p in x[4]["loc"]):
                got = _said(tagged[0][4]["input"])
                by_path.setdefault(base, []).append(f"expected a number or a per-layer object such as "
                                                    f"{{\"fc1\": 0.5}}, got {got}")
                group = [x for x in group if not x[2]]
        else:
            group = [x for x in group if not x[2] or x[3]]
        for _, path, _, _, e in group:
            by_path.setdefault(path, []).append(_message(e, kind, version))
    problems = []
    for path, msgs in by_path.items():
        said = "; ".join(dict.fromkeys(msgs))
        # A validator of a whole section starts its message with the field path it is about ("model.arch: …").
        problems.append(said if not path or said.startswith(path + ".") else f"{path}: {said}")
    return problems
