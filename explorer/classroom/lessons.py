"""Guided lessons: versioned JSON files in lessons/, each a path through the app in small steps. A step says its goal
and what to do (page and control named in plain words), asks a "predict first" question, and ends with a check on the
session's real state (explorer/classroom/facts.py), with a hint after a wrong try. Its `actions` are the same steps in
machine form: `perform` carries them out on an Experiment, so the suite plays every lesson and the app can apply a
lesson's setup.

A file is read through the one versioned-JSON loader (explorer/config/versioned.py) and validated like a config
(unknown fields refused, sizes bounded, every fact and every per-layer setting checked against the lesson's model); a
bad file raises ConfigError whose problems each start with the file's name. Every text is plain text: the app shows it
as text, never as Markdown or HTML.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from explorer.classroom.facts import FACTS, Fact, facts
from explorer.config.jsontext import JsonBounds
from explorer.config.names import clipped
from explorer.config.schema import (
    CONFIG_FILE,
    ActivationConfig,
    ConfigError,
    ExperimentConfig,
    FinetuneConfig,
    WeightPruningConfig,
    unit_schedule_problem,
)
from explorer.config.versioned import FileModel, VersionedJson, nested
from explorer.engine.cache import process_cache

if TYPE_CHECKING:
    from explorer.experiment.facade import Experiment

# The UI's one import for lessons: facts and FACTS live in explorer/classroom/facts.py and are re-exported here.
__all__ = ["FACTS", "LESSONS_DIR", "PAGES", "Action", "Check", "CheckResult", "Condition", "Fact", "Lesson", "Predict",
           "Step", "check", "facts", "finetune_settings", "load_lessons", "parse_lesson", "perform"]

# Package data, like the presets: an installed package finds them from any folder (a checkout's lessons/ links here).
LESSONS_DIR = Path(str(resources.files("explorer") / "lessons"))
LESSON_VERSION = 1
# A lesson nests a config inside an action inside a step: deeper than a config, still a few KB.
LESSON_BOUNDS = JsonBounds(max_bytes=64_000, max_depth=12, max_keys=2_000, kind="lesson")
Page = Literal["playground", "model_data", "freeze", "weight_pruning", "activations", "train", "export", "class_board",
               "instructor"]
PAGES: tuple[str, ...] = get_args(Page)
Op = Literal[">=", "<=", ">", "<", "==", "!="]
SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "!=": "≠"}
_MARKUP = re.compile(r"\*\*|__|`|\]\(|<[A-Za-z/!]|[\x00-\x09\x0b-\x1f\x7f]")


def _plain(text: str) -> str:
    found = _MARKUP.search(text)
    if found:
        raise ValueError(f"plain text only (shown as written, never as Markdown or HTML): remove {found[0]!r}")
    return text


# Plain-text fields of 1 to N characters, one alias per N (written out: a type checker reads no call in an annotation).
_PLAIN = AfterValidator(_plain)
Text40 = Annotated[str, StringConstraints(min_length=1, max_length=40), _PLAIN]
Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60), _PLAIN]
Text80 = Annotated[str, StringConstraints(min_length=1, max_length=80), _PLAIN]
Text160 = Annotated[str, StringConstraints(min_length=1, max_length=160), _PLAIN]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200), _PLAIN]
Text300 = Annotated[str, StringConstraints(min_length=1, max_length=300), _PLAIN]
Text400 = Annotated[str, StringConstraints(min_length=1, max_length=400), _PLAIN]
Text600 = Annotated[str, StringConstraints(min_length=1, max_length=600), _PLAIN]


class _Model(FileModel):
    # FileModel: frozen, unknown fields refused, NaN/Infinity refused, true/false never read as a number.
    pass


class Condition(_Model):
    """One comparison of a fact with a value: {"fact": "weight_sparsity", "op": ">=", "value": 0.9}."""

    fact: str
    op: Op
    value: StrictBool | StrictInt | StrictFloat | Text40

    @model_validator(mode="after")
    def _check(self) -> Condition:
        if self.fact not in FACTS:
            close = difflib.get_close_matches(self.fact, FACTS, n=1)
            raise ValueError(f"fact: unknown fact '{clipped(self.fact)}'; " + (
                f"did you mean '{close[0]}'?" if close else f"known facts: {', '.join(FACTS)}"))
        unit, v = FACTS[self.fact].unit, self.value
        kind = "yes/no" if unit == "yes/no" else "text" if unit == "text" else "number"
        got = "yes/no" if isinstance(v, bool) else "text" if isinstance(v, str) else "number"
        if got != kind:
            raise ValueError(f"value: fact '{self.fact}' is a {kind}, the value is a {got}")
        if kind != "number" and self.op not in ("==", "!="):
            raise ValueError(f"op: fact '{self.fact}' is a {kind}: compare it with == or !=")
        if kind == "number" and not abs(cast(float, v)) < float("inf"):  # a number: got == kind
            raise ValueError("value: must be a finite number")
        return self


class Check(_Model):
    """What a step's state must be: every condition holds."""

    all: list[Condition] = Field(min_length=1, max_length=6)

    @property
    def facts(self) -> list[str]:
        """The facts the check reads (what `lessonfacts.facts(exp, only=...)` must compute)."""
        return list(dict.fromkeys(c.fact for c in self.all))


