"""The quantile sketch SageMaker's statistics carry (`kll.sketch`): Deequ's QuantileNonSample, a
KLL-style stack of compactors that is deterministic (the compaction offset alternates instead of
being drawn), so the same values in the same order give the same sketch, item for item.

Level h holds items of weight 2^h and has room for 2*(ceil(k*c^h/2)+1) of them (2050, 1314, 842,
... for k=2048, c=0.64). Level 0 keeps the order values came in, so up to 2,050 values the sketch
is the data itself; when the sketch holds more than its levels' room, the lowest full level is
sorted and every other item (from the alternating offset) moves up a level. The weight is kept
exactly. Merging concatenates the levels and condenses, as Deequ does.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

K = 2048
C = 0.64
BUCKETS = 10  # SageMaker draws 10 equal-width buckets; not configurable there either


def capacity(height: int, k: int = K, c: float = C) -> int:
    """How many items level `height` holds before it is compacted."""
    return 2 * (math.ceil(k * math.pow(c, height) / 2) + 1)


@dataclass
class QuantileSketch:
    """Deequ's QuantileNonSample over floats; `levels[h]` are the items of weight 2^h."""

    k: int = K
    c: float = C
    levels: list[list[float]] = field(default_factory=lambda: [[]])
    compactions: list[int] = field(default_factory=lambda: [0])  # per level, for the alternating offset
    offsets: list[int] = field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        self._room = sum(capacity(h, self.k, self.c) for h in range(len(self.levels)))
        self._size = sum(len(level) for level in self.levels)

    def add(self, x: float) -> None:
        """One value."""
        self.levels[0].append(x)
        self._size += 1
        if self._size > self._room:
            self._condense()

    def extend(self, values: list[float]) -> None:
        """Values in order (the same as adding them one by one)."""
        for x in values:
            self.add(x)

    def merge(self, other: QuantileSketch) -> None:
        """Fold another sketch in: its levels after ours, then condense while over the room."""
        while len(self.levels) < len(other.levels):
            self._expand()
        for mine, theirs in zip(self.levels, other.levels):
            mine.extend(theirs)
        self._size = sum(len(level) for level in self.levels)
        while self._size >= self._room:
            self._condense()

    def _expand(self) -> None:
        self.levels.append([])
        self.compactions.append(0)
        self.offsets.append(0)
        self._room += capacity(len(self.levels) - 1, self.k, self.c)

    def _condense(self) -> None:
        for height, level in enumerate(self.levels):
            if len(level) >= capacity(height, self.k, self.c):
                if height + 1 >= len(self.levels):
                    self._expand()
                self.levels[height + 1].extend(self._compact(height))
                self._size = sum(len(items) for items in self.levels)
                return

    def _compact(self, height: int) -> list[float]:
        items = self.levels[height]
        even = len(items) - len(items) % 2
        if self.compactions[height] % 2 == 1:
            self.offsets[height] = 1 - self.offsets[height]
        out = sorted(items[:even])[self.offsets[height] : even : 2]
        self.levels[height] = [items[-1]] if len(items) % 2 else []
        self.compactions[height] += 1
        return out

    @property
    def weight(self) -> int:
        """The number of values the sketch stands for."""
        return sum(len(level) << h for h, level in enumerate(self.levels))

    def weighted(self) -> tuple[list[float], list[int]]:
        """The items sorted, and the cumulative weight up to and including each."""
        pairs = sorted(itertools.chain.from_iterable(((x, 1 << h) for x in lv) for h, lv in enumerate(self.levels)))
        return [x for x, _ in pairs], list(itertools.accumulate(w for _, w in pairs))

    def buckets(self, low: float, high: float) -> list[dict[str, float]]:
        """SageMaker's 10 equal-width buckets between the data's min and max, with the weight in
        each: [lower, upper) but the last one closed."""
        items, cumulative = self.weighted()
        out = []
        for i in range(BUCKETS):
            # Deequ's expression order, which decides the last digits (60.37999999999999).
            lower = low + (high - low) * i / float(BUCKETS)
            upper = low + (high - low) * (i + 1) / float(BUCKETS)
            last = i == BUCKETS - 1
            count = weight_below(items, cumulative, upper, inclusive=last) - weight_below(items, cumulative, lower)
            out.append({"lower_bound": lower, "upper_bound": upper, "count": float(count)})
        return out

    def doc(self) -> dict[str, Any]:
        """The `sketch` object of statistics.json."""
        return {"parameters": {"c": self.c, "k": float(self.k)}, "data": [list(level) for level in self.levels]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> QuantileSketch:
        """A sketch read back from statistics.json (a baseline's): its items and parameters; the
        compaction offsets, which statistics.json does not keep, start afresh."""
        levels = [[float(x) for x in level] for level in doc.get("data") or [[]]] or [[]]
        params = doc.get("parameters") or {}
        return cls(
            k=int(params.get("k", K)),
            c=float(params.get("c", C)),
            levels=levels,
            compactions=[0] * len(levels),
            offsets=[0] * len(levels),
        )


def weight_below(items: list[float], cumulative: list[int], x: float, inclusive: bool = False) -> int:
    """The weight of the sorted `items` below x (up to and including x when `inclusive`), given
    their cumulative weights (`QuantileSketch.weighted`)."""
    i = (bisect.bisect_right if inclusive else bisect.bisect_left)(items, x)
    return cumulative[i - 1] if i else 0


def linf_distance(a: QuantileSketch, b: QuantileSketch) -> float:
    """The largest gap between the two sketches' CDFs over every item of either (Deequ's
    `linf_simple`: the two-sample Kolmogorov-Smirnov statistic, on sketches)."""
    items_a, cum_a = a.weighted()
    items_b, cum_b = b.weighted()
    n, m = cum_a[-1] if cum_a else 0, cum_b[-1] if cum_b else 0
    if not n or not m:
        return math.nan
    gap = 0.0
    for key in sorted(set(items_a) | set(items_b)):
        rank_a = weight_below(items_a, cum_a, key, inclusive=True)
        rank_b = weight_below(items_b, cum_b, key, inclusive=True)
        gap = max(gap, abs(rank_a / n - rank_b / m))
    return gap


def robust(distance: float, n: float, m: float) -> float:
    """Deequ's `linf_robust`: the distance less what samples of n and m values show by chance
    (1.8 * sqrt((n+m)/(n*m)), about the 0.003 level of the KS test), never below 0."""
    return max(0.0, distance - 1.8 * math.sqrt((n + m) / (n * m)))
