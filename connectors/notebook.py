"""truthstream from Python (a notebook, a script): `baseline`, `check` and `replay` on pandas objects.

The same computation as the commands of the same names, without files: a DataFrame in, plain
dicts (SageMaker's documents) and DataFrames out. See docs/python.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stream.core.baseline import Baseline, suggest_constraints
from stream.core.constraints import ConstraintSet, parse_constraints
from stream.core.metrics import STATISTICS_KEY, scalar_values
from stream.core.outputs import sagemaker_violations
from stream.core.records import BINARY, PROBLEM_TYPES, ProblemType, canonical_class
from stream.errors import InputError, RecordError
from stream.settings import Settings


@dataclass(frozen=True)
class BaselineResult:
    """What `baseline` found: SageMaker's statistics.json and a suggested constraints.json (as
    dicts, ready for `json.dump`), and calibration.json when scores were given."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]
    calibration: dict[str, Any] | None

    @property
    def metrics(self) -> pd.Series:
        """The scalar metrics, by name."""
        body = next(v for k, v in self.statistics.items() if k.endswith("_metrics"))
        return pd.Series(scalar_values(body), dtype=float)


@dataclass(frozen=True)
class CheckResult:
    """What `check` found: the data set's statistics.json and one row per broken constraint."""

    statistics: dict[str, Any]
    violations: pd.DataFrame

    @property
    def passed(self) -> bool:
        """No constraint is broken."""
        return self.violations.empty


@dataclass(frozen=True)
class ReplayResult:
    """What `replay` recomputed: one row per closed window, per violation and per segment window."""

    windows: pd.DataFrame
    violations: pd.DataFrame
    segments: pd.DataFrame


def _canonical(values: pd.Series, column: str, problem_type: ProblemType) -> list[str]:
    mapping: dict[Any, str] = {}
    for value in pd.unique(values):
        plain = value.item() if isinstance(value, np.generic) else value
        try:
            mapping[value] = canonical_class(plain, column, problem_type)
        except RecordError as exc:
            raise InputError(f"column {column!r}: {exc.reason}") from None
    return [mapping[v] for v in values.tolist()]


def _accumulate(
    data: pd.DataFrame,
    problem_type: str,
    label: str,
    prediction: str,
    probability: str | None,
    event_id: str | None,
) -> Baseline:
    if problem_type not in PROBLEM_TYPES:
        raise InputError(f"problem_type {problem_type!r}: one of {', '.join(PROBLEM_TYPES)}")
    kind: ProblemType = problem_type  # type: ignore[assignment]
    for column in (label, prediction, probability, event_id):
        if column is not None and column not in data.columns:
            raise InputError(f"no column {column!r}; the data has {', '.join(map(str, data.columns))}")
    if data.empty:
        raise InputError("the data set has no rows")
    if data[[label, prediction]].isna().any().any():
        raise InputError(f"missing values in {label!r} or {prediction!r}")
    if probability is not None and problem_type != BINARY:
        raise InputError("probability applies to BinaryClassification only")
    baseline = Baseline(kind)
    ids = data[event_id].astype(str).tolist() if event_id else [str(i) for i in range(len(data))]
    scores = data[probability].astype(float).to_numpy() if probability else None
    baseline.add(_canonical(data[label], label, kind), _canonical(data[prediction], prediction, kind), scores, ids)
    return baseline


def baseline(
    data: pd.DataFrame,
    problem_type: str,
    *,
    label: str = "label",
    prediction: str = "prediction",
    probability: str | None = None,
    event_id: str | None = None,
    margin_stds: float = 3.0,
    fallback_margin: float = 0.1,
) -> BaselineResult:
    """SageMaker's statistics.json and a suggested constraints.json of a labelled data set, as
    `truthstream baseline` writes them (with `probability`, also calibration.json).

    >>> frame = pd.DataFrame({"label": [1, 0, 1, 1], "prediction": [1, 0, 0, 1]})
    >>> float(baseline(frame, "BinaryClassification").metrics["accuracy"])
    0.75
    """
    if margin_stds < 0 or fallback_margin < 0:
        raise InputError("margin_stds and fallback_margin must not be negative")
    found = _accumulate(data, problem_type, label, prediction, probability, event_id)
    statistics = found.statistics()
    return BaselineResult(
        statistics,
        suggest_constraints(statistics, margin_stds, fallback_margin),
        found.calibration_doc() if probability else None,
    )


