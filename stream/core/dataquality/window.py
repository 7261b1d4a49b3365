"""A window's data quality in the stream: the feature rows of its inferences, kept per input
partition in offset order and folded `FOLD_ROWS` at a time into a profile, then merged in partition
order when the window's inferences are complete and judged against the model's baseline.

A part is (summary, rows): `summary` the profile of its first k * FOLD_ROWS rows, `rows` the rest, as
JSON texts. Folding continues the summary row by row, so a part is the sequential profile of its
rows whatever the batches were. Parts merge in ascending partition: a part without a summary is
added row by row, one with a summary merged as Deequ merges states. A window of up to 2,050 rows
has no summary anywhere (FOLD_ROWS is 2,051), so its statistics are those `baseline` gives for its
rows in (partition, offset) order, to the last digit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.core.dataquality.capture import capture_rows
from stream.core.dataquality.checks import (
    COMPLETENESS,
    DATA_TYPE,
    DRIFT,
    EXTRA_COLUMN,
    MISSING_COLUMN,
    VALUES,
    check,
    chi_squared,
    drift_distance,
    settings_of,
    shifted_by,
)
from stream.core.dataquality.profile import DataProfile
from stream.core.dataquality.types import STRING, UNKNOWN
from stream.core.timefmt import format_time
from stream.errors import RecordError

FOLD_ROWS = 2051  # rows folded at once: more than a sketch's first level, so small windows stay exact
UNREADABLE = "null"  # the row of an instance whose input could not be read
QUALITY_KIND = "data_quality"  # window.kind of a window's data-quality record
# SageMaker's CloudWatch names (feature_baseline_drift_<f>, feature_non_null_<f>); the others are truthstream's
METRIC_OF_CHECK = {
    DRIFT: "feature_baseline_drift",
    COMPLETENESS: "feature_non_null",
    DATA_TYPE: "feature_data_type",
    VALUES: "feature_categorical_values",
    MISSING_COLUMN: "feature_missing",
    EXTRA_COLUMN: "feature_extra",
}


@dataclass(frozen=True)
class QualityBaseline:
    """A model's data-quality baseline: constraints.json, statistics.json (None: no drift check) and
    the feature names in column order (positional inputs are named by them)."""

    constraints: Mapping[str, Any]
    statistics: Mapping[str, Any] | None = None
    names: tuple[str, ...] = ()
    min_rows: int = 0

    @classmethod
    def of(
        cls, constraints: Mapping[str, Any], statistics: Mapping[str, Any] | None = None, min_rows: int = 0
    ) -> QualityBaseline:
        """The baseline of these files; the names come from the statistics, else the constraints."""
        source = statistics if statistics is not None else constraints
        names = tuple(str(f["name"]) for f in source.get("features", []) if isinstance(f, Mapping) and "name" in f)
        return cls(constraints, statistics, names, min_rows)

    def named(self, values: list[Any]) -> dict[str, Any]:
        """A positional row by name: the baseline's names, then `_c<i>` beyond them (Spark's)."""
        names = self.names
        return {(names[i] if i < len(names) else f"_c{i}"): v for i, v in enumerate(values)}


def feature_row(doc: Mapping[str, Any], baseline: QualityBaseline) -> str:
    """The row of a plain inference record: its `features` object (by name) or array (by position),
    as JSON text; a record without features has every feature missing."""
    features = doc.get("features")
    if isinstance(features, list):
        features = baseline.named(features)
    elif not isinstance(features, dict):
        features = {}
    return json.dumps(features, separators=(",", ":"), ensure_ascii=False)


def capture_feature_rows(doc: dict[str, Any], baseline: QualityBaseline) -> list[str]:
    """The rows of a SageMaker capture record (output columns first, named by position), one per
    instance; an input that cannot be read gives `UNREADABLE` rows, counted apart."""
    try:
        rows = capture_rows(doc)
    except RecordError:
        return [UNREADABLE]
    return [json.dumps(baseline.named(row), separators=(",", ":"), ensure_ascii=False) for row in rows]


def add_rows(profile: DataProfile, rows: Iterable[str]) -> None:
    """Add rows (JSON texts) to a profile, in order."""
    for row in rows:
        values = json.loads(row)
        if isinstance(values, dict):
            profile.add_record(values)
        else:
            profile.add_unreadable()


@dataclass
class QualityPart:
    """One input partition's part of a window: the profile of its folded rows, and the rows after."""

    summary: str | None = None
    rows: list[str] = field(default_factory=list)

    def folded(self) -> QualityPart:
        """The part with every whole FOLD_ROWS of its rows folded into its summary."""
        whole = len(self.rows) - len(self.rows) % FOLD_ROWS
        if not whole:
            return self
        return QualityPart(fold(self.summary, self.rows[:whole]), self.rows[whole:])


