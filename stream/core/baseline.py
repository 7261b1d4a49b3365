"""The baseline job's core: SageMaker statistics.json and a suggested constraints.json.

`Baseline` takes validated columns in chunks into one `WindowAggregate`, the worker's, with
its 5 subsamples of about 80 % (a row's membership decided by a hash of its event id, or of
its row number when the data set has none), so memory is bounded, the standard deviations
are the same whatever the chunk size, and a data set fed to the worker with the same ids
gives the same deviations. Metrics come from the same `compute_metrics` the worker uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from stream.core.aggregate import WindowAggregate, subsample_mask
from stream.core.calibration import (
    Calibration,
    MulticlassCalibration,
    fit_calibration,
    fit_multiclass_calibration,
)
from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.constraints import SECTIONS, ConstraintSet
from stream.core.estimates import (
    count_estimates,
    count_multiclass_estimate,
    estimate_errors,
    estimated_metrics,
    expected_confusion,
)
from stream.core.metrics import NO_STD, SCALARS, STATISTICS_KEY, compute_metrics
from stream.core.outputs import segment_blocks
from stream.core.records import BINARY, POSITIVE, REGRESSION, ProblemType, number
from stream.errors import ConfigError, InputError, RecordError

FULL_CURVE_POINTS = 1001
# Metrics that alert when they rise; every other suggested metric alerts when it falls.
ERROR_METRICS = frozenset({"false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"})
UNIT_INTERVAL = frozenset(SCALARS["BinaryClassification"] + SCALARS["MulticlassClassification"])


class Baseline:
    """Accumulates a labelled data set and turns it into SageMaker's statistics."""

    def __init__(
        self,
        problem_type: ProblemType,
        resolution: float = 1e-4,
        calibration: Calibration | MulticlassCalibration | None = None,
    ) -> None:
        self.problem_type, self.calibration, self.resolution = problem_type, calibration, resolution
        self.regression = problem_type == REGRESSION
        self.full = WindowAggregate(resolution)
        self.rows = 0
        # multiclass rows with class probabilities: per class, its probability's histogram against
        # "is this class" (to fit a one-vs-rest calibration), and how often each class was true
        self.per_class: dict[str, WindowAggregate] = {}
        self.truth_counts: Counter[str] = Counter()

    def add(
        self,
        y_true: Sequence[str],
        y_pred: Sequence[str],
        scores: Sequence[float] | None,
        ids: Sequence[str],
        probabilities: Sequence[Mapping[str, float]] | None = None,
        segments: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Count a chunk of canonical labels, predictions, (binary) scores or (multiclass) class
        probabilities, with the rows' event ids and, per segment key, their segment values."""
        masks = np.fromiter((subsample_mask(i) for i in ids), dtype=np.int64, count=len(ids))
        self.full.add_columns(y_true, y_pred, scores, self.regression, masks)
        if isinstance(self.calibration, Calibration) and scores is not None:  # label-free estimates
            values = np.asarray(scores, dtype=float)
            predicted = np.asarray(y_pred, dtype=object) == POSITIVE
            count_estimates(self.full, predicted, self.calibration.calibrate(values), values)
        if probabilities is not None:
            self._add_probabilities(y_true, y_pred, probabilities)
        for key, segment_values in (segments or {}).items():
            rows: dict[str, list[int]] = {}
            for i, value in enumerate(segment_values):
                rows.setdefault(value, []).append(i)
            for value, at in rows.items():
                self.full.segment(key, value).add_columns(
                    [y_true[i] for i in at],
                    [y_pred[i] for i in at],
                    None if scores is None else np.asarray(scores, dtype=float)[at],
                    self.regression,
                )
        self.rows += len(y_true)

    def _add_probabilities(
        self, y_true: Sequence[str], y_pred: Sequence[str], probabilities: Sequence[Mapping[str, float]]
    ) -> None:
        classes = set(self.per_class) | {c for row in probabilities for c in row} | set(y_true)
        for c in sorted(classes - set(self.per_class)):  # earlier rows gave it no probability: 0
            part = self.per_class[c] = WindowAggregate(self.resolution)
            part.scores = {0: self.rows - self.truth_counts[c], 1: self.truth_counts[c]}
            part.scores = {k: n for k, n in part.scores.items() if n}
        for c, part in self.per_class.items():
            values = np.fromiter((row.get(c, 0.0) for row in probabilities), dtype=float, count=len(probabilities))
            part.add_columns(["1" if t == c else "0" for t in y_true], ["1"] * len(y_true), values)
        self.truth_counts.update(y_true)
        if isinstance(self.calibration, MulticlassCalibration):
            for predicted, row in zip(y_pred, probabilities):
                count_multiclass_estimate(self.full, predicted, self.calibration.calibrate_vector(tuple(row.items())))

    def segments(
        self, constraints: ConstraintSet, cap: int, min_samples: int, level: float
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Per segment column and value (at most `cap` values a column, the rest `__other__`, as the
        worker's windows): samples, status and metrics, judged by `constraints` from `min_samples`
        rows; and the segments' violations."""
        window = {"kind": "dataset", "start": "", "end": ""}
        record = {"model": "", "model_version": "", "window": window, "problem_type": self.problem_type}
        config = CoreConfig(
            segment_cap=cap, segment_min_samples=min_samples, min_samples=min_samples, confidence_level=level
        )
        return segment_blocks(record, self.full, config, Catalog(default=constraints))

    def calibration_doc(self) -> dict[str, Any] | None:
        """calibration.json fitted on the data set's scores (binary) or class probabilities
        (multiclass), or None when it has none (or lacks one of the classes)."""
        try:
            if self.per_class:
                fitted, brier = fit_multiclass_calibration(self.per_class)
                return fitted.to_doc(brier)
            if self.problem_type == BINARY and self.full.scores:
                single, brier = fit_calibration(self.full)
                return single.to_doc(brier)
        except ConfigError:  # a class never (or always) true: nothing to calibrate it on
            return None
        return None

    def statistics(self) -> dict[str, Any]:
        """The statistics.json document: every metric with its value and standard deviation."""
        if not self.rows:
            raise InputError("the data set has no rows")
        return {
            "version": 0.0,
            "dataset": {
                "item_count": self.rows,
                "evaluation_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            STATISTICS_KEY[self.problem_type]: compute_metrics(self.full, self.problem_type, FULL_CURVE_POINTS),
        }

    def estimates(self, level: float) -> dict[str, Any]:
        """With a calibration: the label-free estimate of the data set's metrics (`estimated_*`, as the
        worker computes them per window), the expected confusion matrix, and realized minus estimated."""
        body = estimated_metrics(self.full, level, self.problem_type)
        realized = compute_metrics(self.full, self.problem_type, 0)
        return {
            "dataset": {"item_count": self.rows},
            "confidence_level": level,
            "estimated_metrics": body,
            "estimated_confusion_matrix": expected_confusion(self.full, self.problem_type),
            "estimate_error": estimate_errors({**realized, **body}, self.problem_type),
        }


def problem_type_of(statistics: dict[str, Any], source: str) -> ProblemType:
    """Which problem type a statistics.json describes (ours or SageMaker's)."""
    found = [p for p, key in STATISTICS_KEY.items() if key in statistics]
    if len(found) != 1:
        raise InputError(f"{source}: expected one of {', '.join(STATISTICS_KEY.values())} at the top level")
    return found[0]


def _finite(value: Any) -> float | None:
    """A finite number of a statistics file (SageMaker writes "NaN" as text), or None."""
    try:
        return number(value, "value")
    except RecordError:
        return None


def suggest_constraints(
    statistics: dict[str, Any], margin_stds: float, fallback_margin: float, source: str = "statistics.json"
) -> dict[str, Any]:
    """A constraints.json for the metrics of a statistics.json, with how each threshold was chosen.

    Quality metrics alert when they fall below `value - margin`, error metrics when they rise
    above `value + margin`. The margin is `margin_stds` standard deviations where the
    statistics have one, else `fallback_margin` times the value's magnitude (at least 0.01).
    Metrics of the best constant classifier describe a reference, not the model: no constraint.
    """
    problem_type = problem_type_of(statistics, source)
    section = next(k for k, v in SECTIONS.items() if v == problem_type)
    body = statistics[STATISTICS_KEY[problem_type]]
    constraints: dict[str, Any] = {}
    explained: dict[str, Any] = {}
    for name in SCALARS[problem_type]:
        entry = body.get(name)
        if name.endswith("_best_constant_classifier") or not isinstance(entry, dict):
            continue
        value = _finite(entry.get("value"))
        if value is None:
            continue
        std = _finite(entry.get("standard_deviation"))
        if std is not None:
            margin, rule = margin_stds * std, f"{margin_stds:g} standard deviations"
        else:
            margin, rule = (
                max(abs(value) * fallback_margin, 0.01),
                f"{fallback_margin:g} of the value (no standard deviation)",
            )
        rising = name in ERROR_METRICS
        threshold = value + margin if rising else value - margin
        if name in UNIT_INTERVAL:
            threshold = min(1.0, max(0.0, threshold))
        operator = "GreaterThanThreshold" if rising else "LessThanThreshold"
        constraints[name] = {"threshold": threshold, "comparison_operator": operator}
        explained[name] = {
            "baseline_value": value,
            "standard_deviation": std if std is not None else NO_STD,
            "margin": margin,
            "rule": rule,
        }
    return {
        "version": 0.0,
        section: constraints,
        # SageMaker's readers look only at the section above; this says how it was derived.
        "truthstream_suggestion": {
            "generated_by": "truthstream baseline",
            "margin_stds": margin_stds,
            "fallback_margin": fallback_margin,
            "metrics": explained,
        },
    }
