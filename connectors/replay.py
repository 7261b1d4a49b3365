"""Replay: recompute history from the topics with the worker's own engine.

The replay reads the inference and label topics (no consumer group, no Redis), feeds them
to the same Engine the worker runs, over an in-memory store, and collects from the store's
outbox what the worker would have published: the tumbling windows' metrics records and
their violations (`replay_tables` tabulates them).

`--from/--to` are inference (event) times: the replay reports every tumbling window that
overlaps them. Which records that takes is decided here, from two facts of the core:
an inference of time t is accepted only from a record stamped t - max_future_seconds or
later, so reading starts at record time `first window start - max_future_seconds`; and a
window is final once the stream's event time has passed its end plus the label grace, so
reading stops there (or where the fetches find the topics' end).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from connectors.kafka_span import Cursor, cursors, merged, raw, record_at, span_consumer
from connectors.replay_split import Split, progress
from stream.core.catalog import Catalog
from stream.core.contract import StateStore
from stream.core.dataquality.window import QUALITY_KIND
from stream.core.engine import Engine
from stream.core.state import METRICS, VIOLATION, widen
from stream.core.timefmt import format_time, parse_time
from stream.errors import InputError
from stream.settings import Settings
from stream.stores.memory import MemoryStore
from stream.worker.runtime import collections_rare


@dataclass
class Replay:
    """What a replay found: the tumbling-window metrics records of the span, and what stayed open."""

    records: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    messages: int = 0
    open_windows: int = 0
    inference_times: tuple[float, float] | None = None  # earliest and latest inference time read
    read_from: float | None = None  # the record time reading started at (None: the topics' beginning)
    quality: list[dict[str, Any]] = field(default_factory=list)  # data-quality records of the span
    processes: int = 1  # the processes that read and joined the records
    seconds: float = 0.0  # from the first offset lookup to the last window closed


@dataclass(frozen=True)
class Span:
    """The windows asked for, as event times `[start, end)` aligned to the window size (None: open)."""

    start: float | None
    end: float | None

    @classmethod
    def of(cls, from_s: float | None, to_s: float | None, size: float) -> Span:
        """The windows that overlap `[from_s, to_s)`."""
        return cls(
            None if from_s is None else math.floor(from_s / size) * size,
            None if to_s is None else math.ceil(to_s / size) * size,
        )

    def contains(self, window_start: float) -> bool:
        """Whether the window starting at `window_start` is one of the span's."""
        return (self.start is None or window_start >= self.start) and (self.end is None or window_start < self.end)

    def overlaps(self, times: tuple[float, float] | None) -> bool:
        """Whether inferences of times `[low, high]` fall in the span's windows."""
        if times is None:
            return False
        return (self.start is None or times[1] >= self.start) and (self.end is None or times[0] < self.end)

    def holds(self, record: dict[str, Any]) -> bool:
        """Whether a published record's window lies in the span."""
        return self.contains(parse_time(record["window"]["start"]))

    def describe(self) -> str:
        """The span in words, for messages."""
        start = "the beginning" if self.start is None else format_time(self.start)
        return f"{start} to {'the end' if self.end is None else format_time(self.end)}"


def replay(
    settings: Settings,
    catalog: Catalog,
    from_s: float | None,
    to_s: float | None,
    copy: Callable[[list[ConsumerRecord]], None] | None = None,
    processes: int = 1,
) -> Replay:
    """Recompute every tumbling window overlapping `[from_s, to_s)` of inference time; `copy`, if
    given, also receives every record read, in order (republishing uses it). With `processes` above
    one (and no `copy`), the partitions are shared among that many processes (see `replay_split`)."""
    settings = dataclasses.replace(settings, rolling_size=0)  # rolling windows are a live view only
    span = Span.of(from_s, to_s, settings.window_seconds)
    lead = settings.max_future_seconds
    read_from = None if span.start is None or not math.isfinite(lead) else span.start - lead
    started = time.perf_counter()
    from_ms = None if read_from is None else int(read_from * 1000)
    needed_ms = None if span.start is None else int(span.start * 1000)
    # closed before reading: its thread gone, the split replay's processes can be forked (see `Split`)
    with closing(span_consumer(settings.kafka())) as consumer:
        inputs = cursors(consumer, settings.inference_topic, from_ms, needed_ms)
        partitions = len(inputs)
        inputs += cursors(consumer, settings.label_topic, from_ms, needed_ms)
    result = Replay(read_from=read_from)
    final = None if span.end is None else span.end + settings.label_grace
    with collections_rare():  # as in the worker: a batch allocates tens of thousands of objects
        if processes > 1 and partitions > 1 and copy is None:
            result.processes = min(processes, partitions)
            store = _split(settings, catalog, inputs, partitions, result.processes, result, span, final)
        else:
            store = _single(settings, catalog, inputs, partitions, result, span, final, copy)
    result.seconds = time.perf_counter() - started
    result.open_windows = sum(1 for key in store.windows if span.contains(key.start))
    if not result.records and not result.open_windows and not span.overlaps(result.inference_times):
        raise InputError(_uncovered(settings, span, result, inputs))
    return result