def fold(summary: str | None, rows: list[str]) -> str:
    """The summary continued with these rows."""
    profile = DataProfile.load(json.loads(summary)) if summary else DataProfile([])
    add_rows(profile, rows)
    return json.dumps(profile.state(), separators=(",", ":"))


def profile_of(parts: Iterable[QualityPart]) -> DataProfile:
    """The window's profile from its parts, in ascending partition order."""
    profile: DataProfile | None = None
    for part in parts:
        if part.summary:
            loaded = DataProfile.load(json.loads(part.summary))
            if profile is None:
                profile = loaded
            else:
                profile.merge(loaded)
        if profile is None:
            profile = DataProfile([])
        add_rows(profile, part.rows)
    return profile if profile is not None else DataProfile([])


def _id(model: str, version: str, window: Mapping[str, Any], what: str) -> str:
    parts = [model, version, window["kind"], window["start"], window["end"], what]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def drifts(profile: DataProfile, baseline: QualityBaseline) -> dict[str, float]:
    """Each comparable feature's drift distance (by the method its settings name), largest first."""
    found = {}
    statistics = {f["name"]: f for f in (baseline.statistics or {}).get("features", [])}
    for constraint in baseline.constraints.get("features", []):
        name = constraint.get("name")
        feature, base = profile.features.get(name), statistics.get(name)
        if feature is None or base is None or not feature.present:
            continue
        settings = settings_of(baseline.constraints, constraint)
        if settings.get("evaluate_constraints") != "Enabled" or settings.get("perform_comparison") != "Enabled":
            continue
        categorical = constraint.get("inferred_type", UNKNOWN) == STRING
        method = settings.get("categorical_drift_method", "LInfinity") if categorical else settings["comparison_method"]
        if categorical and method == "ChiSquared":  # a p-value, not a distance: see `p_values`
            continue
        distance = drift_distance(base, feature, "Robust" if method in ("Robust", "LInfinity") else "Simple")
        if distance is not None:
            found[name] = distance[0]
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def quality_record(
    model: str, version: str, window: dict[str, Any], profile: DataProfile, baseline: QualityBaseline
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A window's data-quality record (its statistics.json, constraint_violations.json entries,
    drift distances and warnings) and its violation records."""
    ordered = profile.reordered(list(baseline.names))
    entries = check(ordered, baseline.constraints, baseline.statistics, baseline.min_rows)
    distances = drifts(ordered, baseline) if baseline.statistics is not None else {}
    thresholds = _thresholds(baseline.constraints)
    small = ordered.rows < baseline.min_rows
    tested = p_values(ordered, baseline) if baseline.statistics is not None else {}
    over = {e["feature_name"] for e in entries if e["constraint_check_type"] == DRIFT}
    # by distance, largest first, then the ChiSquared ones by p-value, smallest first
    drifted = [n for n in distances if n in over] + sorted((n for n in tested if n in over), key=tested.__getitem__)
    record: dict[str, Any] = {
        "model": model,
        "model_version": version,
        "window": window,
        "row_count": ordered.rows,
        "unreadable_rows": ordered.unreadable,
        "status": "violations" if entries else ("insufficient_data" if small or not ordered.rows else "ok"),
        "violation_count": len(entries),
        "violations": entries,
        "drift": distances,
        **({"drift_p_values": tested} if tested else {}),
        "drifted_features": drifted,
        "statistics": ordered.statistics(),
    }
    if small:
        record["drift_skipped"] = "too_few_rows"
    shift = shifted_by(ordered, baseline.constraints)
    if shift:
        record["warning"] = (
            f"the columns look shifted by {shift} against the baseline: captures put the model's output "
            "columns first; build the baseline from data with them in front (see docs/data-quality.md)"
        )
        record["shifted_by"] = shift
    violations = []
    for entry in entries:
        name, kind = entry["feature_name"], entry["constraint_check_type"]
        out = {
            "violation_id": _id(model, version, window, f"{kind}\x1f{name}"),
            "model": model,
            "model_version": version,
            "window": window,
            "metric_name": f"{METRIC_OF_CHECK.get(kind, 'feature')}_{name}",
            **entry,
            "data_quality": True,
            "row_count": ordered.rows,
            "drifted_features": drifted,
        }
        value = _value(ordered, baseline, entry, distances, thresholds)
        if value is not None:
            out["value"], out["threshold"] = value
        violations.append(out)
    return record, violations


def window_quality(
    model: str, version: str, start: float, end: float, parts: list[QualityPart], baseline: QualityBaseline
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`quality_record` of a window from its parts (in partition order)."""
    window = {"kind": QUALITY_KIND, "start": format_time(start), "end": format_time(end)}
    return quality_record(model, version, window, profile_of(parts), baseline)


