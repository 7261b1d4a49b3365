"""SageMaker-shaped model-quality metrics from a window's counters, computed with river.

Confusion-matrix metrics come from river metrics sharing one ConfusionMatrix
rebuilt from the window's counts; AUC and the curves come from the window's
score histogram (exact for scores distinct at the histogram's resolution).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from river import metrics as rm

from stream.core.aggregate import WindowAggregate
from stream.core.records import BINARY, NEGATIVE, POSITIVE, REGRESSION, ProblemType

NO_STD = "NaN"  # SageMaker writes the string "NaN" where no standard deviation was computed
MIN_SAMPLES_FOR_STD = 200  # SageMaker computes standard deviations only from 200 samples on

BINARY_SCALARS = (
    "recall",
    "precision",
    "accuracy",
    "recall_best_constant_classifier",
    "precision_best_constant_classifier",
    "accuracy_best_constant_classifier",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
    "auc",
    "f0_5",
    "f1",
    "f2",
    "f0_5_best_constant_classifier",
    "f1_best_constant_classifier",
    "f2_best_constant_classifier",
)
MULTICLASS_SCALARS = (
    "accuracy",
    "weighted_recall",
    "weighted_precision",
    "weighted_f0_5",
    "weighted_f1",
    "weighted_f2",
    "accuracy_best_constant_classifier",
    "weighted_recall_best_constant_classifier",
    "weighted_precision_best_constant_classifier",
    "weighted_f0_5_best_constant_classifier",
    "weighted_f1_best_constant_classifier",
    "weighted_f2_best_constant_classifier",
)
REGRESSION_SCALARS = ("mae", "mse", "rmse", "r2")
SCALARS: dict[ProblemType, tuple[str, ...]] = {
    BINARY: BINARY_SCALARS,
    "MulticlassClassification": MULTICLASS_SCALARS,
    REGRESSION: REGRESSION_SCALARS,
}
STATISTICS_KEY: dict[ProblemType, str] = {
    BINARY: "binary_classification_metrics",
    "MulticlassClassification": "multiclass_classification_metrics",
    REGRESSION: "regression_metrics",
}


class _OrderedConfusionMatrix(rm.ConfusionMatrix):
    """river's confusion matrix with its classes in one order: river lists them from a set, so the
    weighted metrics' sums ran in an order set by the process's string hash seed, and two
    processes gave the same window different last digits."""

    @property
    def classes(self) -> list[str]:
        return sorted(super().classes)


def _river_cm(matrix: dict[str, dict[str, int]]) -> rm.ConfusionMatrix:
    cm: rm.ConfusionMatrix = _OrderedConfusionMatrix()  # type: ignore[no-untyped-call]  # river's __init__
    for actual, row in sorted(matrix.items()):
        for predicted, n in sorted(row.items()):
            cm.update(actual, predicted, w=n)
    return cm


def full_matrix(matrix: dict[str, dict[str, int]], binary: bool) -> dict[str, dict[str, int]]:
    """The confusion matrix with every cell written, zeros included, as SageMaker writes it: over
    the classes seen as actual or predicted (and both binary classes)."""
    classes = set(matrix) | {p for row in matrix.values() for p in row}
    if binary:
        classes |= {NEGATIVE, POSITIVE}
    order = sorted(classes)
    return {actual: {p: matrix.get(actual, {}).get(p, 0) for p in order} for actual in order}


def _constant_matrix(matrix: dict[str, dict[str, int]], predicted: str) -> dict[str, dict[str, int]]:
    return {actual: {predicted: sum(row.values())} for actual, row in matrix.items()}


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def binary_cells(matrix: dict[str, dict[str, int]]) -> tuple[int, int, int, int]:
    """A binary confusion matrix's true positives, false negatives, false positives, true negatives."""
    tp = matrix.get(POSITIVE, {}).get(POSITIVE, 0)
    fn = sum(matrix.get(POSITIVE, {}).values()) - tp
    tn = matrix.get(NEGATIVE, {}).get(NEGATIVE, 0)
    fp = sum(matrix.get(NEGATIVE, {}).values()) - tn
    return tp, fn, fp, tn