class Predict(_Model):
    """A multiple-choice question answered before the result shows; `answer` indexes `choices` (from 0)."""

    question: Text300
    choices: list[Text160] = Field(min_length=2, max_length=5)
    answer: StrictInt = Field(ge=0)
    why: Text600

    @model_validator(mode="after")
    def _check(self) -> Predict:
        if self.answer >= len(self.choices):
            raise ValueError(f"answer: {self.answer} is out of range: there are {len(self.choices)} choices, "
                             f"numbered from 0")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError("choices: a choice is listed twice")
        return self


class _Empty(_Model):
    pass


class Action(_Model):
    """One thing to do, in machine form: exactly one of the fields is given."""

    train_baseline: _Empty | None = None
    prune: WeightPruningConfig | None = None
    finetune: FinetuneConfig | None = None
    freeze: list[Text40] | None = Field(None, max_length=16)
    activation: ActivationConfig | None = None
    snapshot: Text60 | None = None
    setup: ExperimentConfig | None = None

    _setup = field_validator("setup", mode="before")(nested(CONFIG_FILE))

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"an action gives exactly one of {', '.join(type(self).model_fields)}; this one gives "
                             f"{', '.join(given) or 'none'}")
        return self

    @property
    def name(self) -> str:
        """Which action it is ("prune", "finetune", …)."""
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


class Step(_Model):
    """One step: a goal, what to do (on which page), a prediction, a check with a hint, and the actions."""

    title: Text80
    goal: Text300
    do: Text600
    page: Page
    predict: Predict | None = None
    check: Check
    hint: Text400
    actions: list[Action] = Field(default_factory=list, max_length=8)


class Lesson(_Model):
    """One lesson file (see the module docstring)."""

    version: Literal[1]
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
    title: Text80
    summary: Text400
    minutes: int = Field(ge=1, le=180)
    papers: list[Text200] = Field(default_factory=list, max_length=8)
    setup: ExperimentConfig | None = None
    steps: list[Step] = Field(min_length=1, max_length=12)

    _setup = field_validator("setup", mode="before")(nested(CONFIG_FILE))

    @model_validator(mode="after")
    def _actions_fit(self) -> Lesson:
        """Each action's setting fits the model the lesson has at that point (its setup, or a later setup action)."""
        config = self.start_config
        for i, step in enumerate(self.steps):
            for j, action in enumerate(step.actions):
                try:
                    config = _config_after(config, action)
                except ValueError as e:
                    raise ValueError(f"steps[{i}].actions[{j}].{action.name}: {e}") from None
        return self

    @property
    def start_config(self) -> ExperimentConfig:
        """The config the lesson starts from: its setup, or the default one."""
        return self.setup if self.setup is not None else ExperimentConfig()


def _config_after(config: ExperimentConfig, action: Action) -> ExperimentConfig:
    """The config after `action` (per-layer keys checked against the model). Raises ValueError."""
    name = action.name
    if name == "setup":
        assert action.setup is not None  # an action holds exactly the field it is named by
        return action.setup
    if name == "finetune":
        assert action.finetune is not None  # as above
        ft = finetune_settings(config.finetune, action.finetune)
        problem = unit_schedule_problem(config.weight_pruning, ft)
        if problem:
            raise ValueError(problem)
        return config.with_section(finetune=ft)
    section = {"prune": "weight_pruning", "freeze": "freeze", "activation": "activation"}
    return config.with_section(**{section[name]: getattr(action, name)}) if name in section else config


def finetune_settings(current: FinetuneConfig, given: FinetuneConfig) -> FinetuneConfig:
    """The fine-tuning settings after a finetune action: the fields it gives change, the others stay as they are
    (as the Train page's form keeps what it does not show), so {"schedule": "agp"} keeps the setup's epochs.
    """
    return FinetuneConfig.model_validate({**current.model_dump(), **given.model_dump(include=given.model_fields_set)})


# ---- files ---------------------------------------------------------------------------------------------------------
# The one loader of lesson files (explorer/config/versioned.py): bounded read, version check, field-named problems.
LESSON_FILE: VersionedJson[Lesson] = VersionedJson("lesson", Lesson, LESSON_VERSION, LESSON_BOUNDS)


def parse_lesson(text: str | bytes, source: str = "lesson") -> Lesson:
    """Validate a lesson's JSON text. Raises ConfigError whose problems each start with `source` (the file name)."""
    return LESSON_FILE.parse(text, source)


