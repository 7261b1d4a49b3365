"""A data-quality monitoring run: a window's profile judged against a baseline's statistics.json
and constraints.json, giving SageMaker's violations (`feature_name`, `constraint_check_type`,
`description`) in baseline column order.

The wording of data_type_check, completeness_check and baseline_drift_check is the service's
(seen in its files); no public file shows its wording for missing_column_check,
extra_column_check, categorical_values_check or categorical drift: theirs here is truthstream's
(MISSING, EXTRA, DOMAIN). `is_non_negative` is suggested but, as in the service, not checked.
A feature's `monitoring_config_overrides` replace the file's settings for that feature."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.core.dataquality.profile import DataProfile, FeatureProfile
from stream.core.dataquality.sketch import QuantileSketch, linf_distance, robust
from stream.core.dataquality.types import NUMERIC, STRING, UNKNOWN
from stream.core.javajson import java_double

DATA_TYPE, COMPLETENESS, DRIFT = "data_type_check", "completeness_check", "baseline_drift_check"
VALUES, MISSING_COLUMN, EXTRA_COLUMN = "categorical_values_check", "missing_column_check", "extra_column_check"
MISSING = "Missing column requirement is not met. The baseline column {name} is not in the data."
EXTRA = "Extra column requirement is not met. The column {name} is not in the baseline."
CHI_SQUARED = "Baseline drift p-value: {p} is below threshold: {threshold} (ChiSquared)"
DOMAIN = (
    "Data domain requirement is not met. Expected: {expected}% of values in the baseline domain. "
    "Observed: Only {observed}%."
)
DEFAULTS: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "perform_comparison": "Enabled",
    "comparison_threshold": 0.1,
    "comparison_method": "Robust",
}


def _percent(share: float) -> str:
    return java_double(share * 100)


def settings_of(constraints: Mapping[str, Any], feature: Mapping[str, Any]) -> dict[str, Any]:
    """A feature's monitoring settings: the defaults, the file's monitoring_config (its
    distribution_constraints flattened) and the feature's overrides, later ones winning."""
    config = dict(constraints.get("monitoring_config") or {})
    config.update(config.pop("distribution_constraints", None) or {})
    overrides = dict(feature.get("monitoring_config_overrides") or {})
    overrides.update(overrides.pop("distribution_constraints", None) or {})
    return {**DEFAULTS, **config, **overrides}


def violation(feature: str, check: str, description: str) -> dict[str, str]:
    """One entry of constraint_violations.json."""
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def drift_distance(baseline: Mapping[str, Any], window: FeatureProfile, method: str) -> tuple[float, float] | None:
    """(distance, its uncorrected value) between the baseline feature's distribution and the
    window's, or None when they cannot be compared (no distribution on one side)."""
    numeric = (baseline.get("numerical_statistics") or {}).get("distribution", {}).get("kll")
    if numeric is not None and window.inferred_type in NUMERIC:
        base = QuantileSketch.from_doc(numeric["sketch"])
        simple = linf_distance(base, window.sketch)
        n, m = float(base.weight), float(window.sketch.weight)
    else:
        buckets = ((baseline.get("string_statistics") or {}).get("distribution") or {}).get("categorical")
        if buckets is None or window.high_cardinality or not window.categories:
            return None
        counts: dict[str, float] = {str(b["value"]): float(b["count"]) for b in buckets["buckets"]}
        n, m = math.fsum(counts.values()), float(sum(window.categories.values()))
        if not n or not m:
            return None
        keys = set(counts) | set(window.categories)
        simple = max(abs(counts.get(k, 0.0) / n - window.categories.get(k, 0) / m) for k in keys)
    if math.isnan(simple):
        return None
    return (robust(simple, n, m) if method == "Robust" else simple), simple


def _categories(baseline: Mapping[str, Any]) -> dict[str, float] | None:
    buckets = ((baseline.get("string_statistics") or {}).get("distribution") or {}).get("categorical")
    return None if buckets is None else {str(b["value"]): float(b["count"]) for b in buckets["buckets"]}