def check(
    data: pd.DataFrame,
    constraints: Mapping[str, Any] | ConstraintSet,
    *,
    label: str = "label",
    prediction: str = "prediction",
    event_id: str | None = None,
) -> CheckResult:
    """Judge a labelled data set against constraints, as SageMaker's monitoring run (and
    `truthstream check`) would: its statistics and one row per broken constraint."""
    rules = constraints if isinstance(constraints, ConstraintSet) else parse_constraints(constraints, "constraints")
    found = _accumulate(data, rules.problem_type, label, prediction, None, event_id)
    statistics = found.statistics()
    broken = sagemaker_violations(statistics[STATISTICS_KEY[rules.problem_type]], rules)
    rows = [
        {
            "metric_name": violation["metric_name"],
            "constraint_check_type": violation["constraint_check_type"],
            "value": value,
            "threshold": rule.threshold,
            "description": violation["description"],
        }
        for rule, value, violation in broken
    ]
    columns = ["metric_name", "constraint_check_type", "value", "threshold", "description"]
    return CheckResult(statistics, pd.DataFrame(rows, columns=columns))


def replay(
    settings: Settings | None = None,
    *,
    start: str | float | None = None,
    end: str | float | None = None,
    **overrides: Any,
) -> ReplayResult:
    """Recompute the tumbling windows of inference time `[start, end)` from the topics (times as
    ISO 8601 text or epoch seconds; None: open), as `truthstream replay` does. `settings` default
    to the environment's (TRUTHSTREAM_*); keyword `overrides` replace single settings, e.g.
    `broker="kafka://host:9092"`, `window_seconds=600`, `constraints="constraints.json"`."""
    from connectors.replay import replay as recompute
    from connectors.replay_tables import segments_frame, violations_frame, windows_frame
    from stream.core.timefmt import parse_time

    chosen = Settings.from_env(**overrides) if settings is None else dataclasses.replace(settings, **overrides)

    def seconds(value: str | float | None) -> float | None:
        return None if value is None else parse_time(value)

    result = recompute(chosen, chosen.catalog(), seconds(start), seconds(end))
    return ReplayResult(
        windows_frame(result.records),
        violations_frame({"constraints": result.violations}),
        segments_frame(result.records),
    )


@dataclass(frozen=True)
class DataQualityResult:
    """SageMaker's data-quality statistics.json and constraints.json of a data set (dicts, as the
    service writes them: `stream.core.javajson.dumps` gives its exact text), with a table view."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]

    @property
    def features(self) -> pd.DataFrame:
        """One row per feature: its type, counts, completeness and numeric summary."""
        rows = []
        for feature in self.statistics["features"]:
            body = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
            common = body.get("common", {})
            present, missing = common.get("num_present", 0), common.get("num_missing", 0)
            rows.append(
                {
                    "name": feature["name"],
                    "inferred_type": feature["inferred_type"],
                    "num_present": present,
                    "num_missing": missing,
                    "completeness": present / (present + missing) if present + missing else 1.0,
                    **{k: body.get(k) for k in ("mean", "std_dev", "min", "max", "distinct_count")},
                }
            )
        return pd.DataFrame(rows).set_index("name")


def _profile(frame: pd.DataFrame, names: list[str] | None = None) -> Any:
    from stream.core.dataquality.profile import DataProfile
    from stream.core.dataquality.types import as_text

    if frame.empty:
        raise InputError("the DataFrame has no rows")
    columns = [str(c) for c in frame.columns]
    profile = DataProfile(list(names) if names else columns)
    for row in frame.itertuples(index=False, name=None):
        profile.add_row([None if v is None or v is pd.NA or v is pd.NaT else as_text(v) for v in row])
    return profile


def data_quality_baseline(frame: pd.DataFrame, analyzer: str = "2022") -> DataQualityResult:
    """`truthstream baseline --data-quality` on a DataFrame: every column a feature. Read a CSV with
    `dtype=str, keep_default_na=False` to keep each cell's text (296.0 is Fractional, 296 Integral)."""
    from stream.core.dataquality.suggest import suggest_constraints

    profile = _profile(frame)
    return DataQualityResult(profile.statistics(), suggest_constraints(profile, analyzer))


def data_quality_check(
    frame: pd.DataFrame, constraints: Mapping[str, Any], statistics: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """`truthstream check --data-quality` on a DataFrame whose columns are in the baseline's order (named
    by position from `constraints`, as the service names captured columns): the violations, one row each
    (feature_name, constraint_check_type, description)."""
    from stream.core.dataquality.checks import check as judge

    names = [str(f["name"]) for f in constraints.get("features", [])]
    found = judge(_profile(frame, names[: len(frame.columns)] or None), constraints, statistics)
    return pd.DataFrame(found, columns=["feature_name", "constraint_check_type", "description"])