def _binary_scores(matrix: dict[str, dict[str, int]]) -> dict[str, float]:
    cm = _river_cm(matrix)
    kw: dict[str, Any] = {"cm": cm, "pos_val": POSITIVE}
    tp, fn, fp, tn = binary_cells(matrix)
    return {
        "recall": rm.Recall(**kw).get(),
        "precision": rm.Precision(**kw).get(),
        "accuracy": rm.Accuracy(cm=cm).get(),
        "f0_5": rm.FBeta(beta=0.5, **kw).get(),
        "f1": rm.F1(**kw).get(),
        "f2": rm.FBeta(beta=2.0, **kw).get(),
        "true_positive_rate": _ratio(tp, tp + fn),
        "true_negative_rate": _ratio(tn, tn + fp),
        "false_positive_rate": _ratio(fp, fp + tn),
        "false_negative_rate": _ratio(fn, fn + tp),
    }


def _multiclass_scores(matrix: dict[str, dict[str, int]]) -> dict[str, float]:
    cm = _river_cm(matrix)
    return {
        "accuracy": rm.Accuracy(cm=cm).get(),
        "weighted_recall": rm.WeightedRecall(cm=cm).get(),
        "weighted_precision": rm.WeightedPrecision(cm=cm).get(),
        "weighted_f0_5": rm.WeightedFBeta(beta=0.5, cm=cm).get(),
        "weighted_f1": rm.WeightedF1(cm=cm).get(),
        "weighted_f2": rm.WeightedFBeta(beta=2.0, cm=cm).get(),
    }


def roc_and_pr(
    negatives: np.ndarray, positives: np.ndarray
) -> tuple[float, list[float], list[float], list[float], list[float]]:
    """AUC, ROC points (fpr, tpr) and PR points (precision, recall) from a score histogram's
    negative and positive counts per distinct score, highest score first.

    The points are those of scikit-learn's `roc_curve(..., drop_intermediate=False)` and (reversed)
    `precision_recall_curve`, one per distinct score; AUC is the trapezoidal area (ties count half).
    """
    tp, fp = np.cumsum(positives), np.cumsum(negatives)
    total_pos, total_neg = (float(tp[-1]), float(fp[-1])) if len(tp) else (0.0, 0.0)
    prev_tp, prev_fp = np.concatenate(([0], tp[:-1])), np.concatenate(([0], fp[:-1]))
    area = float(np.sum((fp - prev_fp) * (tp + prev_tp).astype(np.float64) / 2.0))
    auc_value = area / (total_pos * total_neg) if total_pos and total_neg else math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        fprs = fp / total_neg if total_neg else np.full(len(fp), math.nan)
        recall = tp / total_pos if total_pos else np.full(len(tp), math.nan)
        predicted = tp + fp
        precisions = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    # As SageMaker writes it: recall ascending from (recall 0, precision 1), i.e. scikit-learn's
    # `precision_recall_curve` points in reverse order.
    return (
        auc_value,
        [0.0, *fprs.tolist()],
        [0.0, *recall.tolist()],
        [1.0, *precisions.tolist()],
        [0.0, *recall.tolist()],
    )


def _thin(values: list[float], keep: list[int]) -> list[float]:
    return [values[i] for i in keep]


def _keep_indexes(n: int, limit: int) -> list[int]:
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else NO_STD


def regression_scores(sums: dict[str, float]) -> dict[str, float]:
    """MAE, MSE, RMSE and R² from a window's error sums (R² as scikit-learn defines a constant target)."""
    n = sums["n"]
    if not n:
        return {}
    mse = sums["se"] / n
    total = sums["yy"] - sums["y"] * sums["y"] / n
    if total > 0:
        r2 = 1.0 - sums["se"] / total
    else:
        r2 = 1.0 if sums["se"] == 0 else 0.0
    return {"mae": sums["ae"] / n, "mse": mse, "rmse": math.sqrt(mse), "r2": r2}


