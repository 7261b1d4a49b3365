"""SageMaker model-quality `constraints.json`: validation and the checks it implies (files are read
by `stream.constraint_files`)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stream.errors import ConstraintsError
from stream.core.metrics import SCALARS
from stream.core.records import ProblemType

# The operator names the condition that is a *violation*.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
}
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

    def violated(self, value: float) -> bool:
        """Whether `value` breaks this constraint."""
        return OPERATORS[self.comparison_operator](value, self.threshold)

    def describe(self, value: float) -> str:
        """SageMaker's wording, e.g. `Metric f2 with 0.6 was LessThanThreshold 0.625`."""
        return f"Metric {self.metric_name} with {value:g} was {self.comparison_operator} {self.threshold:g}"


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
