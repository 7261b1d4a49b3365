"""Replay and backtest: recompute history from the topics with the worker's own core.

The replay reads a time span of the inference and label topics (no consumer group, no
Redis), feeds it to the same Engine the worker runs, over an in-memory store, and
tabulates what the worker would have published: one row per (model, window) and one
per violation. Candidate constraints re-judge the same windows side by side.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from kafka import KafkaProducer

from connectors.files import atomic_files
from connectors.kafka import ensure_topics
from connectors.kafka_span import plan, raw, read, span_consumer
from stream.catalog import Catalog
from stream.engine import Engine
from stream.errors import TruthstreamError
from stream.memory_store import MemoryStore
from stream.metrics import STATISTICS_KEY, scalar_values
from stream.reports import COUNT_NAMES, judge
from stream.settings import Settings
from stream.timefmt import format_time


class ReplayError(TruthstreamError):
    """A replay cannot run as asked."""


@dataclass
class Replay:
    """What a replay found: the tumbling-window metrics records, and what stayed open."""

    records: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    messages: int = 0
    open_windows: int = 0


def replay(settings: Settings, catalog: Catalog, from_s: float | None, to_s: float | None) -> Replay:
    """Recompute every window that closes within the span. Labels are read until `to` plus the
    label grace, so that windows ending before `to` get the labels the live worker would have had."""
    settings = dataclasses.replace(settings, rolling_size=0)  # rolling windows are a live view only
    consumer = span_consumer(settings.bootstrap_servers)
    try:
        label_to = None if to_s is None else to_s + settings.label_grace
        spans = plan(consumer, settings.inference_topic, from_s, to_s)
        spans += plan(consumer, settings.label_topic, from_s, label_to)
        partitions = sum(1 for s in spans if s.tp.topic == settings.inference_topic)
        if sum(s.stop - s.start for s in spans) == 0:
            raise ReplayError(
                f"no records in {settings.inference_topic}/{settings.label_topic} between "
                f"{format_time(from_s) if from_s is not None else 'the beginning'} and "
                f"{format_time(to_s) if to_s is not None else 'the end'}"
            )
        store = MemoryStore(0, 1, settings.score_resolution)
        engine = Engine(settings, catalog, store, partitions)
        result = Replay()

        async def run() -> None:
            for batch in read(consumer, spans, desc="replaying"):
                result.messages += len(batch)
                report = await engine.process([raw(r) for r in batch])
                result.dead_letters += report.dead_letters
                _collect(store, settings, result)

        asyncio.run(run())
        result.open_windows = len(store.windows)
        return result
    finally:
        consumer.close()


def _collect(store: MemoryStore, settings: Settings, result: Replay) -> None:
    for out in store.outbox:
        if out.topic == settings.metrics_topic and out.value["window"]["kind"] == "tumbling":
            result.records.append(out.value)
    store.outbox.clear()


def windows_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (model, version, window): sample and record counts, status, every scalar metric."""
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
        row.update(scalar_values(r[STATISTICS_KEY[r["problem_type"]]]))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        for col in ("window_start", "window_end"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        frame = frame.sort_values(["model", "model_version", "window_start"]).reset_index(drop=True)
    return frame


VIOLATION_COLUMNS = [
    "constraints",
    "violation_id",
    "model",
    "model_version",
    "window_start",
    "window_end",
    "metric_name",
    "constraint_check_type",
    "threshold",
    "value",
    "sample_count",
    "description",
]


def violations_frame(records: list[dict[str, Any]], catalogs: dict[str, Catalog], min_samples: int) -> pd.DataFrame:
    """Every violation each named set of constraints raises on the same windows."""
    rows = []
    for name, catalog in catalogs.items():
        for r in records:
            _, violations = judge(r, catalog.constraints(r["model"]), min_samples)
            for v in violations:
                rows.append(
                    {
                        "constraints": name,
                        **{k: v[k] for k in VIOLATION_COLUMNS[1:4]},
                        "window_start": v["window"]["start"],
                        "window_end": v["window"]["end"],
                        **{k: v[k] for k in VIOLATION_COLUMNS[6:]},
                    }
                )
    frame = pd.DataFrame(rows, columns=VIOLATION_COLUMNS)
    for col in ("window_start", "window_end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet (by extension) atomically: a failed write leaves nothing behind."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ReplayError(f"--out {path}: use a .csv or .parquet file name")
    with atomic_files(path) as (tmp,):
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError:
                raise ReplayError("Parquet output needs pyarrow: pip install 'truthstream[replay]'") from None


def summary(windows: pd.DataFrame, violations: pd.DataFrame, result: Replay) -> str:
    """A short text report: windows, violations per metric (per constraints file), worst windows."""
    lines = [
        f"replayed {result.messages} records: {len(windows)} closed windows"
        f" ({windows['model'].nunique() if not windows.empty else 0} models), "
        f"{result.open_windows} still open at the end of the span, {result.dead_letters} dead letters"
    ]
    if violations.empty:
        lines.append("no violations")
        return "\n".join(lines)
    table = violations.pivot_table(
        index="metric_name", columns="constraints", values="violation_id", aggfunc="count", fill_value=0
    )
    lines += ["", "violations per metric:", table.to_string()]
    worst = violations.assign(margin=(violations["value"] - violations["threshold"]).abs())
    worst = worst.sort_values("margin", ascending=False).drop_duplicates(["model", "window_start", "metric_name"])
    lines += ["", "worst windows:"]
    for _, v in worst.head(5).iterrows():
        lines.append(f"  {v['model']} v{v['model_version']} {v['window_start']:%Y-%m-%d %H:%M}  {v['description']}")
    return "\n".join(lines)


def republish(settings: Settings, from_s: float | None, to_s: float | None, prefix: str) -> Counter[str]:
    """Copy a span of the input topics to `PREFIX<topic>`: same partitions, keys, values and timestamps."""
    if not prefix:
        raise ReplayError("--to-topic needs a non-empty prefix")
    consumer = span_consumer(settings.bootstrap_servers)
    try:
        spans = plan(consumer, settings.inference_topic, from_s, to_s)
        spans += plan(consumer, settings.label_topic, from_s, to_s)
        partitions = Counter(s.tp.topic for s in spans)
        created = ensure_topics(settings.bootstrap_servers, [prefix + t for t in partitions], max(partitions.values()))
        for topic, n in partitions.items():
            if created[prefix + topic] != n:
                raise ReplayError(
                    f"{prefix + topic} has {created[prefix + topic]} partitions, {topic} has {n}: "
                    "they must match so that records keep their partitions"
                )
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20)
        sent: Counter[str] = Counter()
        try:
            for batch in read(consumer, spans, desc="republishing"):
                for r in batch:
                    producer.send(
                        prefix + r.topic, key=r.key, value=r.value, partition=r.partition, timestamp_ms=r.timestamp
                    )
                    sent[prefix + r.topic] += 1
            producer.flush()
        finally:
            producer.close()
        return sent
    finally:
        consumer.close()
