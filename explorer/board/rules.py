"""What a class board accepts from people: nicknames, challenge texts, class codes, the instructor's key, and how often
someone may try.

Names and challenge texts are plain text, shown as written: pages render them with st.text, st.dataframe or
ui.views.literal, never as Markdown or HTML. These rules only keep them short and printable (no control, format or
private-use characters: a name cannot break a layout, hide characters or reverse the text around it), so `**x**` or
`<img src=x onerror=alert(1)>` is a valid nickname that shows exactly like that.

A nickname is one participant's in its class: two names are the same when they look alike — compared by
`nickname_keys` (Unicode NFKC, case folding, accents dropped, and the look-alikes of CONFUSABLES: the Cyrillic, Greek,
Lisu and IPA letters that look like Latin ones, capital I and digit 1 like l, 0 like o, rn like m, vv like w). Names
that show nothing (only Hangul fillers, braille blanks, combining marks) are refused, a blank-looking character
anywhere too, a name holding "(you)" (the board's marker of the viewer's own entries) is refused, more than
MAX_MARKS combining marks on one letter (stacked "Zalgo" text) are refused, and the width a name takes is bounded
(NICKNAME_WIDTH columns: wide characters count 2, the few that render far wider, like U+FDFD, count what they take).
That table is what it is: small, and documented here; Unicode's full confusables list (thousands of pairs) is not
built in, so two names in, say, Armenian and Latin may still look alike.

A cell that a spreadsheet would run as a formula (=, +, -, @, a tab or a carriage return first) is written with an
apostrophe first (`spreadsheet_safe`): every table a participant or the instructor can download goes through it.

A class code is 10 characters drawn with `secrets` from 29 that are not misread for one another (no 0/O, 1/I/L, U/V):
29^10, about 2^48 codes, so a room cannot guess another class's code, and a mistyped one is refused rather than
found to be someone else's.
The instructor's key is compared in constant time (hmac.compare_digest of both keys' SHA-256, so not even its length
leaks), must have at least MIN_KEY_CHARS characters of at least MIN_KEY_DISTINCT different ones, and failed tries are
counted for the whole server in the board's database (explorer/board/store.py: Store.try_key).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import unicodedata
from collections import deque
from dataclasses import asdict, dataclass

NICKNAME_MAX = 32
CHALLENGE_TEXT_MAX = 200
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTWXYZ23456789"  # 29 symbols, none misread for another (see the module docstring)
CODE_LENGTH = 10
MIN_KEY_CHARS = 16     # the instructor key: anything shorter is refused as a key (a room could guess it)
MIN_KEY_DISTINCT = 8   # … and so is one of fewer different characters ("aaaaaaaaaaaaaaaa", "abababab…")
NICKNAME_WIDTH = 32    # columns a nickname may take (a wide character takes 2)
MAX_MARKS = 3          # combining marks on one character (accents stack; more is "Zalgo" text over other rows)
YOU = "(you)"          # what the board writes after the viewer's own entries: no nickname may hold it
# Wrong instructor keys, for the whole server (every process: counted in the board's database): KEY_FAILURES a minute,
# and each wrong key past them within KEY_MEMORY_S locks the form for twice as long as the one before, from
# KEY_LOCKOUT_S up to KEY_LOCKOUT_MAX_S. A guesser as fast as the server allows gets 13 tries in the first hour and
# about 225 a day (9 an hour), whatever the sessions: a 16-character key is out of reach.
KEY_FAILURES = 5
KEY_LOCKOUT_S = 30.0
KEY_LOCKOUT_MAX_S = 900.0
KEY_MEMORY_S = 3600.0
# How a challenge may rank: {name: (column of the board's table, label, higher is better)}.
RANKINGS = {"weight_sparsity": ("weight_sparsity", "weight sparsity", True),
            "activation_sparsity": ("activation_sparsity", "activation sparsity", True),
            "accuracy": ("accuracy", "test accuracy", True),
            "macs": ("macs", "fewest multiply-adds per example", False),
            "bytes": ("bytes", "smallest stored model", False)}


def plain_text(text: object, limit: int, what: str) -> str:
    """`text` as stored: NFC-normalised, runs of white space (line breaks included) as one space, trimmed. Raises
    ValueError naming `what` when it has a character that is not printable or more than `limit` characters."""
    s = " ".join(unicodedata.normalize("NFC", str(text)).split())
    bad = next((c for c in s if not c.isprintable()), None)  # Cc, Cf (zero-width, bidi overrides), Co, Cs, Cn, Z*
    if bad is not None:
        raise ValueError(f"{what}: the character U+{ord(bad):04X} is not allowed (printable characters only)")
    if len(s) > limit:
        raise ValueError(f"{what}: at most {limit} characters (this one has {len(s)})")
    return s


# Characters that show as blank space but are letters or marks (so isprintable() lets them through).
BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
# Characters that render far wider than one column (East Asian wide ones are counted 2 by their Unicode property).
EXTRA_WIDE = {"\ufdfd": 8, "\ufdfa": 8, "\ufdfb": 5, "\u2e3b": 3, "\u2e3a": 2, "\ua9c5": 2, "\u0bf5": 2,
              "\u0bf8": 2, "\u0bfa": 2, "\u102a": 2}
# Letters of other scripts that look like Latin ones, by case (upper case first: Cyrillic К looks like K, but its
# lower case к does not look like k), and Latin look-alikes of one another. Applied after NFKC, before case folding.
CONFUSABLES = str.maketrans(
    "АВЕКМНОРСТХУЅІЈԚԜҮӀ"   # Cyrillic capitals
    "аеорсухѕіјԁһԛԝүӏѡ"    # Cyrillic small letters
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"        # Greek capitals
    "αικνορυχϲϳ"            # Greek small letters
    "ꓮꓐꓚꓓꓰꓝꓖꓧꓲꓙꓗꓡꓟꓠꓳꓑꓣꓢꓔꓴꓦꓪꓫꓬꓜ"   # Lisu (Fraser) letters, all shaped like Latin capitals
    "ıɑɡǀ|01",              # dotless i, IPA alpha and script g, the dental click and the bar; digits 0 and 1
    "ABEKMHOPCTXYSIJQWYl"
    "aeopcyxsijdhqwylw"
    "ABEZHIKMNOPTYX"
    "aikvopuxcj"
    "ABCDEFGHIJKLMNOPRSTUVWXYZ"
    "iagllol")
PAIRS = (("rn", "m"), ("vv", "w"))  # two letters that, small, read as one


def _marks(c: str) -> bool:
    return unicodedata.category(c) in ("Mn", "Me")


def display_width(text: str) -> int:
    """Columns `text` takes on screen, about: a combining mark 0, an East Asian wide or full-width character 2, the
    few characters of EXTRA_WIDE what they take, any other 1."""
    return sum(0 if _marks(c) else EXTRA_WIDE.get(c, 2 if unicodedata.east_asian_width(c) in "WF" else 1)
               for c in text)


def nickname(text: object) -> str:
    """A valid nickname (plain_text, 1 to NICKNAME_MAX characters, at most NICKNAME_WIDTH columns, something visible,
    no blank-looking character, no "(you)") or ValueError saying why not."""
    s = plain_text(text, NICKNAME_MAX, "nickname")
    if not s:
        raise ValueError("nickname: choose one (1 to 32 characters) so the class can find your points")
    blank = next((c for c in s if c in BLANKS), None)
    if blank is not None:
        raise ValueError(f"nickname: the character U+{ord(blank):04X} ({unicodedata.name(blank, 'unnamed')}) shows as "
                         "blank space and is not allowed")
    if not any(not c.isspace() and not _marks(c) for c in s):
        raise ValueError("nickname: it shows nothing; use at least one letter, digit or symbol")
    run = 0
    for c in unicodedata.normalize("NFD", s):  # decomposed: a precomposed letter's accent counts as one
        run = run + 1 if _marks(c) else 0
        if run > MAX_MARKS:
            raise ValueError(f"nickname: at most {MAX_MARKS} accents or marks on one character")
    if (width := display_width(s)) > NICKNAME_WIDTH:
        raise ValueError(f"nickname: at most {NICKNAME_WIDTH} columns wide (this one takes {width}: wide characters "
                         "count 2, a few very wide ones more)")
    if any(YOU in "".join(k.split()) for k in nickname_keys(s)):
        raise ValueError(f"nickname: it may not hold “{YOU}”: the board writes that after each viewer's own entries")
    return s


@functools.lru_cache(maxsize=4096)  # a submission compares its name with the class's (at most 1000, mostly the same)
def nickname_keys(name: str) -> frozenset[str]:
    """What a nickname is compared by: two names are the same when they share a key (module docstring). Two keys,
    because capital I looks like l but small i does not: "Ian" matches both "ian" and "lan", which do not match."""
    def fold(s: str) -> str:
        s = unicodedata.normalize("NFKD", s.casefold())
        s = "".join(c for c in s if not _marks(c) and unicodedata.category(c) != "Cf")
        s = unicodedata.normalize("NFKC", s)
        for a, b in PAIRS:
            s = s.replace(a, b)
        return " ".join(s.split())

    s = unicodedata.normalize("NFKC", name).translate(CONFUSABLES)
    return frozenset({fold(s), fold(s.replace("I", "l"))})


def spreadsheet_safe(value: object) -> object:
    """`value` as a cell a spreadsheet shows and never runs: a text starting with =, +, -, @, a tab or a carriage
    return gets an apostrophe first (every table anyone can download goes through this one rule)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def new_class_code() -> str:
    """An unguessable class code (see the module docstring), as stored: 10 characters, no separator."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """The code as people read it: ABCDE-FGHJK."""
    return f"{code[:5]}-{code[5:]}"


def parse_code(text: object) -> str | None:
    """The stored form of a typed class code (case, spaces and dashes do not matter), or None when it cannot be one."""
    s = "".join(str(text)[:64].split()).replace("-", "").upper()
    return s if len(s) == CODE_LENGTH and all(c in CODE_ALPHABET for c in s) else None


def owner_hash(token: str) -> str:
    """What the board stores of a session's secret token: its SHA-256 (the token itself never leaves the session)."""
    return hashlib.sha256(token.encode()).hexdigest()


