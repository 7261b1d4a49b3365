"""The output records: a metrics record per window evaluation, violation records, dead letters."""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from typing import Any

from stream.core.aggregate import WindowAggregate
from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.constraints import Constraint, ConstraintSet
from stream.core.estimates import (
    ESTIMATED_PREFIX,
    estimate_errors,
    estimated_metrics,
    expected_confusion,
)
from stream.core.intervals import add_intervals
from stream.core.metrics import STATISTICS_KEY, compute_metrics, scalar_values
from stream.core.records import RawMessage
from stream.core.segments import capped
from stream.core.timefmt import format_time

COUNT_NAMES = (
    "late",
    "expired_inferences",
    "expired_labels",
    "evicted_inferences",
    "evicted_labels",
    "duplicates",
    "conflicts",
    "rejected",
    "late_features",  # inferences whose features came after their window's data-quality record
)
# A dead letter carries at most this much of the refused message (text and base64 of the same
# bytes, about 10 KiB of JSON): far under any broker's message limit, enough to see what it was.
DEAD_LETTER_VALUE_BYTES = 4096
DEAD_LETTER_KEY_CHARS = 1024
MAX_REASON_CHARS = 500
VALUE_RULE = "value"  # SageMaker's: a value beyond the threshold is a violation
INTERVAL_RULE = "interval"  # only a confidence interval wholly beyond the threshold is
STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_data"
STATUS_UNCONSTRAINED = "no_constraints"
STATUS_VIOLATIONS = "violations"
STATUS_ACCOUNTING = "accounting"
STATUS_NOT_ESTIMATED = "not_estimated"
PROVISIONAL_KIND = "provisional"  # window.kind of a window's record when its inferences are complete
# A tumbling window's records carry a revision: 0 its provisional record, 1 its final one (a
# consumer keeps the highest revision per model, version and window start).
FINAL_REVISION = 1


def dead_letter(msg: RawMessage, reason: str, field: str | None) -> dict[str, Any]:
    """A dead-letter record: why the message was refused, where it came from, and its first
    DEAD_LETTER_VALUE_BYTES bytes with the whole value's length and SHA-256, so that every dead
    letter fits the topic whatever the message held."""
    value = msg.value or b""
    head = value[:DEAD_LETTER_VALUE_BYTES]
    try:
        text: str | None = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end still reads
        text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    key = msg.key.decode("utf-8", "replace") if msg.key else None
    return {
        "reason": reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 3] + "...",
        "field": field if field is None or len(field) <= MAX_REASON_CHARS else field[:MAX_REASON_CHARS],
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": key if key is None or len(key) <= DEAD_LETTER_KEY_CHARS else key[:DEAD_LETTER_KEY_CHARS],
        "value": text,
        "value_base64": base64.b64encode(head).decode("ascii"),
        "value_bytes": len(value),
        "value_sha256": hashlib.sha256(value).hexdigest(),
        "value_truncated": len(value) > len(head),
    }