def compute_metrics(aggregate: WindowAggregate, problem_type: ProblemType, curve_points: int) -> dict[str, Any]:
    """The body of a SageMaker `statistics.json` for the problem type (under its key), with each
    scalar's standard deviation over the subsamples (SageMaker's: from 200 samples on, else "NaN")."""
    out = _metrics(aggregate, problem_type, curve_points)
    subsamples = aggregate.parts if aggregate.sample_count >= MIN_SAMPLES_FOR_STD else None
    if subsamples is None:
        return out
    parts = [_metrics(part, problem_type, 0) for part in subsamples]
    for name, entry in out.items():
        if isinstance(entry, dict) and "standard_deviation" in entry:
            values = [part.get(name, {}).get("value") for part in parts]
            if all(isinstance(v, (int, float)) for v in values):
                entry["standard_deviation"] = _finite(float(np.std(values, ddof=1)))
    return out


def _metrics(aggregate: WindowAggregate, problem_type: ProblemType, curve_points: int) -> dict[str, Any]:
    """Values only (deviations "NaN"); `curve_points` 0 leaves the curves out."""
    if problem_type == REGRESSION:
        scores = regression_scores(aggregate.regression_sums())
        return {
            name: {"value": _finite(scores[name]), "standard_deviation": NO_STD}
            for name in REGRESSION_SCALARS
            if name in scores
        }
    matrix = aggregate.confusion()
    out: dict[str, Any] = {"confusion_matrix": full_matrix(matrix, problem_type == BINARY)}
    if problem_type == BINARY:
        scores = _binary_scores(matrix)
        # The current analyzer's best constant classifier predicts the majority class of the
        # ground truth (older analyzers: always 1); a tie goes to the positive class.
        actual_positives = sum(matrix.get(POSITIVE, {}).values())
        actual_negatives = sum(matrix.get(NEGATIVE, {}).values())
        majority = POSITIVE if actual_positives >= actual_negatives else NEGATIVE
        constant = _binary_scores(_constant_matrix(matrix, majority))
        for name in ("recall", "precision", "accuracy", "f0_5", "f1", "f2"):
            scores[f"{name}_best_constant_classifier"] = constant[name]
        _, negatives, positives = aggregate.score_histogram()
        if len(negatives):
            auc, fprs, tprs, precisions, recalls = roc_and_pr(negatives, positives)
            scores["auc"] = auc
        if len(negatives) and curve_points:
            keep = _keep_indexes(len(fprs), curve_points)
            out["receiver_operating_characteristic_curve"] = {
                "false_positive_rates": [_finite(v) for v in _thin(fprs, keep)],
                "true_positive_rates": [_finite(v) for v in _thin(tprs, keep)],
            }
            keep = _keep_indexes(len(precisions), curve_points)
            out["precision_recall_curve"] = {
                "precisions": [_finite(v) for v in _thin(precisions, keep)],
                "recalls": [_finite(v) for v in _thin(recalls, keep)],
            }
    else:
        scores = _multiclass_scores(matrix)
        counts = {actual: sum(row.values()) for actual, row in matrix.items()}
        if counts:
            # Multiclass best constant classifier: always predict the most frequent actual class
            # (ties go to the smallest label so the choice is deterministic).
            majority = min(counts, key=lambda c: (-counts[c], c))
            constant = _multiclass_scores(_constant_matrix(matrix, majority))
            for name, value in constant.items():
                scores[f"{name}_best_constant_classifier"] = value
    for name in SCALARS[problem_type]:
        if name in scores:
            out[name] = {"value": _finite(scores[name]), "standard_deviation": NO_STD}
    return out


def scalar_values(statistics: Mapping[str, Any]) -> dict[str, float]:
    """Flatten `{name: {"value": v, ...}}` into `{name: v}` for the finite scalar metrics."""
    values = {}
    for name, entry in statistics.items():
        if isinstance(entry, dict) and "value" in entry and isinstance(entry["value"], (int, float)):
            values[name] = float(entry["value"])
    return values