def key_matches(given: str, expected: str) -> bool:
    """Whether `given` is the instructor's key, in constant time (neither content nor length leaks)."""
    a, b = (hashlib.sha256(str(k).encode("utf-8", "surrogatepass")).digest() for k in (given, expected))
    return hmac.compare_digest(a, b) and bool(expected)


def key_problem(expected: str | None) -> str | None:
    """Why the server's configured instructor key cannot open the Instructor page (unset, too short, too few different
    characters), or None."""
    if not expected:
        return "no instructor key is set on this server"
    if len(expected) < MIN_KEY_CHARS:
        return (f"the instructor key set on this server has {len(expected)} characters; at least {MIN_KEY_CHARS} "
                "are needed, or a room could guess it")
    if len(set(expected)) < MIN_KEY_DISTINCT:
        return (f"the instructor key set on this server has only {len(set(expected))} different characters; at least "
                f"{MIN_KEY_DISTINCT} are needed, or a room could guess it")
    return None


def key_wait_s(failures: list[float], now: float) -> float:
    """Seconds until the server takes another instructor key (0: now), given the times of its wrong keys (the
    constants above: KEY_FAILURES a minute, then a doubling lock-out after each further one)."""
    recent = sorted(t for t in failures if now - KEY_MEMORY_S < t <= now)
    wait = 0.0
    last_minute = [t for t in recent if t > now - 60.0]
    if len(last_minute) >= KEY_FAILURES:
        wait = last_minute[-KEY_FAILURES] + 60.0 - now
    if len(recent) > KEY_FAILURES:
        lockout = min(KEY_LOCKOUT_S * 2.0 ** (len(recent) - KEY_FAILURES - 1), KEY_LOCKOUT_MAX_S)
        wait = max(wait, recent[-1] + lockout - now)
    return max(0.0, wait)


