"""Change points as records: what a window feeds its change detectors, and the event published
when one finds a change (on the violations topic, `constraint_check_type` "ChangeDetected")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream.core.aggregate import WindowAggregate
from stream.core.changes import CHANGE_CHECK_TYPE, Change
from stream.core.outputs import violation_id
from stream.core.segments import capped
from stream.core.timefmt import format_time


def outcomes(aggregate: WindowAggregate, segment_cap: int) -> list[tuple[str, dict[str, str] | None, int, int]]:
    """(detector name, segment, samples, wrong predictions) of a classifier's window and of each of
    its segments as its record shows them (at most `segment_cap` values a key): what its change
    detectors are fed ("" is the whole window's).

    >>> window = WindowAggregate(1e-4)
    >>> window.add_columns(["1", "0", "1"], ["1", "1", "1"], None, False)
    >>> outcomes(window, 20)
    [('', None, 3, 1)]
    """
    out: list[tuple[str, dict[str, str] | None, int, int]] = [("", None, *_wrong(aggregate))]
    for (name, value), part in sorted(capped(aggregate.segments, segment_cap).items()):
        out.append((f"{name}={value}", {"key": name, "value": value}, *_wrong(part)))
    return out


def _wrong(aggregate: WindowAggregate) -> tuple[int, int]:
    cells = aggregate.all_cells()
    n = sum(cells.values())
    return n, n - sum(count for (actual, predicted), count in cells.items() if actual == predicted)


SCORE_METRIC = "mean_score"  # what the label-free change detector watches


def change_event(
    record: Mapping[str, Any],
    change: Change,
    segment: dict[str, str] | None,
    delta: float,
    metric: str = "accuracy",
) -> dict[str, Any]:
    """A change detected in a window (or one of its segments): on the violations topic, with
    `constraint_check_type` "ChangeDetected", the estimated start of the new regime and the metric
    before and after it: `accuracy` (from the outcomes) or, label-free, `mean_score`."""
    before, after = change.means()
    if metric == "accuracy":  # the outcomes' mean is the error rate
        before, after = (None if v is None else 1 - v for v in (before, after))
    since = format_time(change.since)
    where = f"Segment {segment['key']}={segment['value']}: c" if segment else "C"
    shown = ["n/a" if v is None else f"{v:.4f}" for v in (before, after)]
    name = "change" if metric == "accuracy" else f"change\x1f{metric}"
    event: dict[str, Any] = {
        "violation_id": violation_id(
            record["model"],
            record["model_version"],
            record["window"],
            f"{name}\x1f{segment['key']}\x1f{segment['value']}" if segment else name,
        ),
        "model": record["model"],
        "model_version": record["model_version"],
        "window": record["window"],
        "metric_name": metric,
        "constraint_check_type": CHANGE_CHECK_TYPE,
        "description": f"{where}hange in {metric} since about {since}: {shown[0]} before, {shown[1]} after "
        f"(ADWIN, delta {delta:g})",
        "threshold": before,
        "value": after,
        "sample_count": change.after[0],
        "change": {
            "since": since,
            "before": {metric: before, "samples": change.before[0]},
            "after": {metric: after, "samples": change.after[0]},
            "detector": "ADWIN",
            "delta": delta,
        },
    }
    if metric != "accuracy":
        event["label_free"] = True
    if segment:
        event["segment"] = segment
    return event