def chi_squared(baseline: Mapping[str, Any], window: FeatureProfile) -> tuple[float, float] | None:
    """(statistic, p-value) of the window's categories against the baseline's shares (Pearson's
    goodness of fit, as Deequ's ChiSquared): expected counts are the baseline's shares of the window's
    values in known categories; while the table is not valid for the test (two categories: an
    expected count under 10, Cochran; more: over 20 % of them under 5, Yates) the two of smallest
    expectation merge. None with fewer than 2 categories left or no value in a known category."""
    from scipy.stats import chisquare

    counts = _categories(baseline)
    if not counts or window.high_cardinality or not window.categories:
        return None
    known = sorted(counts)
    observed = [float(window.categories.get(k, 0)) for k in known]
    total, reference = sum(observed), math.fsum(counts.values())
    if not total or not reference:
        return None
    cells = sorted(([counts[k] / reference * total, o] for k, o in zip(known, observed)), key=lambda c: c[0])

    def valid() -> bool:
        if len(cells) == 2:
            return all(e >= 10 for e, _ in cells)
        return sum(1 for e, _ in cells if e < 5) <= 0.2 * len(cells)

    while len(cells) >= 2 and not valid():
        (e1, o1), (e2, o2) = cells[0], cells[1]
        cells = sorted([[e1 + e2, o1 + o2], *cells[2:]], key=lambda c: c[0])
    if len(cells) < 2:
        return None
    found = chisquare([o for _, o in cells], [e for e, _ in cells])
    return float(found.statistic), float(found.pvalue)


@dataclass
class Measured:
    """What a check measured besides its violations (the worker's record shows it): each compared
    feature's drift distance or, for ChiSquared, p-value (judged or not), and each violation's
    observed value and threshold, by (feature, check)."""

    distances: dict[str, float] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    values: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def check_feature(
    constraint: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    window: FeatureProfile,
    settings: dict[str, Any],
    drift: bool = True,
    measured: Measured | None = None,
) -> list[dict[str, str]]:
    """The violations of one feature present in the window (its drift judged only when `drift`,
    measured into `measured` either way)."""
    wanted_drift = drift or measured is not None  # measured for the caller even where not judged
    measured = measured if measured is not None else Measured()
    name, expected = constraint["name"], constraint.get("inferred_type", UNKNOWN)
    out: list[dict[str, str]] = []
    total = window.types.total
    if not total:
        return out
    if expected != UNKNOWN:
        share = window.types.of(expected) / total
        threshold = float(settings["datatype_check_threshold"])
        if share < threshold:
            measured.values[name, DATA_TYPE] = share, threshold
            out.append(
                violation(
                    name,
                    DATA_TYPE,
                    f"Data type match requirement is not met. Expected data type: {expected}, Expected match: "
                    f"{_percent(threshold)}%. Observed: Only {_percent(share)}% of data is {expected}.",
                )
            )
    if "completeness" in constraint:
        wanted, seen = float(constraint["completeness"]), window.completeness()
        if seen < wanted:
            measured.values[name, COMPLETENESS] = seen, wanted
            out.append(
                violation(
                    name,
                    COMPLETENESS,
                    f"Data completeness requirement is not met. Expected: {_percent(wanted)}%. "
                    f"Observed: Only {_percent(seen)}%.",
                )
            )
    if wanted_drift and settings.get("perform_comparison") == "Enabled" and baseline is not None:
        categorical = expected == STRING
        method = settings.get("categorical_drift_method", "LInfinity") if categorical else settings["comparison_method"]
        threshold = float(
            settings.get("categorical_comparison_threshold", settings["comparison_threshold"])
            if categorical
            else settings["comparison_threshold"]
        )
        if categorical and method == "ChiSquared":
            tested = chi_squared(baseline, window)
            if tested is not None:
                measured.p_values[name] = tested[1]
            if drift and tested is not None and tested[1] < threshold:
                measured.values[name, DRIFT] = tested[1], threshold
                p, limit = java_double(tested[1]), java_double(threshold)
                out.append(violation(name, DRIFT, CHI_SQUARED.format(p=p, threshold=limit)))
            found = None
        else:
            found = drift_distance(baseline, window, "Robust" if method in ("Robust", "LInfinity") else "Simple")
            if found is not None:
                measured.distances[name] = found[0]
        if drift and found is not None and found[0] > threshold:
            measured.values[name, DRIFT] = found[0], threshold
            out.append(
                violation(
                    name,
                    DRIFT,
                    f"Baseline drift distance: {java_double(found[0])} exceeds threshold: {java_double(threshold)}",
                )
            )
    domains = (constraint.get("string_constraints") or {}).get("domains")
    if domains and window.present and not window.high_cardinality:
        allowed = {str(d) for d in domains}
        share = sum(n for v, n in window.categories.items() if v in allowed) / window.present
        threshold = float(settings["domain_content_threshold"])
        if share < threshold:
            out.append(violation(name, VALUES, DOMAIN.format(expected=_percent(threshold), observed=_percent(share))))
    return out


