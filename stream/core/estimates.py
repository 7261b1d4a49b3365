"""Label-free performance estimates of a binary classifier (confidence-based, CBPE).

If a model's scores are calibrated (see `calibration`), an inference predicted positive with
calibrated probability p is a true positive with probability p and a false positive otherwise;
one predicted negative is a false negative with probability p. Summing over a window's
inferences gives the expected confusion matrix before any label has come, and the metrics that
follow from it. Each inference adds to its window (fields `e|<name>` of the window's state, kept
beside its label coverage and, like it, without opening the window):

- `n1`, `n0`: inferences predicted positive / negative;
- `p1`, `p0`: their summed probabilities of being positive (expected TP, expected FN);
- `v1`, `v0`: their summed p(1 - p), the variance of the realized TP and FN counts: given the
  inferences, each outcome is an independent Bernoulli draw;
- `a<bin>`, `b<bin>`: per raw score bin of ESTIMATE_RESOLUTION, the summed probabilities of
  being positive and negative (a weighted score histogram, for the AUC).

The intervals are those of the metric the labels will give, given the window's inferences:
accuracy's variance is (v1 + v0) / n^2, precision's v1 / n1^2, recall's and F1's follow by the
delta method from the independent TP and FN sums; the AUC's is DeLong's on the weighted
histogram. They assume calibration holds in the window: under covariate shift (the inputs move,
P(y | x) stays) it does; under concept drift (P(y | x) moves) the estimate cannot see the change,
and the realized metrics, when labels come, disagree with it (`estimate_error`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from stream.core.aggregate import WindowAggregate
from stream.core.intervals import NO_INTERVAL, delong_auc, z_of
from stream.core.metrics import NO_STD, roc_and_pr
from stream.core.records import POSITIVE

ESTIMATED_PREFIX = "estimated_"
ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
ESTIMATE_RESOLUTION = 0.01  # score bins of the estimated AUC (ties within a bin count half)


def count_estimate(agg: WindowAggregate, prediction: str, probability: float, score: float) -> None:
    """Add one inference (its predicted class, calibrated probability of the positive class and raw
    score) to a window's estimate sums."""
    e, side = agg.estimates, "1" if prediction == POSITIVE else "0"
    for key, v in (
        ("n" + side, 1.0),
        ("p" + side, probability),
        ("v" + side, probability * (1.0 - probability)),
        (f"a{round(score / ESTIMATE_RESOLUTION)}", probability),
        (f"b{round(score / ESTIMATE_RESOLUTION)}", 1.0 - probability),
    ):
        e[key] = e.get(key, 0.0) + v


def count_estimates(agg: WindowAggregate, positive: np.ndarray, probabilities: np.ndarray, scores: np.ndarray) -> None:
    """`count_estimate` over many inferences at once (whether each is predicted positive, its
    calibrated probability and raw score), for data sets read in chunks."""
    e, q = agg.estimates, probabilities
    for side, rows in (("1", positive), ("0", ~positive)):
        for key, v in (("n", rows.sum()), ("p", q[rows].sum()), ("v", (q * (1 - q))[rows].sum())):
            e[key + side] = e.get(key + side, 0.0) + float(v)
    bins = np.rint(scores / ESTIMATE_RESOLUTION).astype(np.int64)
    used = np.unique(bins)
    positives, negatives = np.bincount(bins, weights=q)[used], np.bincount(bins, weights=1 - q)[used]
    for b, pos, neg in zip(used.tolist(), positives.tolist(), negatives.tolist()):
        e[f"a{b}"], e[f"b{b}"] = e.get(f"a{b}", 0.0) + pos, e.get(f"b{b}", 0.0) + neg


def _entry(value: float, variance: float, z: float | None) -> dict[str, Any]:
    if not math.isfinite(value):
        return {"value": NO_STD, "standard_deviation": NO_STD}
    sd = math.sqrt(max(variance, 0.0))
    entry: dict[str, Any] = {"value": value, "standard_deviation": sd if math.isfinite(sd) else NO_STD}
    if z is not None:
        entry["confidence_interval"] = (
            [max(0.0, value - z * sd), min(1.0, value + z * sd)] if math.isfinite(sd) else NO_INTERVAL
        )
    return entry


def estimated_metrics(agg: WindowAggregate, level: float = 0.0) -> dict[str, dict[str, Any]]:
    """`estimated_<metric>` entries (value, standard deviation and, with a `level`, the interval) of
    a window's estimate sums; empty when no inference was estimated."""
    e = agg.estimates
    n1, n0, a, b, v1, v0 = (e.get(k, 0.0) for k in ("n1", "n0", "p1", "p0", "v1", "v0"))
    n = n1 + n0
    if n <= 0:
        return {}
    z = z_of(level) if level else None
    nan = math.nan
    values: dict[str, tuple[float, float]] = {"accuracy": ((a + n0 - b) / n, (v1 + v0) / n**2)}
    values["precision"] = (a / n1, v1 / n1**2) if n1 else (nan, nan)
    positives = a + b
    values["recall"] = (a / positives, (b * b * v1 + a * a * v0) / positives**4) if positives > 0 else (nan, nan)
    d = a + b + n1
    values["f1"] = (2 * a / d, 4 * ((b + n1) ** 2 * v1 + a * a * v0) / d**4) if d > 0 else (nan, nan)
    out = {ESTIMATED_PREFIX + name: _entry(value, var, z) for name, (value, var) in values.items()}
    auc = _estimated_auc(e, level)
    if auc is not None:
        out[ESTIMATED_PREFIX + "auc"] = auc
    return out


def _estimated_auc(e: Mapping[str, float], level: float) -> dict[str, Any] | None:
    bins = sorted({int(k[1:]) for k in e if k[0] in "ab"}, reverse=True)  # highest score first
    if not bins:
        return None
    positives = np.array([e.get(f"a{b}", 0.0) for b in bins])
    negatives = np.array([e.get(f"b{b}", 0.0) for b in bins])
    auc = roc_and_pr(negatives, positives)[0]
    if not math.isfinite(auc):
        return {"value": NO_STD, "standard_deviation": NO_STD}
    entry: dict[str, Any] = {"value": auc, "standard_deviation": NO_STD}
    if level:
        interval = delong_auc(negatives, positives, level)
        entry["confidence_interval"] = list(interval) if interval is not None else NO_INTERVAL
    return entry


def expected_confusion(agg: WindowAggregate) -> dict[str, dict[str, float]]:
    """The expected confusion matrix `{actual: {predicted: count}}` of the window's inferences."""
    e = agg.estimates
    n1, n0, a, b = (e.get(k, 0.0) for k in ("n1", "n0", "p1", "p0"))
    return {"0": {"0": n0 - b, "1": n1 - a}, "1": {"0": b, "1": a}}


def estimate_errors(statistics: Mapping[str, Any]) -> dict[str, float]:
    """Realized minus estimated value of every estimated metric that has both (a statistics body)."""
    out = {}
    for name in ESTIMATED_METRICS:
        realized = statistics.get(name, {}).get("value")
        estimated = statistics.get(ESTIMATED_PREFIX + name, {}).get("value")
        if isinstance(realized, float | int) and isinstance(estimated, float | int):
            out[name] = float(realized) - float(estimated)
    return out
