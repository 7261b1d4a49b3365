"""Replay results as tables: one row per (model, version, window), one per violation, and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from connectors.files import atomic_files
from connectors.replay import Replay
from stream.core.catalog import Catalog
from stream.core.changes import CHANGE_CHECK_TYPE
from stream.core.metrics import STATISTICS_KEY, scalar_values
from stream.core.outputs import COUNT_NAMES, judge, segment_violation
from stream.core.timefmt import format_time, window_span
from stream.errors import ConfigError


def windows_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, version, window): sample and record counts, status, label coverage, every
    scalar metric and the bounds of its confidence interval (`<metric>_lower`, `<metric>_upper`)."""
    rows = []
    for r in records:
        row = {
            "model": r["model"],
            "model_version": r["model_version"],
            "window_start": r["window"]["start"],
            "window_end": r["window"]["end"],
            "sample_count": r["sample_count"],
            "status": r["status"],
        }
        row.update({name: r["counts"][name] for name in COUNT_NAMES})
        labels = r.get("labels") or {}
        row.update(inferences=labels.get("inferences"), label_coverage=labels.get("coverage"))
        _metric_columns(row, r[STATISTICS_KEY[r["problem_type"]]])
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        for col in ("window_start", "window_end"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        frame = frame.sort_values(["model", "model_version", "window_start"]).reset_index(drop=True)
    return frame


def segments_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, version, window, segment key, segment value): samples, status, every scalar
    metric and its interval's bounds; empty when no record has segments."""
    rows = []
    for r in records:
        for key, values in (r.get("segments") or {}).items():
            for value, entry in values.items():
                row = {
                    "model": r["model"],
                    "model_version": r["model_version"],
                    "window_start": r["window"]["start"],
                    "window_end": r["window"]["end"],
                    "segment_key": key,
                    "segment_value": value,
                    "sample_count": entry["sample_count"],
                    "status": entry["status"],
                }
                _metric_columns(row, entry[STATISTICS_KEY[r["problem_type"]]])
                rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        for col in ("window_start", "window_end"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        order = ["model", "model_version", "segment_key", "segment_value", "window_start"]
        frame = frame.sort_values(order).reset_index(drop=True)
    return frame


def _metric_columns(row: dict[str, Any], statistics: dict[str, Any]) -> None:
    """Every scalar metric of a statistics body, and `<metric>_lower`/`_upper` where it has an interval."""
    row.update(scalar_values(statistics))
    for name, entry in statistics.items():
        interval = entry.get("confidence_interval") if isinstance(entry, dict) else None
        if isinstance(interval, list):
            row[f"{name}_lower"], row[f"{name}_upper"] = interval


VIOLATION_COLUMNS = [
    "constraints",
    "violation_id",
    "model",
    "model_version",
    "window_start",
    "window_end",
    "segment",
    "metric_name",
    "constraint_check_type",
    "threshold",
    "value",
    "sample_count",
    "description",
    "change_since",
]


def rejudge(
    records: list[dict[str, Any]],
    catalog: Catalog,
    min_samples: int,
    rule: str = "value",
    segment_min_samples: int | None = None,
) -> list[dict[str, Any]]:
    """The violations another set of constraints raises on the same windows and their segments (a
    backtest), under the violation rule (`value`, or `interval`: see `judge`)."""
    out = []
    for r in records:
        constraints = catalog.constraints(r["model"])
        out += judge(r, constraints, min_samples, rule)[1]
        for key, values in (r.get("segments") or {}).items():
            for value, entry in values.items():
                view = {**r, **entry}
                for v in judge(view, constraints, segment_min_samples or min_samples, rule)[1]:
                    out.append(segment_violation(v, key, value))
    return out


def violations_frame(violations: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per violation record, for each named set of constraints (column `constraints`)."""
    rows = [
        {
            "constraints": name,
            **{k: v[k] for k in VIOLATION_COLUMNS[1:4]},
            "window_start": v["window"]["start"],
            "window_end": v["window"]["end"],
            "segment": f"{v['segment']['key']}={v['segment']['value']}" if v.get("segment") else "",
            **{k: v[k] for k in VIOLATION_COLUMNS[7:-1]},
            "change_since": v["change"]["since"] if v.get("change") else None,
        }
        for name, found in violations.items()
        for v in found
    ]
    frame = pd.DataFrame(rows, columns=VIOLATION_COLUMNS)
    for col in ("window_start", "window_end", "change_since"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet (by extension) atomically: a failed write leaves nothing behind."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {path}: use a .csv or .parquet file name")
    with atomic_files(path) as (tmp,):
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError:
                raise ConfigError("Parquet output needs pyarrow: pip install 'truthstream[replay]'") from None


def quality_summary(records: list[dict[str, Any]]) -> list[str]:
    """Data quality beside the metrics: per model version, the windows profiled, those with
    violations, and the features that drifted (in how many windows, at most how far)."""
    lines: list[str] = []
    by_model: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        by_model.setdefault((r["model"], r["model_version"]), []).append(r)
    for (model, version), found in sorted(by_model.items()):
        bad = sum(1 for r in found if r["violation_count"])
        lines.append(f"data quality {model} v{version}: {len(found)} windows, {bad} with violations")
        drifted: dict[str, list[float]] = {}
        for r in found:
            for name in r.get("drifted_features", []):
                drifted.setdefault(name, []).append(r["drift"][name])
        for name, distances in sorted(drifted.items(), key=lambda kv: -max(kv[1])):
            lines.append(f"  {name} drifted in {len(distances)} windows (distance up to {max(distances):.3f})")
    return ["", *lines] if lines else []


def _rate(result: Replay) -> str:
    """How fast the replay went, and on how many processes."""
    rate = f"{result.messages / result.seconds:,.0f} records/s, " if result.seconds > 0 else ""
    return f"{rate}{result.processes} process{'es' if result.processes > 1 else ''}"


def summary(windows: pd.DataFrame, violations: pd.DataFrame, result: Replay) -> str:
    """A short text report: windows, violations per metric (per constraints file), worst windows."""
    lines = [
        f"replayed {result.messages} records in {result.seconds:.1f} s ({_rate(result)}): {len(windows)} closed windows"
        f" ({windows['model'].nunique() if not windows.empty else 0} models), "
        f"{result.open_windows} still open at the end of the span, {result.dead_letters} dead letters"
    ]
    if result.inference_times is not None:
        start = "the beginning" if result.read_from is None else f"record time {format_time(result.read_from)}"
        low, high = (format_time(t) for t in result.inference_times)
        lines.append(f"read from {start}: inferences of {low} to {high}")
    lines += quality_summary(result.quality)
    changes = violations[violations["constraint_check_type"] == CHANGE_CHECK_TYPE]
    violations = violations[violations["constraint_check_type"] != CHANGE_CHECK_TYPE]
    if not changes.empty:
        lines += ["", "changes detected:"]
        for _, v in changes.drop_duplicates("violation_id").iterrows():
            lines.append(f"  {v['model']} v{v['model_version']}  {v['description']}")
    if violations.empty:
        lines.append("no violations")
        return "\n".join(lines)
    index = ["metric_name", "segment"] if (violations["segment"] != "").any() else "metric_name"
    table = violations.pivot_table(
        index=index, columns="constraints", values="violation_id", aggfunc="count", fill_value=0
    )
    lines += ["", "violations per metric:", table.to_string()]
    worst = violations.assign(margin=(violations["value"] - violations["threshold"]).abs())
    worst = worst.sort_values("margin", ascending=False).drop_duplicates(["model", "window_start", "metric_name"])
    lines += ["", "worst windows:"]
    for _, v in worst.head(5).iterrows():
        when = window_span(v["window_start"].timestamp(), v["window_end"].timestamp())
        lines.append(f"  {v['model']} v{v['model_version']} {when}  {v['description']}")
    return "\n".join(lines)
