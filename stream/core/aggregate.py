"""Mergeable window state: confusion counts, a score histogram and regression error sums.

A window's state is a bag of counters, so two partial states merge by adding
them and its size is bounded by the number of classes squared plus the number
of score bins, whatever the number of events. In memory the counters are keyed
by tuples; `fields()` / `WindowAggregate(resolution, fields)` convert them to and
from flat string fields, the form a Redis hash updated with HINCRBY holds.

Beside the whole window's counters, a window keeps what SageMaker's 5 subsamples of about
80 % need for the metrics' standard deviations. Whether a sample is in subsample k is
decided by a hash of its event id and k (`subsample_mask`), so the worker, replay and the
baseline put every sample in the same subsamples, whatever the order. A sample's confusion
cell is counted under its mask (which subsamples hold it) together with its score binned at
SUBSAMPLE_RESOLUTION: the window's cells are the sum over masks and bins, subsample k the
sum over the masks with bit k. So a sample writes as many counters as without subsamples
(its masked cell and its score bin), and a window holds at most 31 x cells x 102 of them.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from stream.core.records import POSITIVE, SEP, Joined

CELL = "c"
MASKED_CELL = "m"
SCORE = "s"
REGRESSION_FIELDS = ("n", "ae", "se", "y", "yy")  # count, sums of |error|, error², y and y²
REG = "g"
LABELS = "l"  # label coverage: l|i inferences of the window, l|d|<bin> label delays
ESTIMATE = "e"  # label-free estimate sums: e|<name> (see `estimates`)
SEGMENT = "k"  # a segment's own counters: k|<key>|<value>|<field> (see `segments`)
SCORE_BINS = 100  # inference scores are binned at 1 / SCORE_BINS for the label-free change detector
DELAYS_PER_DECADE = 10  # delay histogram bins per factor of 10 (a bin spans 26 %)
MIN_DELAY_BIN = -30  # 1 ms: shorter delays (and labels stamped before their inference) count here


SUBSAMPLES = 5
SUBSAMPLE_SHARE = 0.8
SUBSAMPLE_RESOLUTION = 0.01  # score bins of the subsamples (their AUC feeds a deviation only)
_IN_SUBSAMPLE = int(SUBSAMPLE_SHARE * 65536)  # a 16-bit hash slice below this: the sample is in


def subsample_mask(event_id: str) -> int:
    """Which subsamples a sample is in (bit k: subsample k): each with probability 0.8,
    independently, decided by a hash of its event id (the same in every process and run)."""
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=2 * SUBSAMPLES).digest()
    mask = 0
    for k in range(SUBSAMPLES):
        if (digest[2 * k] << 8 | digest[2 * k + 1]) < _IN_SUBSAMPLE:
            mask |= 1 << k
    return mask


def _add(counts: dict[Any, Any], key: object, n: float) -> None:
    counts[key] = counts.get(key, 0) + n


class WindowAggregate:
    """Counters for one window: confusion cells and, for binary models, a binned score histogram
    (or, for regression models, error sums). Parts of a window kept apart (one per input
    partition) merge into the counters of the whole:

    >>> left, right = WindowAggregate(1e-4), WindowAggregate(1e-4)
    >>> left.add_columns(["1", "0"], ["1", "1"], [0.9, 0.6], False)
    >>> right.add_columns(["1"], ["0"], [0.2], False)
    >>> left.merge(right)
    >>> left.sample_count, sorted(left.confusion()["1"].items())
    (3, [('0', 1), ('1', 1)])
    """

    __slots__ = ("arrivals", "cells", "estimates", "mcells", "msums", "resolution", "scores", "segments", "sums")

    def __init__(self, resolution: float, fields: Mapping[str, float] | None = None) -> None:
        self.resolution = resolution
        # Plain dicts: a window's state is created per batch and model, and Counter() costs more.
        self.cells: dict[tuple[str, str], int] = {}  # (actual, predicted) -> count, samples of no subsample
        self.scores: dict[int, int] = {}  # score bin * 2 + (1 if actual is positive) -> count, every sample
        self.sums: dict[str, float] = {}  # regression sums by REGRESSION_FIELDS name, samples of no subsample
        self.mcells: dict[tuple[int, str, str, int], int] = {}  # (mask, actual, predicted, coarse bin or -1)
        self.msums: dict[tuple[int, str], float] = {}  # (mask, regression sum name)
        self.arrivals: dict[str, int] = {}  # "i": inferences, "h<bin>": their scores, "d<bin>": label delays
        self.estimates: dict[str, float] = {}  # sums over the window's inferences (see `estimates`)
        self.segments: dict[tuple[str, str], WindowAggregate] = {}  # (key, value) -> its own counters
        for field, n in (fields or {}).items():
            self._load(field, n)

    def _load(self, field: str, n: float) -> None:
        kind, first, *rest = field.split(SEP)
        if kind == CELL:
            _add(self.cells, (first, rest[0]), int(n))
        elif kind == SCORE:
            _add(self.scores, int(first) * 2 + int(rest[0]), int(n))
        elif kind == REG:
            _add(self.sums, first, n)
        elif kind == LABELS:
            _add(self.arrivals, first + "".join(rest), int(n))
        elif kind == ESTIMATE:
            _add(self.estimates, SEP.join([first, *rest]), n)
        elif kind == SEGMENT:
            self.segment(first, rest[0])._load(SEP.join(rest[1:]), n)  # noqa: SLF001 - its own class
        elif kind.isdigit() and first == MASKED_CELL:
            _add(self.mcells, (int(kind), rest[0], rest[1], int(rest[2])), int(n))
        elif kind.isdigit() and first == REG:
            _add(self.msums, (int(kind), rest[0]), n)

    @property
    def coarse(self) -> float:
        """The score resolution of the subsamples."""
        return max(self.resolution, SUBSAMPLE_RESOLUTION)

    @property
    def parts(self) -> list[WindowAggregate] | None:
        """The counters of the 5 subsamples (scores binned at SUBSAMPLE_RESOLUTION), or None when
        no sample was counted with a mask."""
        if not self.mcells and not self.msums:
            return None
        parts = [WindowAggregate(self.coarse) for _ in range(SUBSAMPLES)]
        for (mask, actual, predicted, coarse_bin), n in self.mcells.items():
            for k in range(SUBSAMPLES):
                if mask >> k & 1:
                    _add(parts[k].cells, (actual, predicted), n)
                    if coarse_bin >= 0:
                        _add(parts[k].scores, coarse_bin * 2 + (1 if actual == POSITIVE else 0), n)
        for (mask, name), v in self.msums.items():
            for k in range(SUBSAMPLES):
                if mask >> k & 1:
                    _add(parts[k].sums, name, v)
        return parts

    def segment(self, key: str, value: str) -> WindowAggregate:
        """The counters of one segment of the window (created empty; scores binned at the subsamples'
        coarse resolution, which bounds a segment's state to its cells and 101 score bins)."""
        found = self.segments.get((key, value))
        if found is None:
            found = self.segments[key, value] = WindowAggregate(self.coarse)
        return found

    def fields(self, segments: bool = True) -> dict[str, float]:
        """The counters as flat string fields (a Redis hash's form); the constructor reads them back.
        Masked counters are `mask|m|actual|predicted|coarse bin` and `mask|g|name`; with `segments`,
        each segment's fields follow `k|key|value|`."""
        out: dict[str, float] = {f"{CELL}{SEP}{t}{SEP}{p}": n for (t, p), n in self.cells.items()}
        out.update((f"{SCORE}{SEP}{k >> 1}{SEP}{k & 1}", n) for k, n in self.scores.items())
        out.update((f"{REG}{SEP}{name}", v) for name, v in self.sums.items())
        out.update((f"{m}{SEP}{MASKED_CELL}{SEP}{t}{SEP}{p}{SEP}{b}", n) for (m, t, p, b), n in self.mcells.items())
        out.update((f"{m}{SEP}{REG}{SEP}{name}", v) for (m, name), v in self.msums.items())
        out.update(
            (f"{LABELS}{SEP}{key[0]}" + (f"{SEP}{key[1:]}" if len(key) > 1 else ""), n)
            for key, n in self.arrivals.items()
        )
        out.update((f"{ESTIMATE}{SEP}{key}", v) for key, v in self.estimates.items())
        if segments:
            for (key, value), part in self.segments.items():
                out.update((f"{SEGMENT}{SEP}{key}{SEP}{value}{SEP}{f}", n) for f, n in part.fields().items())
        return out

    def add_inference(self, n: int = 1) -> None:
        """Count inferences of the window (joined or not), the denominator of its label coverage."""
        _add(self.arrivals, "i", n)

    def add_score(self, score: float) -> None:
        """Count an inference's score (a binary model's positive-class score, a multiclass model's top
        probability) in a histogram of 0.01-wide bins, for the label-free change detector."""
        _add(self.arrivals, f"h{round(score * SCORE_BINS)}", 1)

    def score_counts(self) -> dict[float, int]:
        """The window's inference scores: bin value -> count (see `add_score`)."""
        return {int(k[1:]) / SCORE_BINS: n for k, n in sorted(self.arrivals.items()) if k.startswith("h") and n}

    def add_delay(self, seconds: float) -> None:
        """Count a label's delay (from its inference's time to the label's) in the log-binned histogram;
        an unknown one (an untimed label that came before any inference had set event time) is not."""
        if math.isnan(seconds) or math.isinf(seconds):
            return
        at = MIN_DELAY_BIN if seconds <= 0 else math.floor(DELAYS_PER_DECADE * math.log10(seconds))
        _add(self.arrivals, f"d{max(MIN_DELAY_BIN, at)}", 1)

    def coverage(self) -> dict[str, Any] | None:
        """Label coverage of the window: inferences, joined ones, those still waiting for their label
        (until they expire, `LABEL_TTL` after their time), the joined share, and the label delays'
        p50, p95 and max in seconds (each the upper edge of its histogram bin: within 26 %); None
        when no inference was counted (a rolling window)."""
        inferences = self.arrivals.get("i", 0)
        if not inferences:
            return None
        joined = self.sample_count
        bins = sorted((int(k[1:]), n) for k, n in self.arrivals.items() if k.startswith("d") and n)
        delays: dict[str, Any] = dict.fromkeys(("p50", "p95", "max"), "NaN")
        if bins:
            total, counted = sum(n for _, n in bins), 0
            edge = {b: 10 ** ((b + 1) / DELAYS_PER_DECADE) for b, _ in bins}
            for b, n in bins:
                counted += n
                for name, q in (("p50", 0.5), ("p95", 0.95)):
                    if delays[name] == "NaN" and counted >= q * total:
                        delays[name] = edge[b]
            delays["max"] = edge[bins[-1][0]]
        return {
            "inferences": inferences,
            "labelled": joined,
            "waiting": max(0, inferences - joined),
            "coverage": joined / inferences,
            "delay_seconds": delays,
        }

    def add(self, sample: Joined, regression: bool = False) -> None:
        """Count one joined sample: its cell (under its subsample mask, if any) and score bin, or
        its error sums for a regression model."""
        mask = sample.subsamples
        if regression:
            y, pred = float(sample.y_true), float(sample.y_pred)
            err = pred - y
            for name, value in zip(REGRESSION_FIELDS, (1, abs(err), err * err, y, y * y)):
                if mask:
                    _add(self.msums, (mask, name), value)
                else:
                    _add(self.sums, name, value)
            return
        if sample.score is not None:
            key = self.bin_of(sample.score) * 2 + (1 if sample.y_true == POSITIVE else 0)
            self.scores[key] = self.scores.get(key, 0) + 1
        if mask:
            coarse_bin = -1 if sample.score is None else round(sample.score / self.coarse)
            _add(self.mcells, (mask, sample.y_true, sample.y_pred, coarse_bin), 1)
        else:
            cell = (sample.y_true, sample.y_pred)
            self.cells[cell] = self.cells.get(cell, 0) + 1

    def bin_of(self, score: float) -> int:
        """The histogram bin holding `score` (scores are rounded to the resolution)."""
        return round(score / self.resolution)

    def merge(self, other: WindowAggregate) -> None:
        """Add another partial state of the same window into this one."""
        for mine, theirs in (
            (self.cells, other.cells),
            (self.scores, other.scores),
            (self.sums, other.sums),
            (self.mcells, other.mcells),
            (self.msums, other.msums),
            (self.arrivals, other.arrivals),
            (self.estimates, other.estimates),
        ):
            for key, n in theirs.items():
                _add(mine, key, n)
        for (key, value), part in other.segments.items():
            self.segment(key, value).merge(part)

    def all_cells(self) -> dict[tuple[str, str], int]:
        """The whole window's confusion cells (those of no subsample plus every masked one)."""
        cells = dict(self.cells)
        for (_, actual, predicted, _), n in self.mcells.items():
            _add(cells, (actual, predicted), n)
        return cells

    @property
    def sample_count(self) -> int:
        """Number of joined samples counted."""
        return int(self.regression_sums()["n"]) + sum(self.cells.values()) + sum(self.mcells.values())

    def regression_sums(self) -> dict[str, float]:
        """`n`, `ae`, `se`, `y`, `yy`: the sufficient statistics of the regression metrics."""
        sums = {name: float(self.sums.get(name, 0.0)) for name in REGRESSION_FIELDS}
        for (_, name), v in self.msums.items():
            sums[name] += v
        return sums

    def confusion(self) -> dict[str, dict[str, int]]:
        """Nested `{actual: {predicted: count}}`, SageMaker's confusion-matrix shape."""
        matrix: dict[str, dict[str, int]] = {}
        for (actual, predicted), n in self.all_cells().items():
            if n:
                matrix.setdefault(actual, {})[predicted] = n
        return matrix

    def score_histogram(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The occupied bins' scores, highest first, with their negative and positive counts."""
        keys = np.fromiter(self.scores.keys(), dtype=np.int64, count=len(self.scores))
        counts = np.fromiter(self.scores.values(), dtype=np.int64, count=len(self.scores))
        keys, counts = keys[counts != 0], counts[counts != 0]
        bins, slot = np.unique(keys >> 1, return_inverse=True)
        positive = (keys & 1).astype(bool)
        neg = np.bincount(slot[~positive], weights=counts[~positive], minlength=len(bins)).astype(np.int64)
        pos = np.bincount(slot[positive], weights=counts[positive], minlength=len(bins)).astype(np.int64)
        return bins[::-1] * self.resolution, neg[::-1], pos[::-1]

    def add_columns(
        self,
        y_true: Sequence[str],
        y_pred: Sequence[str],
        scores: Sequence[float | None] | np.ndarray | None,
        regression: bool = False,
        masks: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Count many samples at once (canonical values, as `add` takes them, with their subsample
        masks); the same counters as calling `add` per sample, with the binning done by numpy. A
        None score is not binned."""
        if masks is None:
            self._count_columns(y_true, y_pred, scores, regression)
            return
        masks = np.asarray(masks, dtype=np.int64)
        plain = masks == 0
        truth, predicted = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
        values = None if scores is None else np.asarray(scores, dtype=float)
        if regression:
            self._count_columns(truth[plain].tolist(), predicted[plain].tolist(), None, True)
            for mask in np.unique(masks[~plain]).tolist():
                keep = masks == mask
                part = WindowAggregate(self.resolution)
                part._count_columns(truth[keep].tolist(), predicted[keep].tolist(), None, True)
                for name, v in part.sums.items():
                    _add(self.msums, (mask, name), v)
            return
        self._count_columns(truth[plain].tolist(), predicted[plain].tolist(), None, False)
        coarse = np.full(len(masks), -1, dtype=np.int64)
        if values is not None:
            self._bin_scores(values, truth)
            scored = ~np.isnan(values)
            coarse[scored] = np.rint(values[scored] / self.coarse).astype(np.int64)
        keep = ~plain
        rows = zip(masks[keep].tolist(), truth[keep].tolist(), predicted[keep].tolist(), coarse[keep].tolist())
        for key, n in Counter(rows).items():
            _add(self.mcells, key, n)

    def _count_columns(
        self,
        y_true: Sequence[str],
        y_pred: Sequence[str],
        scores: Sequence[float | None] | np.ndarray | None,
        regression: bool,
    ) -> None:
        if regression:
            y, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
            err = pred - y
            for name, value in zip(
                REGRESSION_FIELDS,
                (len(y), float(np.abs(err).sum()), float((err * err).sum()), float(y.sum()), float((y * y).sum())),
            ):
                _add(self.sums, name, value)
            return
        for cell, n in Counter(zip(y_true, y_pred)).items():
            _add(self.cells, cell, n)
        if scores is not None:
            self._bin_scores(np.asarray(scores, dtype=float), np.asarray(y_true, dtype=object))

    def _bin_scores(self, values: np.ndarray, y_true: np.ndarray) -> None:
        """Add scores (NaN: none) to the fine histogram."""
        scored = ~np.isnan(values)
        bins = np.rint(values[scored] / self.resolution).astype(np.int64)
        positive = y_true[scored] == POSITIVE
        keys, counts = np.unique(bins * 2 + positive, return_counts=True)  # one flat key: bin and class
        found = zip(keys.tolist(), counts.tolist())
        if not self.scores:
            self.scores = dict(found)
        for k, n in found:  # (empty when the dict was fresh)
            _add(self.scores, k, n)

    @classmethod
    def of(cls, samples: Iterable[Joined], resolution: float, regression: bool = False) -> WindowAggregate:
        """Build the state of a window from its samples."""
        aggregate = cls(resolution)
        for sample in samples:
            aggregate.add(sample, regression)
        return aggregate
