"""What truthstream knows about each model: its problem type, its constraints and its calibration."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.core.calibration import Calibration, MulticlassCalibration
from stream.core.constraints import ConstraintSet
from stream.core.dataquality.reference import QualityBaseline
from stream.core.records import ProblemType
from stream.errors import RecordError


@dataclass(frozen=True)
class Catalog:
    """Per-model constraints, with a default set and a default problem type for the rest.

    >>> catalog = Catalog(problem_types={"price": "Regression"})
    >>> catalog.problem_type("price"), catalog.problem_type("churn"), catalog.constraints("churn")
    ('Regression', 'BinaryClassification', None)
    """

    default_problem_type: ProblemType = "BinaryClassification"
    default: ConstraintSet | None = None
    per_model: dict[str, ConstraintSet] = field(default_factory=dict)
    problem_types: dict[str, ProblemType] = field(default_factory=dict)
    classes: dict[str, frozenset[str]] = field(default_factory=dict)
    default_calibration: Calibration | MulticlassCalibration | None = None
    calibrations: dict[str, Calibration | MulticlassCalibration] = field(default_factory=dict)
    default_segments: tuple[str, ...] = ()
    segments: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_quality: QualityBaseline | None = None
    qualities: dict[str, QualityBaseline] = field(default_factory=dict)

    def check_class(self, model: str, value: str, field_name: str) -> None:
        """Raise RecordError if the model has a class list and `value` (canonical) is not in it."""
        allowed = self.classes.get(model)
        if allowed is not None and value not in allowed:
            raise RecordError(
                f"class {value!r} is not one of {model}'s: {', '.join(sorted(allowed))}", field_name, model
            )

    def constraints(self, model: str) -> ConstraintSet | None:
        """The constraints that judge `model`, if any."""
        return self.per_model.get(model, self.default)

    def calibration(self, model: str) -> Calibration | MulticlassCalibration | None:
        """The calibration of the model's scores (for label-free estimates), if any."""
        return self.calibrations.get(model, self.default_calibration)

    def quality(self, model: str) -> QualityBaseline | None:
        """The model's data-quality baseline (its inputs are profiled per window when it has one)."""
        return self.qualities.get(model, self.default_quality)

    def segment_keys(self, model: str) -> tuple[str, ...]:
        """The inference fields (JMESPath) whose values split the model's metrics."""
        return self.segments.get(model, self.default_segments)

    def problem_type(self, model: str) -> ProblemType:
        """The model's problem type: an explicit per-model setting, else its constraints', else the default."""
        if model in self.problem_types:
            return self.problem_types[model]
        found = self.constraints(model)
        return found.problem_type if found else self.default_problem_type