@dataclass(frozen=True)
class KeyTry:
    """One try of the instructor key (explorer.board.store.Store.try_key): whether it was compared at all (not during a
    lock-out), whether it was the key, and the seconds until the server takes the next try (0.0: now)."""
    compared: bool
    right: bool
    wait_s: float


class Attempts:
    """At most `limit` events per `window_s` seconds (a sliding window): unknown class codes typed in one session, so
    nobody tries codes by the thousand (wrong instructor keys are counted for the whole server: key_wait_s)."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._times: deque[float] = deque()

    def wait_s(self, now: float) -> float:
        """0 when another attempt is allowed now, else the seconds until one is."""
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        return 0.0 if len(self._times) < self.limit else self._times[0] + self.window_s - now

    def record(self, now: float) -> None:
        """Count one (failed) attempt at `now`."""
        self._times.append(now)


# The data sets a config generates (explorer.engine.data): their size and noise are part of the data, so a challenge on
# them fixes both; digits and MNIST are files whose size no config changes.
GENERATED = ("moons", "circles", "spirals")


@dataclass(frozen=True)
class Split:
    """What decides which examples a setup is tested on: the seed (it draws the split), the data's size and noise
    (generated sets only), the test share and the validation share. Two setups on different splits are tested on
    different examples: an 11-image test split scores 100 % by luck (issue 29), so a challenge ranks one split."""
    seed: int | None
    n_samples: int | None
    noise: float | None
    test_fraction: float | None
    val_fraction: float | None


SPLIT_LABELS = {"seed": "seed", "n_samples": "data size", "noise": "noise", "test_fraction": "test share",
                "val_fraction": "validation share"}
SPLIT_FIELDS = tuple(SPLIT_LABELS)


def _split_value(name: str, value: object) -> str:
    return f"{value:,}" if name == "n_samples" else f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Challenge:
    """What a class competes on: the best `rank_by` among verified setups on `data` / `arch` (None: any) whose test
    accuracy (fine-tuned when the setup was fine-tuned, else right after pruning) is at least `min_accuracy`, on the
    challenge's split: `seed`, `test_fraction` and `val_fraction`, and for a generated data set (GENERATED) its
    `n_samples` and `noise` (each None: any). A verified setup on another split is shown, not ranked (`unranked`)."""
    text: str = "Highest weight sparsity with test accuracy ≥ 96 % on digits / LeNet-300-100"
    data: str | None = "digits"
    arch: str | None = "lenet300100"
    min_accuracy: float = 0.96
    rank_by: str = "weight_sparsity"
    # The default setup's split (explorer.config.sections.DataConfig and ExperimentConfig.seed, which
    # tests/test_verifier_fair.py holds equal; not imported: this module reads no config): what a challenge fixes
    # unless the instructor says otherwise.
    seed: int | None = 0
    n_samples: int | None = 800
    noise: float | None = 0.15
    test_fraction: float | None = 0.2
    val_fraction: float | None = 0.15

    def __post_init__(self):
        object.__setattr__(self, "text", plain_text(self.text, CHALLENGE_TEXT_MAX, "challenge"))
        for field in ("data", "arch"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value.isidentifier() or len(value) > 40):
                raise ValueError(f"challenge {field}: {str(value)[:40]!r} is not a {field} name")
        if isinstance(self.min_accuracy, bool) or not isinstance(self.min_accuracy, (int, float)) \
                or not 0.0 <= self.min_accuracy <= 1.0:
            raise ValueError("challenge accuracy floor: a share between 0 and 1")
        object.__setattr__(self, "min_accuracy", float(self.min_accuracy))
        if self.rank_by not in RANKINGS:
            raise ValueError(f"challenge ranking: one of {', '.join(RANKINGS)}")
        # The bounds of explorer.config.sections (a value no config can have would rank nothing).
        for field, low, high, whole in (("seed", 0, 2**32 - 1, True), ("n_samples", 40, 20000, True),
                                        ("noise", 0.0, 1.0, False), ("test_fraction", 0.0, 1.0, False),
                                        ("val_fraction", 0.0, 1.0, False)):
            value = getattr(self, field)
            if value is None:
                continue
            kinds = (int,) if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high \
                    or (field.endswith("fraction") and value in (0, 1)):
                raise ValueError(f"challenge {SPLIT_LABELS[field]}: "
                                 + (f"a whole number from {low} to {high}" if whole else f"a number from {low:g} to "
                                    f"{high:g}" + (" (both excluded)" if field.endswith("fraction") else "")))
            object.__setattr__(self, field, int(value) if whole else float(value))

    def to_json(self) -> str:
        """As stored with the class."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Challenge:
        """Back from storage; a stored challenge that no longer validates (edited by hand) is the default one. One
        stored before the split was part of it (board schema 3) gets the default split: the issue it fixes."""
        try:
            raw = json.loads(text)
            return cls(**{k: raw[k] for k in ("text", "data", "arch", "min_accuracy", "rank_by", *SPLIT_FIELDS)
                          if k in raw})
        except (ValueError, TypeError):
            return cls()

    @property
    def ranking(self) -> tuple[str, str, bool]:
        """(column, label, higher is better) of `rank_by`."""
        return RANKINGS[self.rank_by]

    def split_fields(self, data: str | None) -> tuple[str, ...]:
        """The split's fields this challenge fixes for a setup on `data` (size and noise only for a generated set)."""
        fields = [f for f in SPLIT_FIELDS if getattr(self, f) is not None]
        return tuple(f for f in fields if f not in ("n_samples", "noise") or data in GENERATED)

    def unranked(self, data: str, arch: str, split: Split | None, accuracy: float) -> str | None:
        """Why a verified setup on `data` / `arch` with this split and final test accuracy is not on the leaderboard
        (explorer.board.store.Store.board asks the same in SQL), or None when it competes."""
        if self.data is not None and data != self.data:
            return f"another data set ({data}; the challenge's: {self.data})"
        if self.arch is not None and arch != self.arch:
            return f"another model ({arch}; the challenge's: {self.arch})"
        differ = []
        for f in self.split_fields(data):
            theirs, ours = (None if split is None else getattr(split, f)), getattr(self, f)
            if theirs != ours:
                differ.append(f"{SPLIT_LABELS[f]} {'unknown' if theirs is None else _split_value(f, theirs)} "
                              f"(the challenge's: {_split_value(f, ours)})")
        if differ:
            return "another split than the challenge's: " + ", ".join(differ)
        if accuracy < self.min_accuracy:
            return f"test accuracy {accuracy:.1%} is below the challenge's {self.min_accuracy:.1%}"
        return None

    def split_rule(self) -> str:
        """The split the challenge fixes, in words ("seed 0, test share 0.2, validation share 0.15"), or ""."""
        fixed = [f for f in SPLIT_FIELDS if getattr(self, f) is not None
                 and (f not in ("n_samples", "noise") or self.data is None or self.data in GENERATED)]
        return ", ".join(f"{SPLIT_LABELS[f]} {_split_value(f, getattr(self, f))}" for f in fixed)

    def rule(self) -> str:
        """The rule in one line: "verified setups on digits · lenet300100 with test accuracy ≥ 96.0 %, ranked by …"."""
        where = " · ".join(v for v in (self.data, self.arch) if v) or "any data and model"
        _, label, higher = self.ranking
        order = "highest first" if higher else "lowest first"
        split = self.split_rule()
        return (f"verified setups on {where}{f' ({split})' if split else ''} with test accuracy ≥ "
                f"{self.min_accuracy:.1%} (after fine-tuning, when fine-tuned), ranked by {label} ({order})")
