"""The baseline job's core: SageMaker statistics.json and a suggested constraints.json.

`Baseline` takes validated columns in chunks into one `WindowAggregate`, the worker's, with
its 5 subsamples of about 80 % (a row's membership decided by a hash of its event id, or of
its row number when the data set has none), so memory is bounded, the standard deviations
are the same whatever the chunk size, and a data set fed to the worker with the same ids
gives the same deviations. Metrics come from the same `compute_metrics` the worker uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from stream.core.aggregate import WindowAggregate, subsample_mask
from stream.core.calibration import Calibration
from stream.core.estimates import count_estimates, estimate_errors, estimated_metrics, expected_confusion
from stream.core.constraints import SECTIONS
from stream.errors import InputError, RecordError
from stream.core.metrics import NO_STD, SCALARS, STATISTICS_KEY, compute_metrics
from stream.core.records import POSITIVE, REGRESSION, ProblemType, number

FULL_CURVE_POINTS = 1001
# Metrics that alert when they rise; every other suggested metric alerts when it falls.
ERROR_METRICS = frozenset({"false_positive_rate", "false_negative_rate", "mae", "mse", "rmse"})
UNIT_INTERVAL = frozenset(SCALARS["BinaryClassification"] + SCALARS["MulticlassClassification"])


class Baseline:
    """Accumulates a labelled data set and turns it into SageMaker's statistics."""

    def __init__(
        self, problem_type: ProblemType, resolution: float = 1e-4, calibration: Calibration | None = None
    ) -> None:
        self.problem_type, self.calibration = problem_type, calibration
        self.regression = problem_type == REGRESSION
        self.full = WindowAggregate(resolution)
        self.rows = 0

    def add(
        self, y_true: Sequence[str], y_pred: Sequence[str], scores: Sequence[float] | None, ids: Sequence[str]
    ) -> None:
        """Count a chunk of canonical labels, predictions and (binary) scores, with the rows' event ids."""
        self.rows += len(y_true)
        masks = np.fromiter((subsample_mask(i) for i in ids), dtype=np.int64, count=len(ids))
        self.full.add_columns(y_true, y_pred, scores, self.regression, masks)
        if self.calibration is not None and scores is not None:  # label-free estimates, as the worker's
            values = np.asarray(scores, dtype=float)
            predicted = np.asarray(y_pred, dtype=object) == POSITIVE
            count_estimates(self.full, predicted, self.calibration.calibrate(values), values)

    def statistics(self) -> dict[str, Any]:
        """The statistics.json document: every metric with its value and standard deviation."""
        if not self.rows:
            raise InputError("the data set has no rows")
        return {
            "version": 0.0,
            "dataset": {
                "item_count": self.rows,
                "evaluation_time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            STATISTICS_KEY[self.problem_type]: compute_metrics(self.full, self.problem_type, FULL_CURVE_POINTS),
        }

    def estimates(self, level: float) -> dict[str, Any]:
        """With a calibration: the label-free estimate of the data set's metrics (`estimated_*`, as the
        worker computes them per window), the expected confusion matrix, and realized minus estimated."""
        body = estimated_metrics(self.full, level)
        realized = compute_metrics(self.full, self.problem_type, 0)
        return {
            "dataset": {"item_count": self.rows},
            "confidence_level": level,
            "estimated_metrics": body,
            "estimated_confusion_matrix": expected_confusion(self.full),
            "estimate_error": estimate_errors({**realized, **body}),
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
