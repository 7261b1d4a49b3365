"""Label-free performance estimates of a classifier (confidence-based, CBPE).

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

A multiclass inference predicted class k with calibrated class probabilities q adds `n|k` (1),
`c|j|k` (q_j for every class j: the expected confusion-matrix column of k) and `v|k` (q_k(1 - q_k)).

The intervals are those of the metric the labels will give, given the window's inferences:
accuracy's variance is (v1 + v0) / n^2, precision's v1 / n1^2, recall's and F1's follow by the
delta method from the independent TP and FN sums; the AUC's is DeLong's on the weighted
histogram. Multiclass accuracy (= weighted recall) has the variance Σ v_k / n^2; the weighted
precision and F-scores a parametric bootstrap drawing each predicted class's column from a
multinomial with the expected shares (conservative: a multinomial varies at least as much as the
sum of the inferences' own draws). They assume calibration holds in the window: under covariate shift (the inputs move,
P(y | x) stays) it does; under concept drift (P(y | x) moves) the estimate cannot see the change,
and the realized metrics, when labels come, disagree with it (`estimate_error`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from stream.core.aggregate import WindowAggregate
from stream.core.intervals import BOOTSTRAP_DRAWS, NO_INTERVAL, delong_auc, multiclass_draws, quantile, z_of
from stream.core.metrics import MULTICLASS_SCALARS, NO_STD, roc_and_pr
from stream.core.records import BINARY, POSITIVE, SEP, ProblemType

ESTIMATED_PREFIX = "estimated_"
ESTIMATED_METRICS: dict[ProblemType, tuple[str, ...]] = {
    BINARY: ("accuracy", "precision", "recall", "f1", "auc"),
    # the weighted metrics, not their best-constant-classifier baselines (which need no estimate)
    "MulticlassClassification": tuple(m for m in MULTICLASS_SCALARS if not m.endswith("_best_constant_classifier")),
}
ESTIMATE_RESOLUTION = 0.01  # score bins of the estimated AUC (ties within a bin count half)


def count_estimate(aggregate: WindowAggregate, prediction: str, probability: float, score: float) -> None:
    """Add one inference (its predicted class, calibrated probability of the positive class and raw
    score) to a window's estimate sums."""
    e, side = aggregate.estimates, "1" if prediction == POSITIVE else "0"
    for key, v in (
        ("n" + side, 1.0),
        ("p" + side, probability),
        ("v" + side, probability * (1.0 - probability)),
        (f"a{round(score / ESTIMATE_RESOLUTION)}", probability),
        (f"b{round(score / ESTIMATE_RESOLUTION)}", 1.0 - probability),
    ):
        e[key] = e.get(key, 0.0) + v


def count_multiclass_estimate(aggregate: WindowAggregate, prediction: str, probabilities: Mapping[str, float]) -> None:
    """Add one multiclass inference (its predicted class and calibrated class probabilities) to a
    window's estimate sums."""
    e = aggregate.estimates
    hit = probabilities.get(prediction, 0.0)
    for key, v in (
        (f"n{SEP}{prediction}", 1.0),
        (f"v{SEP}{prediction}", hit * (1.0 - hit)),
        *((f"c{SEP}{actual}{SEP}{prediction}", q) for actual, q in probabilities.items() if q),
    ):
        e[key] = e.get(key, 0.0) + v


def count_estimates(
    aggregate: WindowAggregate, positive: np.ndarray, probabilities: np.ndarray, scores: np.ndarray
) -> None:
    """`count_estimate` over many inferences at once (whether each is predicted positive, its
    calibrated probability and raw score), for data sets read in chunks."""
    e, q = aggregate.estimates, probabilities
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


def estimated_metrics(
    aggregate: WindowAggregate, level: float = 0.0, problem_type: ProblemType = BINARY
) -> dict[str, dict[str, Any]]:
    """`estimated_<metric>` entries (value, standard deviation and, with a `level`, the interval) of
    a window's estimate sums; empty when no inference was estimated."""
    if problem_type != BINARY:
        return _multiclass_metrics(aggregate, level)
    e = aggregate.estimates
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


