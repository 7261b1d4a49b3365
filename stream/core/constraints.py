"""SageMaker model-quality `constraints.json`: validation and the checks it implies (files are read
by `stream.constraint_files`)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream.core.metrics import SCALARS
from stream.core.records import ProblemType
from stream.errors import ConstraintsError

# The operator names the condition that is a *violation*.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
}
# SageMaker's violation reports spell these four in camelCase (its statistics and constraints
# files, and truthstream's, in snake_case).
REPORTED_NAMES = {
    "true_positive_rate": "truePositiveRate",
    "true_negative_rate": "trueNegativeRate",
    "false_positive_rate": "falsePositiveRate",
    "false_negative_rate": "falseNegativeRate",
}
# A value equal to its threshold up to floating-point rounding compares as equal: a threshold
# suggested from a baseline is that baseline's value, recomputed in another order.
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-12
SECTIONS: dict[str, ProblemType] = {
    "binary_classification_constraints": "BinaryClassification",
    "multiclass_classification_constraints": "MulticlassClassification",
    "regression_constraints": "Regression",
}


@dataclass(frozen=True, slots=True)
class Constraint:
    """One threshold on one metric; `violated(value)` is true when the operator's condition holds."""

    metric_name: str
    threshold: float
    comparison_operator: str

    @property
    def reported_name(self) -> str:
        """The metric's name in violation reports, as SageMaker writes it."""
        return REPORTED_NAMES.get(self.metric_name, self.metric_name)

    def violated(self, value: float) -> bool:
        """Whether `value` breaks this constraint (a value within rounding of the threshold counts as equal)."""
        if math.isclose(value, self.threshold, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE):
            value = self.threshold
        return OPERATORS[self.comparison_operator](value, self.threshold)

    def describe(self, value: float, deviation: float | None = None) -> str:
        """SageMaker's wording at full precision, e.g. `Metric auc with 0.515363047795135 +/-
        0.012887520442626008 was LessThanThreshold '0.9395127993393898'` (no `+/-` without a deviation)."""
        spread = f" +/- {deviation!r}" if deviation is not None and math.isfinite(deviation) else ""
        return (
            f"Metric {self.reported_name} with {float(value)!r}{spread} was "
            f"{self.comparison_operator} '{float(self.threshold)!r}'"
        )


@dataclass(frozen=True, slots=True)
class ConstraintSet:
    """The constraints of one model: its problem type and one Constraint per metric."""

    problem_type: ProblemType
    constraints: tuple[Constraint, ...]
    source: str = ""

    def check(self, values: dict[str, float]) -> list[tuple[Constraint, float]]:
        """The constraints broken by these metric values (metrics absent from `values` are not judged)."""
        return [
            (c, values[c.metric_name])
            for c in self.constraints
            if c.metric_name in values and c.violated(values[c.metric_name])
        ]


def parse_constraints(doc: Any, source: str) -> ConstraintSet:
    """Validate a parsed constraints.json document; every problem names `source` and the key."""
    if not isinstance(doc, dict):
        raise ConstraintsError(source, "", "expected a JSON object at the top level")
    sections = [key for key in SECTIONS if key in doc]
    if len(sections) != 1:
        raise ConstraintsError(source, "", f"expected exactly one of {', '.join(SECTIONS)}; found {sections or 'none'}")
    section = sections[0]
    problem_type = SECTIONS[section]
    body = doc[section]
    if not isinstance(body, dict):
        raise ConstraintsError(source, section, "expected an object of metric name -> constraint")
    known = set(SCALARS[problem_type])
    constraints = []
    for name, spec in body.items():
        key = f"{section}.{name}"
        if name not in known:
            raise ConstraintsError(source, key, f"unknown metric for {problem_type}; known: {', '.join(sorted(known))}")
        if not isinstance(spec, dict):
            raise ConstraintsError(source, key, "expected an object with threshold and comparison_operator")
        op = spec.get("comparison_operator")
        if op not in OPERATORS:
            raise ConstraintsError(source, f"{key}.comparison_operator", f"{op!r} is not one of {', '.join(OPERATORS)}")
        threshold = spec.get("threshold")
        if isinstance(threshold, str):  # some writers quote numbers, e.g. "7.8e-1"
            try:
                threshold = float(threshold)
            except ValueError:
                pass
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ConstraintsError(
                source, f"{key}.threshold", f"expected a finite number, got {spec.get('threshold')!r}"
            )
        constraints.append(Constraint(name, float(threshold), op))
    return ConstraintSet(problem_type, tuple(constraints), source)
