"""What truthstream knows about each model: its problem type and its constraints."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.constraints import ConstraintSet, load_constraint_map
from stream.records import ProblemType
from stream.settings import Settings


@dataclass(frozen=True)
class Catalog:
    """Per-model constraints, with a default set and a default problem type for the rest."""

    default_problem_type: ProblemType = "BinaryClassification"
    default: ConstraintSet | None = None
    per_model: dict[str, ConstraintSet] = field(default_factory=dict)
    problem_types: dict[str, ProblemType] = field(default_factory=dict)

    def constraints(self, model: str) -> ConstraintSet | None:
        """The constraints that judge `model`, if any."""
        return self.per_model.get(model, self.default)

    def problem_type(self, model: str) -> ProblemType:
        """The model's problem type: an explicit per-model setting, else its constraints', else the default."""
        if model in self.problem_types:
            return self.problem_types[model]
        found = self.constraints(model)
        return found.problem_type if found else self.default_problem_type

    @classmethod
    def load(
        cls,
        constraints_spec: str,
        default_problem_type: ProblemType,
        problem_types: dict[str, ProblemType] | None = None,
    ) -> "Catalog":
        """Build a catalog from the `TRUTHSTREAM_CONSTRAINTS` value (see `load_constraint_map`)."""
        default, per_model = load_constraint_map(constraints_spec)
        return cls(default_problem_type, default, per_model, dict(problem_types or {}))

    @classmethod
    def from_settings(cls, settings: Settings) -> "Catalog":
        """The catalog the settings describe (constraints, default and per-model problem types)."""
        return cls.load(
            settings.constraints,
            settings.problem_type,  # type: ignore[arg-type]
            settings.problem_type_map(),
        )  # type: ignore[arg-type]
