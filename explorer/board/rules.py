"""What a class board accepts from people: nicknames, challenge texts, class codes, the instructor's key, and how often
someone may try.

Names and challenge texts are plain text, shown as written: pages render them with st.text, st.dataframe or
ui.views.literal, never as Markdown or HTML. These rules only keep them short and printable (no control, format or
private-use characters: a name cannot break a layout, hide characters or reverse the text around it), so `**x**` or
`<img src=x onerror=alert(1)>` is a valid nickname that shows exactly like that.

A class code is 10 characters drawn with `secrets` from 29 that are not misread for one another (no 0/O, 1/I/L, U/V):
29^10, about 2^48 codes, so a room cannot guess another class's code, and a mistyped one is refused rather than
found to be someone else's.
The instructor's key is compared in constant time (hmac.compare_digest of both keys' SHA-256, so not even its length
leaks).
"""
from __future__ import annotations

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
MIN_KEY_CHARS = 12   # the instructor key: anything shorter is refused as a key (a room could guess it)
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


def nickname(text: object) -> str:
    """A valid nickname (plain_text, 1 to NICKNAME_MAX characters) or ValueError saying why not."""
    s = plain_text(text, NICKNAME_MAX, "nickname")
    if not s:
        raise ValueError("nickname: choose one (1 to 32 characters) so the class can find your points")
    return s


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
    """Why the server's configured instructor key cannot open the Instructor page (unset, too short), or None."""
    if not expected:
        return "no instructor key is set on this server"
    if len(expected) < MIN_KEY_CHARS:
        return (f"the instructor key set on this server has {len(expected)} characters; at least {MIN_KEY_CHARS} "
                "are needed, or a room could guess it")
    return None


class Attempts:
    """At most `limit` events per `window_s` seconds (a sliding window): wrong keys or unknown class codes typed in one
    session, so nobody tries codes or keys by the thousand."""

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


@dataclass(frozen=True)
class Challenge:
    """What a class competes on: the best `rank_by` among verified setups on `data` / `arch` (None: any) whose test
    accuracy (fine-tuned when the setup was fine-tuned, else right after pruning) is at least `min_accuracy`."""
    text: str = "Highest weight sparsity with test accuracy ≥ 96 % on digits / LeNet-300-100"
    data: str | None = "digits"
    arch: str | None = "lenet300100"
    min_accuracy: float = 0.96
    rank_by: str = "weight_sparsity"

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

    def to_json(self) -> str:
        """As stored with the class."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Challenge:
        """Back from storage; a stored challenge that no longer validates (edited by hand) is the default one."""
        try:
            raw = json.loads(text)
            return cls(**{k: raw[k] for k in ("text", "data", "arch", "min_accuracy", "rank_by") if k in raw})
        except (ValueError, TypeError):
            return cls()

    @property
    def ranking(self) -> tuple[str, str, bool]:
        """(column, label, higher is better) of `rank_by`."""
        return RANKINGS[self.rank_by]

    def rule(self) -> str:
        """The rule in one line: "verified setups on digits · lenet300100 with test accuracy ≥ 96.0 %, ranked by …"."""
        where = " · ".join(v for v in (self.data, self.arch) if v) or "any data and model"
        _, label, higher = self.ranking
        order = "highest first" if higher else "lowest first"
        return (f"verified setups on {where} with test accuracy ≥ {self.min_accuracy:.1%} (after fine-tuning, when "
                f"fine-tuned), ranked by {label} ({order})")
