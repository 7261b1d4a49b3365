"""Confidence intervals of a window's metrics, correct for small windows.

- Proportions (accuracy, recall, precision, the four rates; multiclass accuracy and weighted
  recall, which equals it): Wilson's score interval, which keeps its coverage for a few dozen
  samples and for values near 0 or 1, where the normal interval does not.
- AUC: DeLong's variance, exact for the window's binned scores (every sample of one bin has the
  same placement value), with a normal interval on the logit scale (it stays inside [0, 1]).
- The F-scores, multiclass weighted precision and F-scores, and the best constant classifier's
  metrics (functions of the whole confusion matrix): a parametric bootstrap, 1,000 confusion
  matrices drawn from the window's cell shares (multinomial), bias-corrected percentile interval; seeded by
  the window's counts, so the same window always gets the same interval (replay equals live).
- MAE: the central limit theorem with the window's error sums (Σ|e|, Σe²).
- MSE, RMSE, R² (no per-sample data is kept): the subsample deviations. A subsample of 80 % drawn
  without replacement varies around the window's value with 1/4 of the window's own sampling
  variance, so the window's standard error is twice the subsamples' deviation; with 5 subsamples
  that deviation has 4 degrees of freedom, so the interval uses Student's t with 4. From 200
  samples on (as the deviations); below, and with deviations off, no interval ("NaN").

Each interval is `[lower, upper]` at the configured level, or `"NaN"` where undefined.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats

from stream.core.aggregate import WindowAggregate
from stream.core.metrics import binary_cells
from stream.core.records import BINARY, REGRESSION, ProblemType

BOOTSTRAP_DRAWS = 1000
# Bootstraps remembered by their window's counts: a pure function of them (seeded by them), and the
# windows of many models with few samples each repeat their counts (1,000 models of 6 samples: 84
# distinct binary matrices). Each entry is a dozen intervals.
BOOTSTRAP_CACHE = 4096
SUBSAMPLE_SE_FACTOR = 2.0  # window standard error / deviation of 80 % subsamples: sqrt(1 / (1/0.8 - 1))
SUBSAMPLE_DF = 4  # 5 subsamples
NO_INTERVAL = "NaN"

Interval = tuple[float, float]


def z_of(level: float) -> float:
    """The standard normal quantile of a two-sided interval at `level`."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(successes: float, n: float, level: float) -> Interval | None:
    """Wilson's score interval of a proportion; None without trials."""
    if n <= 0:
        return None
    z = z_of(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def delong_auc(negatives: np.ndarray, positives: np.ndarray, level: float) -> Interval | None:
    """DeLong's interval of the AUC from a score histogram (counts per bin, any order of bins as long
    as both arrays share it, highest score first as `score_histogram` gives them)."""
    n_neg, n_pos = float(negatives.sum()), float(positives.sum())  # weighted counts may be fractional
    if n_neg <= 0 or n_pos <= 0:
        return None
    # placement of a positive in bin b: share of negatives scored lower, ties counting half
    neg_above = np.cumsum(negatives) - negatives  # negatives in higher bins
    pos_above = np.cumsum(positives) - positives
    v_pos = (n_neg - neg_above - negatives + 0.5 * negatives) / n_neg  # negatives below + half the ties
    v_neg = (pos_above + 0.5 * positives) / n_pos  # positives above + half the ties
    auc = float(np.sum(positives * v_pos) / n_pos)
    var_pos = float(np.sum(positives * (v_pos - auc) ** 2) / (n_pos - 1)) if n_pos > 1 else 0.0
    var_neg = float(np.sum(negatives * (v_neg - auc) ** 2) / (n_neg - 1)) if n_neg > 1 else 0.0
    se = math.sqrt(var_pos / n_pos + var_neg / n_neg)
    if se == 0.0:
        return auc, auc
    if not 0.0 < auc < 1.0:
        return max(0.0, auc - z_of(level) * se), min(1.0, auc + z_of(level) * se)
    logit, logit_se = math.log(auc / (1 - auc)), se / (auc * (1 - auc))
    z = z_of(level)
    return _expit(logit - z * logit_se), _expit(logit + z * logit_se)


def _expit(x: float) -> float:
    """The logistic function, without overflow far from 0 (an AUC near 0 or 1 with a wide interval
    puts its logit bounds hundreds of units out)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _seed(counts: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(counts.astype(np.int64).tobytes(), digest_size=8).digest(), "little")


def bootstrap(
    counts: np.ndarray, statistics: Callable[[np.ndarray], Mapping[str, np.ndarray]], level: float
) -> dict[str, Interval]:
    """Percentile intervals of `statistics` (a function of a (draws, cells) array of counts giving
    one array per metric) over multinomial redraws of the window's cell `counts`."""
    n = int(counts.sum())
    if n == 0:
        return {}
    rng = np.random.default_rng(_seed(counts))
    draws = rng.multinomial(n, counts / n, size=BOOTSTRAP_DRAWS)
    observed = statistics(counts[None, :])
    normal, z = NormalDist(), z_of(level)
    out = {}
    for name, values in statistics(draws).items():
        values = np.sort(values[np.isfinite(values)])
        if not len(values):
            continue
        # bias-corrected percentiles: shifted by how far the observed value sits from the draws' median
        at = observed[name][0]
        below = (np.searchsorted(values, at, "left") + np.searchsorted(values, at, "right")) / 2 / len(values)
        z0 = normal.inv_cdf(min(max(below, 0.5 / len(values)), 1 - 0.5 / len(values)))
        out[name] = (quantile(values, normal.cdf(2 * z0 - z)), quantile(values, normal.cdf(2 * z0 + z)))
    return out


def quantile(ordered: np.ndarray, q: float) -> float:
    """The q-quantile of sorted values, interpolated as numpy's default (`linear`) method."""
    position = q * (len(ordered) - 1)
    i = int(position)
    upper = ordered[min(i + 1, len(ordered) - 1)]
    return float(ordered[i] + (upper - ordered[i]) * (position - i))


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den where den > 0, else 0 (divides only where it may: no warnings to silence)."""
    out: np.ndarray = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)
    return out


def _fbeta(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    return _div((1 + b2) * precision * recall, b2 * precision + recall)


FBETAS = {"f0_5": 0.5, "f1": 1.0, "f2": 2.0}


def _binary_draws(majority_positive: bool) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """F-scores and the best constant classifier's metrics of (tp, fn, fp, tn) draws. The constant
    classifier is the window's (it predicts the window's majority class): redrawing which class
    is the majority would make its interval one of a maximum, biased upwards."""

    def statistics(draws: np.ndarray) -> dict[str, np.ndarray]:
        tp, fn, fp, tn = draws.T.astype(np.float64)
        precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
        out = {name: _fbeta(precision, recall, beta) for name, beta in FBETAS.items()}
        positives, negatives, n = tp + fn, fp + tn, draws.sum(axis=1)
        c_precision = _div(positives, n) if majority_positive else np.zeros(len(draws))
        c_recall = np.full(len(draws), 1.0 if majority_positive else 0.0)
        out["precision_best_constant_classifier"] = c_precision
        out["recall_best_constant_classifier"] = c_recall
        out["accuracy_best_constant_classifier"] = _div(positives if majority_positive else negatives, n)
        for name, beta in FBETAS.items():
            out[f"{name}_best_constant_classifier"] = _fbeta(c_precision, c_recall, beta)
        return out

    return statistics


def multiclass_draws(k: int, majority: int) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """Weighted precision and F-scores, and the best constant classifier's weighted metrics (it
    predicts the window's majority class, index `majority`), of draws of a k x k confusion matrix
    (cells row-major: actual, predicted)."""

    def statistics(draws: np.ndarray) -> dict[str, np.ndarray]:
        m = draws.reshape(len(draws), k, k).astype(np.float64)
        support, predicted, hits = m.sum(axis=2), m.sum(axis=1), np.einsum("bii->bi", m)
        n = support.sum(axis=1)
        weights = support / np.where(n > 0, n, 1)[:, None]
        precision, recall = _div(hits, predicted), _div(hits, support)
        out = {"weighted_precision": (weights * precision).sum(axis=1)}
        for name, beta in FBETAS.items():
            out[f"weighted_{name}"] = (weights * _fbeta(precision, recall, beta)).sum(axis=1)
        share = weights[:, majority]
        out["accuracy_best_constant_classifier"] = share
        out["weighted_recall_best_constant_classifier"] = share
        out["weighted_precision_best_constant_classifier"] = share * share
        for name, beta in FBETAS.items():
            f = _fbeta(share, np.ones_like(share), beta)  # the majority class's F; the others score 0
            out[f"weighted_{name}_best_constant_classifier"] = share * f
        return out

    return statistics


def intervals(
    aggregate: WindowAggregate, problem_type: ProblemType, level: float, statistics: Mapping[str, Any]
) -> dict[str, Interval | None]:
    """The interval of every scalar metric of a window; `statistics` is its statistics body (the
    regression intervals that need them read its values and subsample deviations)."""
    if problem_type == REGRESSION:
        return _regression(aggregate, level, statistics)
    matrix = aggregate.confusion()
    if problem_type == BINARY:
        tp, fn, fp, tn = binary_cells(matrix)
        out: dict[str, Interval | None] = {
            "accuracy": wilson(tp + tn, tp + tn + fp + fn, level),
            "recall": wilson(tp, tp + fn, level),
            "true_positive_rate": wilson(tp, tp + fn, level),
            "precision": wilson(tp, tp + fp, level),
            "true_negative_rate": wilson(tn, tn + fp, level),
            "false_positive_rate": wilson(fp, fp + tn, level),
            "false_negative_rate": wilson(fn, fn + tp, level),
        }
        # the window's best constant classifier predicts its majority class (a tie: positive)
        out.update(_binary_bootstrap((tp, fn, fp, tn), tp + fn >= tn + fp, level))
        _, negatives, positives = aggregate.score_histogram()
        out["auc"] = delong_auc(negatives, positives, level) if len(negatives) else None
        return out
    classes = sorted(set(matrix) | {p for row in matrix.values() for p in row})
    counts = np.array([matrix.get(a, {}).get(p, 0) for a in classes for p in classes])
    hits, n = sum(matrix.get(c, {}).get(c, 0) for c in classes), int(counts.sum())
    out = {"accuracy": wilson(hits, n, level), "weighted_recall": wilson(hits, n, level)}
    support = counts.reshape(len(classes), len(classes)).sum(axis=1)
    # the window's best constant classifier: its most frequent actual class (a tie: the first)
    majority = int(np.argmax(support)) if len(classes) else 0
    out.update(_multiclass_bootstrap(tuple(counts.tolist()), len(classes), majority, level))
    return out


@functools.lru_cache(maxsize=BOOTSTRAP_CACHE)
def _binary_bootstrap(cells: tuple[int, ...], majority_positive: bool, level: float) -> dict[str, Interval]:
    """`bootstrap` of a binary window's (tp, fn, fp, tn), remembered (see BOOTSTRAP_CACHE): read only."""
    return bootstrap(np.array(cells), _binary_draws(majority_positive), level)


