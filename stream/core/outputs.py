"""The output records: a metrics record per window evaluation, violation records, dead letters."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.constraints import ConstraintSet
from stream.core.aggregate import WindowAggregate
from stream.core.metrics import STATISTICS_KEY, compute_metrics, scalar_values
from stream.core.records import RawMessage
from stream.core.timefmt import format_time

COUNT_NAMES = ("late", "expired_inferences", "expired_labels", "duplicates", "rejected")
STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_data"
STATUS_UNCONSTRAINED = "no_constraints"
STATUS_VIOLATIONS = "violations"


def dead_letter(msg: RawMessage, reason: str, field: str | None) -> dict[str, Any]:
    """A dead-letter record: the original bytes, where they came from, and why they were refused."""
    value = msg.value or b""
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "reason": reason,
        "field": field,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "key": msg.key.decode("utf-8", "replace") if msg.key else None,
        "value": text,
        "value_base64": base64.b64encode(value).decode("ascii"),
        "value_bytes": len(value),
    }


def window_doc(kind: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    """The `window` object of metrics and violation records."""
    return {"kind": kind, "start": format_time(start), "end": format_time(end), **extra}


def violation_id(model: str, version: str, window: Mapping[str, Any], metric: str) -> str:
    """Deterministic id: the same model, version, window and metric always give the same id."""
    parts = [model, version, window["kind"], window["start"], window["end"], str(window.get("sequence", "")), metric]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def judge(
    record: Mapping[str, Any], constraints: ConstraintSet | None, min_samples: int
) -> tuple[str, list[dict[str, Any]]]:
    """Status and violation records of a metrics record under a set of constraints.

    The worker judges each window once with its configured constraints; a backtest judges
    the same records again with candidate constraints.
    """
    n = record["sample_count"]
    if n < min_samples or n == 0:
        return STATUS_INSUFFICIENT, []
    if constraints is None:
        return STATUS_UNCONSTRAINED, []
    model, version, window = record["model"], record["model_version"], record["window"]
    violations = [
        {
            "violation_id": violation_id(model, version, window, constraint.metric_name),
            "model": model,
            "model_version": version,
            "window": window,
            "metric_name": constraint.metric_name,
            "constraint_check_type": constraint.comparison_operator,
            "threshold": constraint.threshold,
            "value": value,
            "sample_count": n,
            "description": constraint.describe(value),
        }
        for constraint, value in constraints.check(scalar_values(record[STATISTICS_KEY[record["problem_type"]]]))
    ]
    return (STATUS_VIOLATIONS if violations else STATUS_OK), violations


def evaluate(
    model: str,
    version: str,
    window: dict[str, Any],
    agg: WindowAggregate,
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
        "sample_count": agg.sample_count,
        "status": "",
        "violation_count": 0,
        "problem_type": problem_type,
        "counts": {name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        STATISTICS_KEY[problem_type]: compute_metrics(agg, problem_type, config.curve_points),
    }
    record["status"], violations = judge(record, catalog.constraints(model), config.min_samples)
    record["violation_count"] = len(violations)
    # SageMaker's constraint_violations.json entries, so a record alone can be written out as a report.
    record["violations"] = [
        {k: v[k] for k in ("metric_name", "constraint_check_type", "description")} for v in violations
    ]
    return record, violations
