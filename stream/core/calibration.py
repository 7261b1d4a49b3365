"""Calibration of a binary classifier's scores: what probability of the positive class a score means.

Confidence-based performance estimation (see `estimates`) needs calibrated probabilities: among
inferences scored 0.8, 80 % should be positive. Few models are calibrated, so `truthstream
baseline` fits an isotonic regression (monotone, no shape assumed) of the labels on the scores
of its labelled data set, from the same fine score histogram its AUC comes from (so memory stays
bounded whatever the data set's size), and writes it as `calibration.json`:

    {"truthstream_calibration": 1, "problem_type": "BinaryClassification", "method": "isotonic",
     "samples": 5000, "scores": [0.0, 0.12, ...], "probabilities": [0.01, 0.03, ...],
     "brier_score": {"raw": 0.21, "calibrated": 0.18}}

A score maps to a probability by linear interpolation between the points (as scikit-learn's
`IsotonicRegression` predicts), clipped to the first and last point outside them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import isotonic_regression

from stream.core.aggregate import WindowAggregate
from stream.core.records import BINARY
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
        return np.interp(scores, self.scores, self.probabilities)

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


def fit_calibration(agg: WindowAggregate) -> tuple[Calibration, dict[str, float]]:
    """An isotonic calibration fitted on a labelled aggregate's score histogram, and the Brier
    score of the raw and of the calibrated scores on the same data (the second is optimistic:
    it is measured where it was fitted)."""
    scores, negatives, positives = agg.score_histogram()
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


def parse_calibration(doc: Any, source: str) -> Calibration:
    """Validate a calibration.json document; every problem names `source`."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{source}: not a truthstream calibration: {why}")

    if not isinstance(doc, dict) or doc.get(FORMAT_KEY) != FORMAT_VERSION:
        raise bad(f'expected an object with "{FORMAT_KEY}": {FORMAT_VERSION}')
    if doc.get("problem_type") != BINARY:
        raise bad(f"problem_type {doc.get('problem_type')!r}: only {BINARY} models are calibrated")
    xs, ys = doc.get("scores"), doc.get("probabilities")
    if not isinstance(xs, list) or not isinstance(ys, list) or not xs or len(xs) != len(ys):
        raise bad('"scores" and "probabilities" must be lists of the same, non-zero length')
    try:
        scores, probabilities = [float(x) for x in xs], [float(y) for y in ys]
    except (TypeError, ValueError):
        raise bad("scores and probabilities must be numbers") from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in scores + probabilities):
        raise bad("scores and probabilities must lie in [0, 1]")
    if any(b < a for a, b in zip(scores, scores[1:])) or any(b < a for a, b in zip(probabilities, probabilities[1:])):
        raise bad("scores and probabilities must both be non-decreasing")
    if any(b == a for a, b in zip(scores, scores[1:])):
        raise bad("scores must be distinct")
    samples = doc.get("samples", 0)
    return Calibration(tuple(scores), tuple(probabilities), samples if isinstance(samples, int) else 0)
