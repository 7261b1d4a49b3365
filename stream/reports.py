"""The output records: metrics per window evaluation, violations, dead letters."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from stream.catalog import Catalog
from stream.aggregate import WindowAggregate
from stream.metrics import STATISTICS_KEY, compute_metrics, scalar_values
from stream.records import RawMessage
from stream.settings import Settings
from stream.timefmt import format_time

COUNT_NAMES = ("late", "expired_inferences", "expired_labels", "duplicates", "rejected")
STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient_data"
STATUS_UNCONSTRAINED = "no_constraints"


def dead_letter(msg: RawMessage, reason: str, field: str | None) -> dict[str, Any]:
    """A dead-letter record: the original bytes, where they came from, and why they were refused."""
    value = msg.value or b""
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"reason": reason, "field": field, "topic": msg.topic, "partition": msg.partition,
            "offset": msg.offset, "key": msg.key.decode("utf-8", "replace") if msg.key else None,
            "value": text, "value_base64": base64.b64encode(value).decode("ascii"),
            "value_bytes": len(value)}


def window_doc(kind: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    """The `window` object of metrics and violation records."""
    return {"kind": kind, "start": format_time(start), "end": format_time(end), **extra}


def violation_id(model: str, version: str, window: Mapping[str, Any], metric: str) -> str:
    """Deterministic id: the same model, version, window and metric always give the same id."""
    parts = [model, version, window["kind"], window["start"], window["end"], str(window.get("sequence", "")), metric]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def evaluate(model: str, version: str, window: dict[str, Any], agg: WindowAggregate,
             counts: Mapping[str, int], settings: Settings, catalog: Catalog
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics record and violation records for one window evaluation."""
    problem_type = catalog.problem_type(model)
    statistics = compute_metrics(agg, problem_type, settings.curve_points)
    n = agg.sample_count
    constraints = catalog.constraints(model)
    if n < settings.min_samples or n == 0:
        status = STATUS_INSUFFICIENT
    elif constraints is None:
        status = STATUS_UNCONSTRAINED
    else:
        status = STATUS_OK
    violations = []
    if status == STATUS_OK and constraints is not None:
        for constraint, value in constraints.check(scalar_values(statistics)):
            violations.append({
                "violation_id": violation_id(model, version, window, constraint.metric_name),
                "model": model, "model_version": version, "window": window,
                "metric_name": constraint.metric_name,
                "constraint_check_type": constraint.comparison_operator,
                "threshold": constraint.threshold, "value": value, "sample_count": n,
                "description": constraint.describe(value),
            })
    record = {
        "model": model, "model_version": version, "window": window, "sample_count": n,
        "status": "violations" if violations else status, "violation_count": len(violations),
        "problem_type": problem_type,
        "counts": {name: int(counts.get(name, 0)) for name in COUNT_NAMES},
        STATISTICS_KEY[problem_type]: statistics,
    }
    return record, violations