@functools.lru_cache(maxsize=BOOTSTRAP_CACHE)
def _multiclass_bootstrap(cells: tuple[int, ...], k: int, majority: int, level: float) -> dict[str, Interval]:
    """`bootstrap` of a k-class window's confusion cells (row-major), remembered likewise: read only."""
    return bootstrap(np.array(cells), multiclass_draws(k, majority), level)


def _regression(aggregate: WindowAggregate, level: float, statistics: Mapping[str, Any]) -> dict[str, Interval | None]:
    sums = aggregate.regression_sums()
    n = sums["n"]
    out: dict[str, Interval | None] = {}
    if n >= 2:
        mae = sums["ae"] / n
        variance = max(0.0, sums["se"] / n - mae * mae) * n / (n - 1)  # of |error|
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(variance / n)
        out["mae"] = (max(0.0, mae - half), mae + half)
    t4 = float(stats.t.ppf(0.5 + level / 2, SUBSAMPLE_DF))
    for name in ("mse", "rmse", "r2"):
        entry = statistics.get(name, {})
        sd, value = entry.get("standard_deviation"), entry.get("value")
        if isinstance(sd, (int, float)) and isinstance(value, (int, float)) and math.isfinite(sd):
            half = t4 * SUBSAMPLE_SE_FACTOR * sd
            lower = value - half if name == "r2" else max(0.0, value - half)
            out[name] = (lower, min(1.0, value + half) if name == "r2" else value + half)
    return out


def add_intervals(
    statistics: dict[str, Any], aggregate: WindowAggregate, problem_type: ProblemType, level: float
) -> None:
    """Write `confidence_interval: [lower, upper]` (or "NaN") into every scalar entry of a window's
    statistics body."""
    found = intervals(aggregate, problem_type, level, statistics)
    for name, entry in statistics.items():
        if isinstance(entry, dict) and "value" in entry:
            interval = found.get(name)
            if interval is not None and all(math.isfinite(x) for x in interval):
                entry["confidence_interval"] = [interval[0], interval[1]]
            else:
                entry["confidence_interval"] = NO_INTERVAL