def load_lessons(folder: Path = LESSONS_DIR) -> dict[str, Lesson]:
    """Every lesson in `folder` (*.json), keyed by its id, in file-name order; kept until a file changes. Raises
    ConfigError listing the problems of every bad file (each starting with its name), and for an id used twice.
    """
    files = sorted(Path(folder).glob("*.json"))
    # a changed file (its time or size) makes a new key: read anew
    return dict(_read_lessons(tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in files)))


@process_cache("lessons")
def _read_lessons(files: tuple[tuple[str, int, int], ...]) -> dict[str, Lesson]:
    lessons: dict[str, Lesson] = {}
    where: dict[str, str] = {}
    problems: list[str] = []
    for name, _, _ in files:
        path = Path(name)
        try:
            lesson = LESSON_FILE.read(path)  # measured before it is read: a huge file is never read into memory
        except ConfigError as e:
            problems += e.problems
            continue
        if lesson.id in lessons:
            problems.append(f"{path.name}: id: '{lesson.id}' is already the id of {where[lesson.id]}")
            continue
        lessons[lesson.id], where[lesson.id] = lesson, path.name
    if problems:
        raise ConfigError(problems)
    return lessons


# ---- checks ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckResult:
    """Whether a step's check passed, and each condition in words with its current value and whether it holds."""

    passed: bool
    lines: list[tuple[str, bool]]


def _say(value: Any, unit: str, now: bool = False) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "%":
        return f"{100 * value:.1f}%" if now else f"{100 * value:g}%"
    if unit == "points":
        return f"{value:.1f} points" if now else f"{value:g} points"
    if unit == "×":
        return f"{value:.2f}×" if now else f"{value:g}×"
    if isinstance(value, float) and unit == "":
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


_EPS = 1e-9  # 45180 / 50200 is 0.9 within rounding: "≥ 90%" holds for it


def _holds(op: str, now: Any, value: Any) -> bool:
    if isinstance(value, (bool, str)) or isinstance(now, (bool, str)):
        return (now == value) == (op == "==") and type(now) is type(value)
    return {">=": now >= value - _EPS, "<=": now <= value + _EPS, ">": now > value + _EPS, "<": now < value - _EPS,
            "==": abs(now - value) <= _EPS, "!=": abs(now - value) > _EPS}[op]


def check(step: Step, facts: dict) -> CheckResult:
    """Each condition of the step's check in plain words with its current value, e.g. ("weights pruned ≥ 90% (now
    90.0%)", True); a fact that is missing or None fails with its reason ("… (not fine-tuned yet …)").
    """
    lines = []
    for c in step.check.all:
        fact, now = FACTS[c.fact], facts.get(c.fact)
        if isinstance(c.value, bool):  # "baseline trained", or "activation threshold set: no"
            wanted = c.value if c.op == "==" else not c.value
            head = fact.label if wanted else f"{fact.label}: no"
        else:
            head = f"{fact.label} {SYMBOLS[c.op]} {_say(c.value, fact.unit)}"
        if now is None:
            lines.append((f"{head} ({fact.missing or 'not measured yet'})", False))
            continue
        ok = _holds(c.op, now, c.value)
        if isinstance(c.value, (bool, str)):  # an equality: its value says nothing more when it holds
            lines.append((head if ok else f"{head} (now {_say(now, fact.unit, now=True)})", ok))
            continue
        shown = _say(now, fact.unit, now=True)
        if not ok and shown == _say(c.value, fact.unit, now=True):  # "now 90.0%" must not read as a pass
            shown = f"{100 * now:.3f}%" if fact.unit == "%" else f"{now:.4g}"
        lines.append((f"{head} (now {shown})", ok))
    return CheckResult(all(ok for _, ok in lines), lines)


# ---- actions ---------------------------------------------------------------------------------------------------------
def perform(exp: Experiment, action: Action | dict) -> None:
    """Carry out one action on an Experiment: train_baseline, prune, finetune (changes the settings it gives, see
    `finetune_settings`, then runs), freeze, activation, snapshot or setup (adopts the config; a new setup discards
    the baseline). Raises ValueError for an action that does not fit, or a training run that diverged.
    """
    if isinstance(action, dict):
        try:
            action = Action.model_validate(action)
        except ValidationError as e:
            raise ConfigError(LESSON_FILE.problems(e)) from None
    name, value = action.name, getattr(action, action.name)
    if name in ("train_baseline", "finetune"):
        if name == "finetune":
            exp.set_finetune(finetune_settings(exp.config.finetune, value))
        result = exp.train_baseline() if name == "train_baseline" else exp.finetune()
        if result.diverged:
            raise ValueError(f"{name}: {result.message}")
    elif name == "prune":
        exp.set_pruning(value)
    elif name == "freeze":
        exp.set_frozen(list(value))
    elif name == "activation":
        exp.set_activation(value)
    elif name == "snapshot":
        exp.snapshot(value)
    else:
        exp.update(value)