def check(
    window: DataProfile,
    constraints: Mapping[str, Any],
    statistics: Mapping[str, Any] | None = None,
    min_rows: int = 0,
    measured: Measured | None = None,
) -> list[dict[str, str]]:
    """Every violation of the window, in the baseline's column order, then extra columns. A window
    of fewer than `min_rows` rows is too small for its distribution to be judged: no drift check
    (SageMaker has no such floor: its Robust correction only shrinks the distance). What was
    measured on the way goes into `measured`, if given."""
    baseline = {f["name"]: f for f in (statistics or {}).get("features", [])}
    known = set()
    out: list[dict[str, str]] = []
    for constraint in constraints.get("features", []):
        name = constraint["name"]
        known.add(name)
        settings = settings_of(constraints, constraint)
        if settings.get("evaluate_constraints") != "Enabled":
            continue
        feature = window.features.get(name)
        if feature is None or not feature.appeared:
            if window.rows:
                out.append(violation(name, MISSING_COLUMN, MISSING.format(name=name)))
            continue
        drift = window.rows >= min_rows
        out += check_feature(constraint, baseline.get(name), feature, settings, drift, measured)
    for name in [*window.names, *window.extra]:
        feature = window.features.get(name) or window.extra[name]
        if name not in known and feature.appeared:
            out.append(violation(name, EXTRA_COLUMN, EXTRA.format(name=name)))
    return out


def outcome(violations: list[dict[str, str]]) -> str:
    """The run's exit message, as the service words it."""
    if not violations:
        return "Completed: Job completed successfully with no violations."
    return f"CompletedWithViolations: Job completed successfully with {len(violations)} violations."


def shifted_by(window: DataProfile, constraints: Mapping[str, Any], most: int = 3) -> int:
    """How many places the window's columns look shifted against the baseline's (0: not): the
    shift, up to `most`, under which far more columns have their baseline type than unshifted.
    The usual cause is SageMaker's: captures put the model's output columns first, and a baseline
    without them in front reads every feature one place off."""
    expected = [f.get("inferred_type", UNKNOWN) for f in constraints.get("features", [])]
    columns = [window.features[name] for name in window.names] + list(window.extra.values())

    def mismatches(shift: int) -> int:
        pairs = [(kind, column) for kind, column in zip(expected, columns[shift:]) if column.types.total]
        return sum(1 for kind, column in pairs if kind != UNKNOWN and column.inferred_type != kind)

    unshifted = mismatches(0)
    if unshifted < 2:
        return 0
    best = min(range(1, most + 1), key=mismatches)
    return best if mismatches(best) * 4 < unshifted else 0
