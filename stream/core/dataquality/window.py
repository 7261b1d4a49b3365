"""A window's data-quality record: its profile (see `parts`) judged against the model's baseline,
with SageMaker's violations, the drift distances, the drifted features, and the same per segment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stream.core.dataquality.checks import (
    COMPLETENESS,
    DATA_TYPE,
    DRIFT,
    EXTRA_COLUMN,
    MISSING_COLUMN,
    VALUES,
    Measured,
    check,
    shifted_by,
)
from stream.core.dataquality.parts import QualityPart, WindowProfile, profile_of
from stream.core.dataquality.profile import DataProfile
from stream.core.dataquality.reference import QualityBaseline
from stream.core.outputs import violation_id, window_doc
from stream.core.state import METRICS, VIOLATION, Output

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


@dataclass
class Judged:
    """A profile judged against a baseline: its entries of constraint_violations.json, the drift
    distances (largest first), the ChiSquared p-values and the drifted features."""

    profile: DataProfile
    entries: list[dict[str, str]]
    measured: Measured
    distances: dict[str, float]
    drifted: list[str]

    @classmethod
    def of(cls, profile: DataProfile, baseline: QualityBaseline) -> Judged:
        """Judge the profile (its features put in the baseline's order first)."""
        ordered = profile.reordered(list(baseline.names))
        measured = Measured()
        entries = check(ordered, baseline.constraints, baseline.statistics, baseline.min_rows, measured)
        distances = dict(sorted(measured.distances.items(), key=lambda kv: (-kv[1], kv[0])))
        tested = measured.p_values
        over = {e["feature_name"] for e in entries if e["constraint_check_type"] == DRIFT}
        # by distance, largest first, then the ChiSquared ones by p-value, smallest first
        drifted = [n for n in distances if n in over] + sorted((n for n in tested if n in over), key=tested.__getitem__)
        return cls(ordered, entries, measured, distances, drifted)

    def summary(self) -> dict[str, Any]:
        """The drift part of a record."""
        return {
            "drift": self.distances,
            **({"drift_p_values": self.measured.p_values} if self.measured.p_values else {}),
            "drifted_features": self.drifted,
        }


def quality_record(
    model: str,
    version: str,
    window: dict[str, Any],
    profile: WindowProfile,
    baseline: QualityBaseline,
    segment_cap: int = 20,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A window's data-quality record (its statistics.json, constraint_violations.json entries,
    drift distances, warnings, and drift per segment value) and its violation records (a
    segment's drift violations name the segment)."""
    judged = Judged.of(profile.whole, baseline)
    ordered, entries = judged.profile, judged.entries
    small = ordered.rows < baseline.min_rows
    record: dict[str, Any] = {
        "model": model,
        "model_version": version,
        "window": window,
        "row_count": ordered.rows,
        "unreadable_rows": ordered.unreadable,
        "status": "violations" if entries else ("insufficient_data" if small or not ordered.rows else "ok"),
        "violation_count": len(entries),
        "violations": entries,
        **judged.summary(),
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
    violations = [_violation(model, version, window, entry, judged) for entry in entries]
    for (key, value), part in sorted(profile.capped(segment_cap).items()):
        seen = Judged.of(part, baseline)
        drifts_here = [e for e in seen.entries if e["constraint_check_type"] == DRIFT]
        record.setdefault("segments", {}).setdefault(key, {})[value] = {
            "row_count": part.rows,
            "violation_count": len(drifts_here),
            **seen.summary(),
        }
        for entry in drifts_here:
            violations.append(_violation(model, version, window, entry, seen, (key, value)))
    return record, violations


def _violation(
    model: str,
    version: str,
    window: dict[str, Any],
    entry: dict[str, str],
    judged: Judged,
    segment: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A violation record of the violations topic (naming the segment, when it is a segment's)."""
    name, kind = entry["feature_name"], entry["constraint_check_type"]
    what = f"{kind}\x1f{name}" + (f"\x1f{segment[0]}\x1f{segment[1]}" if segment else "")
    out = {
        "violation_id": violation_id(model, version, window, what),
        "model": model,
        "model_version": version,
        "window": window,
        "metric_name": f"{METRIC_OF_CHECK.get(kind, 'feature')}_{name}",
        **entry,
        "data_quality": True,
        "row_count": judged.profile.rows,
        "drifted_features": judged.drifted,
    }
    if segment is not None:
        out["segment"] = {"key": segment[0], "value": segment[1]}
        out["description"] = f"Segment {segment[0]}={segment[1]}: {entry['description']}"
    value = judged.measured.values.get((name, kind))  # the numbers of the checks that have them
    if value is not None:
        out["value"], out["threshold"] = value
    return out


def window_quality(
    model: str,
    version: str,
    start: float,
    end: float,
    parts: list[QualityPart],
    baseline: QualityBaseline,
    segment_cap: int = 20,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`quality_record` of a window from its parts (in partition order)."""
    window = window_doc(QUALITY_KIND, start, end)
    return quality_record(model, version, window, profile_of(parts, segment_cap), baseline, segment_cap)


def drifted_note(outputs: list[Output]) -> str:
    """The drifted features of the data-quality record among these outputs (JSON; "" for none)."""
    for out in outputs:
        if out.channel == METRICS and out.value.get("window", {}).get("kind") == QUALITY_KIND:
            return json.dumps(out.value["drifted_features"])
    return ""


def name_drifted(outputs: list[Output], drifted: list[str] | None) -> None:
    """Name, in each model-quality violation among the outputs, the features that drifted in its
    window (by distance: see `quality_record`); nothing when the window had no data-quality record."""
    if drifted is None:
        return
    for out in outputs:
        if out.channel == VIOLATION and not out.value.get("data_quality"):
            out.value["drifted_features"] = drifted
