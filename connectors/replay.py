"""Replay: recompute history from the topics with the worker's own engine.

The replay reads a time span of the inference and label topics (no consumer group, no
Redis), feeds it to the same Engine the worker runs, over an in-memory store, and
collects from the store's outbox what the worker would have published: the tumbling
windows' metrics records and their violations (`replay_tables` tabulates them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from connectors.kafka_span import plan, raw, read, span_consumer
from stream.core.catalog import Catalog
from stream.core.engine import Engine
from stream.core.state import METRICS, VIOLATION, StateStore
from stream.core.timefmt import format_time
from stream.errors import InputError
from stream.settings import Settings
from stream.stores.memory import MemoryStore


@dataclass
class Replay:
    """What a replay found: the tumbling-window metrics records, and what stayed open."""

    records: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    messages: int = 0
    open_windows: int = 0


def replay(settings: Settings, catalog: Catalog, from_s: float | None, to_s: float | None) -> Replay:
    """Recompute every window that closes within the span. Labels are read until `to` plus the
    label grace, so that windows ending before `to` get the labels the live worker would have had."""
    settings = dataclasses.replace(settings, rolling_size=0)  # rolling windows are a live view only
    consumer = span_consumer(settings.kafka())
    try:
        label_to = None if to_s is None else to_s + settings.label_grace
        spans = plan(consumer, settings.inference_topic, from_s, to_s)
        spans += plan(consumer, settings.label_topic, from_s, label_to)
        partitions = sum(1 for s in spans if s.tp.topic == settings.inference_topic)
        if sum(s.stop - s.start for s in spans) == 0:
            raise InputError(
                f"no records in {settings.inference_topic}/{settings.label_topic} between "
                f"{format_time(from_s) if from_s is not None else 'the beginning'} and "
                f"{format_time(to_s) if to_s is not None else 'the end'}"
            )
        store = MemoryStore()
        engine = Engine(settings.core(), catalog, store, partitions)
        result = Replay()

        async def run() -> None:
            for batch in read(consumer, spans, desc="replaying"):
                result.messages += len(batch)
                report = await engine.process([raw(r, settings.side_of(r.topic)) for r in batch], time.time())
                result.dead_letters += report.dead_letters
                await _collect(store, result)

        asyncio.run(run())
        result.open_windows = len(store.windows)
        return result
    finally:
        consumer.close()


async def _collect(store: StateStore, result: Replay) -> None:
    """Take what the engine queued, as the worker's publisher does (dead letters are counted already)."""
    while pending := await store.pending_outbox():
        for out in pending:
            if out.kind == METRICS and out.value["window"]["kind"] == "tumbling":
                result.records.append(out.value)
            elif out.kind == VIOLATION:
                result.violations.append(out.value)
        await store.confirm_outbox(len(pending))
