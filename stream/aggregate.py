"""Mergeable window state: confusion counts and a score histogram, as plain integer counters.

A window's state is a bag of named counters, so it can live in a Python Counter
(replay, tests) or a Redis hash updated with HINCRBY (the worker), and two
partial states merge by adding counters. Its size is bounded by the number of
classes squared plus the number of score bins, whatever the number of events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from stream.records import POSITIVE, Joined

SEP = "\x1f"  # cannot occur in class labels that came from JSON text in practice, and keeps fields short
CELL = "c"
SCORE = "s"
REGRESSION_FIELDS = ("n", "ae", "se", "y", "yy")  # count, sums of |error|, error², y and y²
REG = "g"


class WindowAggregate:
    """Counters for one window: confusion cells and, for binary models, a binned score histogram."""

    __slots__ = ("counts", "resolution")

    def __init__(self, resolution: float, counts: Mapping[str, float] | None = None) -> None:
        self.resolution = resolution
        self.counts: Counter[str] = Counter(counts or {})  # ints, except the regression sums

    def add(self, sample: Joined, regression: bool = False) -> None:
        """Count one joined sample (a regression sample adds to error sums instead of cells)."""
        if regression:
            y, pred = float(sample.y_true), float(sample.y_pred)
            err = pred - y
            for name, value in zip(REGRESSION_FIELDS, (1, abs(err), err * err, y, y * y)):
                self.counts[f"{REG}{SEP}{name}"] += value
            return
        self.counts[f"{CELL}{SEP}{sample.y_true}{SEP}{sample.y_pred}"] += 1
        if sample.score is not None:
            positive = 1 if sample.y_true == POSITIVE else 0
            self.counts[f"{SCORE}{SEP}{self.bin_of(sample.score)}{SEP}{positive}"] += 1

    def bin_of(self, score: float) -> int:
        """The histogram bin holding `score` (scores are rounded to the resolution)."""
        return int(round(score / self.resolution))

    def merge(self, other: "WindowAggregate") -> None:
        """Add another partial state of the same window into this one."""
        self.counts.update(other.counts)

    @property
    def sample_count(self) -> int:
        """Number of joined samples counted."""
        return int(self.counts.get(f"{REG}{SEP}n", 0)) + sum(
            n for field, n in self.counts.items() if field.startswith(CELL)
        )

    def regression_sums(self) -> dict[str, float]:
        """`n`, `ae`, `se`, `y`, `yy`: the sufficient statistics of the regression metrics."""
        return {name: float(self.counts.get(f"{REG}{SEP}{name}", 0.0)) for name in REGRESSION_FIELDS}

    def confusion(self) -> dict[str, dict[str, int]]:
        """Nested `{actual: {predicted: count}}`, SageMaker's confusion-matrix shape."""
        matrix: dict[str, dict[str, int]] = {}
        for field, n in self.counts.items():
            if not field.startswith(CELL):
                continue
            kind, first, second = field.split(SEP)
            if n:
                matrix.setdefault(first, {})[second] = n
        return matrix

    def score_histogram(self) -> list[tuple[float, int, int]]:
        """`(score, negatives, positives)` per occupied bin, highest score first."""
        bins: dict[int, list[int]] = {}
        for field, n in self.counts.items():
            if not field.startswith(SCORE):
                continue
            kind, first, second = field.split(SEP)
            if n:
                bins.setdefault(int(first), [0, 0])[int(second)] += n
        return [(b * self.resolution, neg, pos) for b, (neg, pos) in sorted(bins.items(), reverse=True)]

    def add_columns(
        self, y_true: Sequence[str], y_pred: Sequence[str], scores: Sequence[float] | None, regression: bool = False
    ) -> None:
        """Count many samples at once (canonical values, as `add` takes them); the same counters as
        calling `add` per sample, with the counting done by numpy."""
        if regression:
            y, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
            err = pred - y
            for name, value in zip(
                REGRESSION_FIELDS,
                (len(y), float(np.abs(err).sum()), float((err * err).sum()), float(y.sum()), float((y * y).sum())),
            ):
                self.counts[f"{REG}{SEP}{name}"] += value
            return
        cells, counts = np.unique(
            np.char.add(np.char.add(np.asarray(y_true, dtype=str), SEP), np.asarray(y_pred, dtype=str)),
            return_counts=True,
        )
        for cell, n in zip(cells.tolist(), counts.tolist()):
            self.counts[f"{CELL}{SEP}{cell}"] += n
        if scores is not None:
            bins = np.rint(np.asarray(scores, dtype=float) / self.resolution).astype(np.int64)
            positive = (np.asarray(y_true, dtype=str) == POSITIVE).astype(np.int64)
            keys, counts = np.unique(np.stack([bins, positive]), axis=1, return_counts=True)
            for (b, pos), n in zip(keys.T.tolist(), counts.tolist()):
                self.counts[f"{SCORE}{SEP}{b}{SEP}{pos}"] += n

    @classmethod
    def of(cls, samples: Iterable[Joined], resolution: float, regression: bool = False) -> "WindowAggregate":
        """Build the state of a window from its samples."""
        agg = cls(resolution)
        for sample in samples:
            agg.add(sample, regression)
        return agg