def _single(
    settings: Settings,
    catalog: Catalog,
    inputs: list[Cursor],
    partitions: int,
    result: Replay,
    span: Span,
    final: float | None,
    copy: Callable[[list[ConsumerRecord]], None] | None,
) -> MemoryStore:
    """The replay in this process: the records of every partition, merged by time, through one engine."""
    store = MemoryStore(segment_cap=settings.segment_cap)
    engine = Engine(settings.core(), catalog, store, partitions)

    async def run() -> None:
        # closed when the span is: the reading consumer stops at once, not when the loop ends
        async with aclosing(merged(settings.kafka(), inputs, desc="replaying")) as batches:
            async for batch in batches:
                if copy is not None:
                    copy(batch)
                result.messages += len(batch)
                report = await engine.process([raw(r, settings.side_of(r.topic)) for r in batch], time.time())
                result.dead_letters += report.dead_letters
                result.inference_times = widen(result.inference_times, report.inference_times)
                await _collect(store, result, span)
                if final is not None and report.stream_time >= final:
                    return  # every window of the span is closed: later records cannot change them

    asyncio.run(run())
    return store


def _split(
    settings: Settings,
    catalog: Catalog,
    inputs: list[Cursor],
    partitions: int,
    processes: int,
    result: Replay,
    span: Span,
    final: float | None,
) -> MemoryStore:
    """The replay over `processes` processes, each reading and joining a share of the partitions
    (see `replay_split`)."""
    split = Split(settings, catalog, inputs, partitions, processes)

    async def run() -> None:
        with progress("replaying") as bar:
            for n, results, total in split.results():
                bar.total = total or None
                bar.update(n)
                result.messages += n
                for _, step in results:
                    result.dead_letters += len(step.dead_letters)
                    result.inference_times = widen(result.inference_times, step.inference_times)
                report = await split.apply(results)
                await _collect(split.store, result, span)
                if final is not None and report.stream_time >= final:
                    return  # every window of the span is closed: later records cannot change them

    try:
        asyncio.run(run())
    finally:
        split.close()
    return split.store


async def _collect(store: StateStore, result: Replay, span: Span) -> None:
    """Take what the engine queued, as the worker's publisher does (dead letters are counted already)."""
    while pending := await store.pending_outbox():
        for out in pending:
            if out.channel == METRICS and out.value["window"]["kind"] == "tumbling" and span.holds(out.value):
                result.records.append(out.value)
            elif out.channel == METRICS and out.value["window"]["kind"] == QUALITY_KIND and span.holds(out.value):
                result.quality.append(out.value)  # its violations are in it
            elif out.channel == VIOLATION and not out.value.get("data_quality") and span.holds(out.value):
                result.violations.append(out.value)
        await store.confirm_outbox(len(pending))


def _uncovered(settings: Settings, span: Span, result: Replay, inputs: list[Cursor]) -> str:
    """Why nothing was found: what the topics hold instead."""
    topics = f"{settings.inference_topic}/{settings.label_topic}"
    if result.inference_times is not None:
        low, high = result.inference_times
        since = "" if result.read_from is None else f" from record time {format_time(result.read_from)} on"
        return (
            f"no window of inference time {span.describe()} in {topics}: the records read{since} "
            f"hold inferences of {format_time(low)} to {format_time(high)}"
        )
    if result.messages:
        return f"no inference in {topics} could be read ({result.messages} records, all refused or labels)"
    with closing(span_consumer(settings.kafka())) as consumer:
        newest = [r.timestamp for c in inputs if c.position > 0 and (r := record_at(consumer, c.tp, c.position - 1))]
    if not newest:
        return f"no records in {topics}"
    return (
        f"no records in {topics} from record time {format_time(result.read_from or 0)} on, which inference time "
        f"{span.describe()} needs: the newest record is of {format_time(max(newest) / 1000)}"
    )