def window_doc(kind: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    """The `window` object of metrics and violation records."""
    return {"kind": kind, "start": format_time(start), "end": format_time(end), **extra}


def violation_id(model: str, version: str, window: Mapping[str, Any], metric: str) -> str:
    """Deterministic id: the same model, version, window and metric always give the same id."""
    parts = [model, version, window["kind"], window["start"], window["end"], str(window.get("sequence", "")), metric]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def judge(
    record: Mapping[str, Any], constraints: ConstraintSet | None, min_samples: int, rule: str = VALUE_RULE
) -> tuple[str, list[dict[str, Any]]]:
    """Status and violation records of a metrics record under a set of constraints.

    The worker judges each window once with its configured constraints; a backtest judges
    the same records again with candidate constraints. With the `interval` rule a metric
    violates only when its whole confidence interval breaks the constraint (a metric without
    an interval is judged by its value).
    """
    n = record["sample_count"]
    if n < min_samples or n == 0:
        return STATUS_INSUFFICIENT, []
    if constraints is None:
        return STATUS_UNCONSTRAINED, []
    model, version, window = record["model"], record["model_version"], record["window"]
    statistics = record[STATISTICS_KEY[record["problem_type"]]]
    violations = [
        {
            "violation_id": violation_id(model, version, window, constraint.metric_name),
            "model": model,
            "model_version": version,
            "window": window,
            **report,
            "threshold": constraint.threshold,
            "value": value,
            "sample_count": n,
            **_interval(statistics[constraint.metric_name], record),
        }
        for constraint, value, report in sagemaker_violations(statistics, constraints)
        if rule == VALUE_RULE or beyond_noise(constraint, statistics[constraint.metric_name])
    ]
    return (STATUS_VIOLATIONS if violations else STATUS_OK), violations


def beyond_noise(constraint: Constraint, entry: Mapping[str, Any]) -> bool:
    """Whether the metric's whole confidence interval breaks the constraint (True without an interval)."""
    interval = entry.get("confidence_interval")
    if not isinstance(interval, list):
        return True
    return constraint.violated(interval[0]) and constraint.violated(interval[1])


def within_noise(record: Mapping[str, Any], constraints: ConstraintSet | None) -> list[str]:
    """The metrics whose value breaks its constraint while their confidence interval reaches the
    threshold: not violations under the `interval` rule (listed in the record)."""
    if constraints is None:
        return []
    statistics = record[STATISTICS_KEY[record["problem_type"]]]
    return [
        constraint.reported_name
        for constraint, _, _ in sagemaker_violations(statistics, constraints)
        if not beyond_noise(constraint, statistics[constraint.metric_name])
    ]


def sagemaker_violations(
    statistics: Mapping[str, Any], constraints: ConstraintSet
) -> list[tuple[Constraint, float, dict[str, str]]]:
    """The constraints a statistics body breaks, each with its value and its entry of SageMaker's
    constraint_violations.json (`metric_name`, `constraint_check_type`, `description`)."""
    return [
        (
            constraint,
            value,
            {
                "metric_name": constraint.reported_name,
                "constraint_check_type": constraint.comparison_operator,
                "description": constraint.describe(value, _deviation(statistics[constraint.metric_name])),
            },
        )
        for constraint, value in constraints.check(scalar_values(statistics))
    ]


def _interval(entry: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The metric's confidence interval and level, for its violation record (when the window has them)."""
    if "confidence_interval" not in entry:
        return {}
    return {"confidence_interval": entry["confidence_interval"], "confidence_level": record.get("confidence_level")}


def _deviation(entry: Mapping[str, Any]) -> float | None:
    deviation = entry.get("standard_deviation")
    return float(deviation) if isinstance(deviation, (int, float)) and not isinstance(deviation, bool) else None


def evaluate(
    model: str,
    version: str,
    window: dict[str, Any],
    aggregate: WindowAggregate,
    counts: Mapping[str, int],
    config: CoreConfig,
    catalog: Catalog,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics record and violation records for one window evaluation."""
    problem_type = catalog.problem_type(model)
    record: dict[str, Any] = {
        "model": model,
        "model_version": version,
        "window": window,
        "sample_count": aggregate.sample_count,
        "status": "",
        "violation_count": 0,
        "problem_type": problem_type,
        "counts": {name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        STATISTICS_KEY[problem_type]: compute_metrics(aggregate, problem_type, config.curve_points),
    }
    if window["kind"] == "tumbling":
        record["revision"] = FINAL_REVISION
    coverage = aggregate.coverage()
    if coverage is not None:
        record["labels"] = coverage
    statistics = record[STATISTICS_KEY[problem_type]]
    if config.confidence_level:
        record["confidence_level"] = config.confidence_level
        add_intervals(statistics, aggregate, problem_type, config.confidence_level)
    if aggregate.estimates:  # the estimate over all the window's inferences, beside the realized metrics
        statistics.update(estimated_metrics(aggregate, config.confidence_level, problem_type))
        record["estimated_confusion_matrix"] = expected_confusion(aggregate, problem_type)
        record["estimate_error"] = estimate_errors(statistics, problem_type)
    constraints = catalog.constraints(model)
    record["status"], violations = judge(record, constraints, config.min_samples, config.violation_rule)
    if config.violation_rule == INTERVAL_RULE and record["status"] not in (STATUS_INSUFFICIENT, STATUS_UNCONSTRAINED):
        record["within_noise"] = within_noise(record, constraints)
    record["violation_count"] = len(violations)
    # SageMaker's constraint_violations.json entries, so a record alone can be written out as a report.
    record["violations"] = [
        {k: v[k] for k in ("metric_name", "constraint_check_type", "description")} for v in violations
    ]
    if aggregate.segments:
        record["segments"], segment_violations = segment_blocks(record, aggregate, config, catalog)
        violations += segment_violations
    return record, violations


def segment_violation(violation: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    """A violation of a window's segment: it names the segment, and its id differs from the window's."""
    metric = f"{violation['metric_name']}\x1f{key}\x1f{value}"
    return {
        **violation,
        "violation_id": violation_id(violation["model"], violation["model_version"], violation["window"], metric),
        "segment": {"key": key, "value": value},
        "description": f"Segment {key}={value}: {violation['description']}",
    }


def segment_blocks(
    record: Mapping[str, Any], aggregate: WindowAggregate, config: CoreConfig, catalog: Catalog
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Per segment key and value (at most `segment_cap` values a key, the rest `__other__`): its
    samples, status and metrics (with intervals), judged by the model's constraints from
    `segment_min_samples` samples on; its violations name the segment."""
    model, problem_type = record["model"], record["problem_type"]
    key_of = STATISTICS_KEY[problem_type]
    out: dict[str, dict[str, Any]] = {}
    violations: list[dict[str, Any]] = []
    for (name, value), part in sorted(capped(aggregate.segments, config.segment_cap).items()):
        statistics = compute_metrics(part, problem_type, 0)
        if config.confidence_level:
            add_intervals(statistics, part, problem_type, config.confidence_level)
        view = {**record, "sample_count": part.sample_count, key_of: statistics}
        status, found = judge(view, catalog.constraints(model), config.segment_threshold, config.violation_rule)
        violations += [segment_violation(v, name, value) for v in found]
        out.setdefault(name, {})[value] = {
            "sample_count": part.sample_count,
            "status": status,
            "violation_count": len(found),
            key_of: statistics,
        }
    return out, violations


def provisional_record(
    model: str,
    version: str,
    window: dict[str, Any],
    aggregate: WindowAggregate,
    config: CoreConfig,
    catalog: Catalog,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A window's provisional record, published once when event time passes its end (its inferences
    are complete; its labels may come until end + grace, when the final `tumbling` record supersedes
    it): `inference_count` its inferences, `sample_count` the pairs joined by then (as in every
    record: joined pairs), its label coverage
    so far and, for a calibrated model, its label-free estimates (`estimated_*`) judged by the model's
    constraints (an `estimated_<metric>` against `<metric>`'s threshold; violations marked
    `"estimated": true`). `estimated` says whether it holds estimates; without, its status is
    `not_estimated`."""
    problem_type = catalog.problem_type(model)
    statistics = estimated_metrics(aggregate, config.confidence_level, problem_type)
    record: dict[str, Any] = {
        "model": model,
        "model_version": version,
        "window": window,
        "inference_count": aggregate.arrivals.get("i", 0),
        "sample_count": aggregate.sample_count,
        "status": STATUS_NOT_ESTIMATED,
        "violation_count": 0,
        "problem_type": problem_type,
        "revision": 0,
        "estimated": bool(statistics),
        STATISTICS_KEY[problem_type]: statistics,
    }
    coverage = aggregate.coverage()
    if coverage is not None:
        record["labels"] = coverage
    violations: list[dict[str, Any]] = []
    if statistics:
        record["estimated_confusion_matrix"] = expected_confusion(aggregate, problem_type)
        if config.confidence_level:
            record["confidence_level"] = config.confidence_level
        # An estimate stands for every inference of the window: judged against min_samples as such.
        judged = {
            **record,
            "sample_count": record["inference_count"],
            STATISTICS_KEY[problem_type]: _unprefixed(statistics),
        }
        record["status"], violations = judge(
            judged, catalog.constraints(model), config.min_samples, config.violation_rule
        )
        for v in violations:
            v["metric_name"] = ESTIMATED_PREFIX + v["metric_name"]
            v["estimated"] = True
            v["violation_id"] = violation_id(model, version, window, v["metric_name"])
    record["violation_count"] = len(violations)
    record["violations"] = [
        {k: v[k] for k in ("metric_name", "constraint_check_type", "description")} for v in violations
    ]
    return record, violations


def _unprefixed(statistics: Mapping[str, Any]) -> dict[str, Any]:
    return {name.removeprefix(ESTIMATED_PREFIX): entry for name, entry in statistics.items()}


def accounting_record(model: str, counts: Mapping[str, int], now: float, catalog: Catalog) -> dict[str, Any]:
    """A metrics record that only carries counts (late, expired, evicted, duplicates, rejected) of a
    model that has no window to carry them, or of records that name no model (`model` null):
    published at once, so that no count waits unseen and none is charged to another model.
    `window.kind` is `accounting`; `at` is the stream's event time when it was published."""
    return {
        "model": model or None,
        "model_version": "",
        "window": {"kind": "accounting", "at": format_time(now) if math.isfinite(now) else None},
        "sample_count": 0,
        "status": STATUS_ACCOUNTING,
        "violation_count": 0,
        "problem_type": catalog.problem_type(model) if model else None,
        "counts": {name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        "violations": [],
    }
