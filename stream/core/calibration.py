"""Calibration of a classifier's scores: what probability of the positive class a score means (or, for
a multiclass model, of each class its probability for that class).

Confidence-based performance estimation (see `estimates`) needs calibrated probabilities: among
inferences scored 0.8, 80 % should be positive. Few models are calibrated, so `truthstream
baseline` fits an isotonic regression (monotone, no shape assumed) of the labels on the scores
of its labelled data set, from the same fine score histogram its AUC comes from (so memory stays
bounded whatever the data set's size), and writes it as `calibration.json`:

    {"truthstream_calibration": 1, "problem_type": "BinaryClassification", "method": "isotonic",
     "samples": 5000, "scores": [0.0, 0.12, ...], "probabilities": [0.01, 0.03, ...],
     "brier_score": {"raw": 0.21, "calibrated": 0.18}}

A score maps to a probability by linear interpolation between the points (as scikit-learn's
`IsotonicRegression` predicts), clipped to the first and last point outside them. A multiclass
model gets one such map per class, fitted one-vs-rest on that class's probability (`classes`:
{class: {"scores", "probabilities"}}); an inference's calibrated probabilities are the maps'
values, normalised to sum to 1.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.core.aggregate import WindowAggregate
from stream.core.records import BINARY, MULTICLASS, Probabilities
from stream.errors import ConfigError

FORMAT_KEY = "truthstream_calibration"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """A monotone map from a binary classifier's positive-class score to a calibrated probability."""

    scores: tuple[float, ...]
    probabilities: tuple[float, ...]
    samples: int = 0

    def probability(self, score: float) -> float:
        """The calibrated probability that an inference of this score is positive."""
        xs, ys = self.scores, self.probabilities
        i = bisect_right(xs, score)
        if i == 0:
            return ys[0]
        if i == len(xs):
            return ys[-1]
        x0, x1 = xs[i - 1], xs[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (score - x0) / (x1 - x0)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """`probability` of many scores at once."""
        return np.asarray(np.interp(scores, self.scores, self.probabilities))

    def to_doc(self, brier: dict[str, float] | None = None) -> dict[str, Any]:
        """The calibration.json document."""
        doc: dict[str, Any] = {
            FORMAT_KEY: FORMAT_VERSION,
            "problem_type": BINARY,
            "method": "isotonic",
            "samples": self.samples,
            "scores": list(self.scores),
            "probabilities": list(self.probabilities),
        }
        if brier:
            doc["brier_score"] = brier
        return doc


@dataclass(frozen=True)
class MulticlassCalibration:
    """One-vs-rest calibrations of a multiclass model's class probabilities."""

    classes: dict[str, Calibration]
    samples: int = 0

    def calibrate_vector(self, probabilities: Probabilities) -> dict[str, float]:
        """Calibrated probabilities of every class the model knows (a class the inference gave no
        probability for counts as 0), normalised; uniform if they sum to 0."""
        given = dict(probabilities)
        raw = {c: cal.probability(given.get(c, 0.0)) for c, cal in self.classes.items()}
        total = sum(raw.values())
        if total <= 0:
            return dict.fromkeys(raw, 1.0 / len(raw))
        return {c: v / total for c, v in raw.items()}

    def to_doc(self, brier: dict[str, float] | None = None) -> dict[str, Any]:
        """The calibration.json document."""
        doc: dict[str, Any] = {
            FORMAT_KEY: FORMAT_VERSION,
            "problem_type": MULTICLASS,
            "method": "isotonic, one-vs-rest",
            "samples": self.samples,
            "classes": {
                c: {"scores": list(cal.scores), "probabilities": list(cal.probabilities)}
                for c, cal in self.classes.items()
            },
        }
        if brier:
            doc["brier_score"] = brier
        return doc


def fit_calibration(aggregate: WindowAggregate) -> tuple[Calibration, dict[str, float]]:
    """An isotonic calibration fitted on a labelled aggregate's score histogram, and the Brier
    score of the raw and of the calibrated scores on the same data (the second is optimistic:
    it is measured where it was fitted)."""
    from scipy.optimize import isotonic_regression  # half a second to import: only fitting needs it

    scores, negatives, positives = aggregate.score_histogram()
    order = np.argsort(scores)
    scores, negatives, positives = scores[order], negatives[order].astype(float), positives[order].astype(float)
    weights = negatives + positives
    if not len(scores) or not positives.sum() or not negatives.sum():
        raise ConfigError("a calibration needs scored samples of both classes")
    fitted = isotonic_regression(positives / weights, weights=weights, increasing=True).x
    # keep each constant block's first and last score: interpolation between them is the fit itself
    change = np.flatnonzero(np.diff(fitted) != 0)
    keep = np.unique(np.concatenate(([0, len(fitted) - 1], change, change + 1)))
    calibration = Calibration(
        tuple(float(x) for x in scores[keep]), tuple(float(y) for y in fitted[keep]), int(weights.sum())
    )

    def brier(p: np.ndarray) -> float:
        return float((positives * (1 - p) ** 2 + negatives * p**2).sum() / weights.sum())

    return calibration, {"raw": brier(scores), "calibrated": brier(fitted)}


def fit_multiclass_calibration(
    per_class: dict[str, WindowAggregate],
) -> tuple[MulticlassCalibration, dict[str, float]]:
    """One-vs-rest isotonic calibrations from each class's aggregate (the class's probability as the
    score, "is this class" as the positive label); the Brier scores are the classes' mean."""
    fitted = {c: fit_calibration(aggregate) for c, aggregate in sorted(per_class.items())}
    samples = max((cal.samples for cal, _ in fitted.values()), default=0)
    brier = {k: float(np.mean([b[k] for _, b in fitted.values()])) for k in ("raw", "calibrated")}
    return MulticlassCalibration({c: cal for c, (cal, _) in fitted.items()}, samples), brier


def parse_calibration(doc: Any, source: str) -> Calibration | MulticlassCalibration:
    """Validate a calibration.json document; every problem names `source`."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{source}: not a truthstream calibration: {why}")

    if not isinstance(doc, dict) or doc.get(FORMAT_KEY) != FORMAT_VERSION:
        raise bad(f'expected an object with "{FORMAT_KEY}": {FORMAT_VERSION}')
    samples = doc.get("samples", 0)
    samples = samples if isinstance(samples, int) else 0
    if doc.get("problem_type") == MULTICLASS:
        classes = doc.get("classes")
        if not isinstance(classes, dict) or len(classes) < 2:
            raise bad('"classes" must map at least two classes to their "scores" and "probabilities"')
        return MulticlassCalibration({str(c): _points(v, bad, f"classes.{c}.") for c, v in classes.items()}, samples)
    if doc.get("problem_type") != BINARY:
        raise bad(f"problem_type {doc.get('problem_type')!r}: only classifiers ({BINARY}, {MULTICLASS}) are calibrated")
    return _points(doc, bad, "")


def _points(doc: Any, bad: Any, where: str) -> Calibration:
    """One map's points, validated."""
    if not isinstance(doc, dict):
        raise bad(f"{where} must be an object")
    xs, ys = doc.get("scores"), doc.get("probabilities")
    if not isinstance(xs, list) or not isinstance(ys, list) or not xs or len(xs) != len(ys):
        raise bad(f'"{where}scores" and "{where}probabilities" must be lists of the same, non-zero length')
    try:
        scores, probabilities = [float(x) for x in xs], [float(y) for y in ys]
    except (TypeError, ValueError):
        raise bad("scores and probabilities must be numbers") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores + probabilities):
        raise bad("scores and probabilities must lie in [0, 1]")
    if any(b < a for a, b in itertools.pairwise(scores)) or any(b < a for a, b in itertools.pairwise(probabilities)):
        raise bad("scores and probabilities must both be non-decreasing")
    if any(b == a for a, b in itertools.pairwise(scores)):
        raise bad("scores must be distinct")
    samples = doc.get("samples", 0)
    return Calibration(tuple(scores), tuple(probabilities), samples if isinstance(samples, int) else 0)