def _multiclass_matrix(e: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Classes, the expected confusion matrix (actual x predicted), inferences and Σ q(1 - q) per
    predicted class."""
    parts = [k.split(SEP) for k in e if SEP in k]
    classes = sorted({p[-1] for p in parts} | {p[1] for p in parts if p[0] == "c"})
    index = {c: i for i, c in enumerate(classes)}
    matrix, counts, spread = np.zeros((len(classes), len(classes))), np.zeros(len(classes)), np.zeros(len(classes))
    for key, value in e.items():
        p = key.split(SEP)
        if p[0] == "c" and len(p) == 3:
            matrix[index[p[1]], index[p[2]]] += value
        elif p[0] == "n" and len(p) == 2:
            counts[index[p[1]]] += value
        elif p[0] == "v" and len(p) == 2:
            spread[index[p[1]]] += value
    return classes, matrix, counts, spread


def _multiclass_metrics(aggregate: WindowAggregate, level: float) -> dict[str, dict[str, Any]]:
    classes, matrix, counts, spread = _multiclass_matrix(aggregate.estimates)
    n = counts.sum()
    if n <= 0:
        return {}
    z = z_of(level) if level else None
    accuracy = float(np.trace(matrix) / n)
    out = {
        name: _entry(accuracy, float(spread.sum() / n**2), z)
        for name in (ESTIMATED_PREFIX + "accuracy", ESTIMATED_PREFIX + "weighted_recall")
    }
    support = matrix.sum(axis=1)
    statistics = multiclass_draws(len(classes), int(np.argmax(support)))
    values = statistics(matrix.reshape(1, -1))
    drawn = statistics(_column_draws(matrix, counts))
    for name in ("weighted_precision", "weighted_f0_5", "weighted_f1", "weighted_f2"):
        value = float(values[name][0])
        spread_of = drawn[name]
        entry: dict[str, Any] = {"value": value, "standard_deviation": float(np.std(spread_of, ddof=1))}
        if level:
            ordered = np.sort(spread_of)
            entry["confidence_interval"] = [
                quantile(ordered, 0.5 - level / 2),
                quantile(ordered, 0.5 + level / 2),
            ]
        out[ESTIMATED_PREFIX + name] = entry
    return out


def _column_draws(matrix: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """BOOTSTRAP_DRAWS confusion matrices (flattened, actual x predicted): each predicted class's
    column multinomial over its inferences with the expected shares; seeded by the matrix."""
    seed = int.from_bytes(hashlib.blake2b(np.round(matrix, 6).tobytes(), digest_size=8).digest(), "little")
    rng = np.random.default_rng(seed)
    k = len(counts)
    draws = np.zeros((BOOTSTRAP_DRAWS, k, k))
    for col in range(k):
        total = round(counts[col])
        if total > 0:
            shares = matrix[:, col] / max(matrix[:, col].sum(), 1e-12)
            draws[:, :, col] = rng.multinomial(total, shares / shares.sum(), size=BOOTSTRAP_DRAWS)
    return draws.reshape(BOOTSTRAP_DRAWS, k * k)


def expected_confusion(aggregate: WindowAggregate, problem_type: ProblemType = BINARY) -> dict[str, dict[str, float]]:
    """The expected confusion matrix `{actual: {predicted: count}}` of the window's inferences."""
    if problem_type != BINARY:
        classes, matrix, _, _ = _multiclass_matrix(aggregate.estimates)
        return {a: {p: float(matrix[i, j]) for j, p in enumerate(classes)} for i, a in enumerate(classes)}
    e = aggregate.estimates
    n1, n0, a, b = (e.get(k, 0.0) for k in ("n1", "n0", "p1", "p0"))
    return {"0": {"0": n0 - b, "1": n1 - a}, "1": {"0": b, "1": a}}


def estimate_errors(statistics: Mapping[str, Any], problem_type: ProblemType = BINARY) -> dict[str, float]:
    """Realized minus estimated value of every estimated metric that has both (a statistics body)."""
    out = {}
    for name in ESTIMATED_METRICS.get(problem_type, ()):
        realized = statistics.get(name, {}).get("value")
        estimated = statistics.get(ESTIMATED_PREFIX + name, {}).get("value")
        if isinstance(realized, float | int) and isinstance(estimated, float | int):
            out[name] = float(realized) - float(estimated)
    return out
