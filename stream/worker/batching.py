"""Batches of a faust stream, the next filling while the caller handles the current one.

faust's `Stream.take_events` stops filling its buffer while the caller works on a batch, so
faust's own per-event work (decoding, the stream's bookkeeping) and the caller's work (the
batch's Redis round trips) take turns. `take_ahead` lets the next batch fill meanwhile, and
acknowledges a batch's events only once the caller asks for the next batch (or leaves that to
the caller): Kafka then commits only offsets that were handled (the worker's Redis checkpoints
make a redelivered batch harmless).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.types import EventT
from mode.utils.aiter import aiter


async def take_ahead(
    stream: faust.StreamT[Any], max_: int, within: float, acks: bool = True
) -> AsyncIterator[list[EventT[Any]]]:
    """Yield lists of at most `max_` events, each when full or `within` seconds after the last one
    was taken; up to `max_` more events are read while the caller handles a batch. With `acks`
    off the caller acknowledges each event (`stream.ack`) once it handled it."""
    filling: list[EventT[Any]] = []
    full = asyncio.Event()  # the filling batch holds max_ events
    taken = asyncio.Event()  # the caller took the full batch: a new one may fill

    async def add(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_ahead found no current event")
        filling.append(event)
        if len(filling) >= max_:
            full.set()
            taken.clear()
            await stream.wait(taken)  # type: ignore[attr-defined]  # StreamT omits Service.wait
        return value

    enabled = stream.enable_acks
    stream.enable_acks = False  # acknowledged here (or by the caller), once the caller handled them
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))  # type: ignore[attr-defined]  # noqa: SLF001 - as take_events does
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within)  # type: ignore[attr-defined]  # as wait
            if not filling:
                continue
            batch, filling = filling, []
            full.clear()
            taken.set()
            yield batch
            # Reached only when the caller asks for the next batch: a batch it did not finish
            # (the worker stopping) stays unacknowledged and is read again after a restart.
            if acks:
                await acknowledge(stream, batch)
    finally:
        stream.enable_acks = enabled
        stream._processors.remove(add)  # type: ignore[attr-defined]  # noqa: SLF001 - no public removal


async def acknowledge(stream: faust.StreamT[Any], events: list[EventT[Any]]) -> None:
    """Acknowledge handled events: Kafka may commit their offsets."""
    for event in events:
        await stream.ack(event)
