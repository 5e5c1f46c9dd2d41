"""How much of an accuracy gap is noise: a test split of n images measures an accuracy p with a binomial standard error
sqrt(p(1-p)/n) — how far the figure would move on another draw of n images — and one image moves it by 1/n. Two
accuracies measured on the same n images are called "within noise" when their gap is under two such standard errors
(p̄ their mean): the half-width of the usual 95 % interval of one accuracy. An exact paired test (McNemar's) would need
which images each model got wrong, which a snapshot or a board entry does not keep; this rule is the one a student can
check by hand. What the app says is the count of images the gap amounts to, beside the band."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Gap:
    """The gap between two accuracies (a − b, in [−1, 1]) on a test split of `n` images."""
    a: float
    b: float
    n: int

    @property
    def points(self) -> float:
        """The gap a − b in percentage points."""
        return 100 * (self.a - self.b)

    @property
    def images(self) -> float:
        """How many test images the gap amounts to (|a − b| · n)."""
        return abs(self.a - self.b) * self.n

    @property
    def band(self) -> float:
        """Two binomial standard errors at the mean accuracy, in percentage points (at least one image's worth: a gap
        of one image is never a result, even at 0 % or 100 % accuracy where the binomial error vanishes)."""
        mean = (self.a + self.b) / 2
        return 100 * max(2 * math.sqrt(mean * (1 - mean) / self.n), 1 / self.n) if self.n else math.inf

    @property
    def within_noise(self) -> bool:
        """Whether the gap is inside the band: not a result on this test split."""
        return abs(self.points) <= self.band

    def words(self) -> str:
        """The gap in words a student reads: "2.2 points (8 of 360 test images): more than noise (±1.5 points)"."""
        images = round(self.images)
        share = f"{abs(self.points):.1f} points ({images} of {self.n:,} test image{'s' if self.n != 1 else ''})"
        if self.within_noise:
            return f"{share}: within noise — a gap under ±{self.band:.1f} points can come from which images the " \
                   "test split happened to hold"
        return f"{share}: more than noise (±{self.band:.1f} points on this test split)"


def gap(a: float, b: float, n: int) -> Gap:
    """The Gap between accuracies `a` and `b`, both measured on the same `n` test images."""
    if n < 0:
        raise ValueError(f"a test split has a positive number of images, not {n}")
    return Gap(a, b, n)