def instance_rows(doc: dict[str, Any], baseline: QualityBaseline, capture: bool, count: int) -> list[list[str]]:
    """The feature rows of each of a record's `count` instances (a capture whose input does not hold
    one row per instance gives them all to the first)."""
    if not capture:
        return [[feature_row(doc, baseline)]]
    rows = capture_feature_rows(doc, baseline)
    if len(rows) == count:
        return [[row] for row in rows]
    return [rows] + [[] for _ in range(count - 1)]


def statistics_of(baseline: QualityBaseline, name: str) -> dict[str, Any]:
    """The baseline statistics of one feature (empty when it has none)."""
    return next((dict(f) for f in (baseline.statistics or {}).get("features", []) if f.get("name") == name), {})


def _thresholds(constraints: Mapping[str, Any]) -> dict[str, float]:
    """Each feature's drift threshold (categorical features their own when set)."""
    out = {}
    for constraint in constraints.get("features", []):
        settings = settings_of(constraints, constraint)
        categorical = constraint.get("inferred_type", UNKNOWN) == STRING
        own = categorical and "categorical_comparison_threshold" in settings
        key = "categorical_comparison_threshold" if own else "comparison_threshold"
        out[str(constraint.get("name"))] = float(settings[key])
    return out


def p_values(profile: DataProfile, baseline: QualityBaseline) -> dict[str, float]:
    """The ChiSquared p-value of each categorical feature whose settings name that method."""
    found = {}
    statistics = {f["name"]: f for f in (baseline.statistics or {}).get("features", [])}
    for constraint in baseline.constraints.get("features", []):
        name = constraint.get("name")
        feature, base = profile.features.get(name), statistics.get(name)
        settings = settings_of(baseline.constraints, constraint)
        if feature is None or base is None or settings.get("categorical_drift_method") != "ChiSquared":
            continue
        if constraint.get("inferred_type") == STRING and (tested := chi_squared(base, feature)) is not None:
            found[name] = tested[1]
    return found


def _value(
    profile: DataProfile,
    baseline: QualityBaseline,
    entry: Mapping[str, Any],
    distances: Mapping[str, float],
    thresholds: Mapping[str, float],
) -> tuple[float, float] | None:
    """(observed, threshold) of a violation, where it has numbers."""
    name, kind = entry["feature_name"], entry["constraint_check_type"]
    constraint = next((c for c in baseline.constraints.get("features", []) if c.get("name") == name), None)
    feature = profile.features.get(name)
    if constraint is None or feature is None or not feature.types.total:
        return None
    settings = settings_of(baseline.constraints, constraint)
    if kind == DRIFT and name in distances:
        return distances[name], thresholds[name]
    if kind == DRIFT and (tested := chi_squared(statistics_of(baseline, name), feature)) is not None:
        return tested[1], thresholds[name]
    if kind == COMPLETENESS:
        return feature.completeness(), float(constraint["completeness"])
    if kind == DATA_TYPE:
        expected = constraint.get("inferred_type", UNKNOWN)
        return feature.types.of(expected) / feature.types.total, float(settings["datatype_check_threshold"])
    return None
