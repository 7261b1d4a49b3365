"""Several engine processes beside one faust process, each owning a share of the input partitions.

When messages carry many instances (SageMaker captures of batched requests), faust's process has
little to do per instance and one engine process is the worker's limit. With
`TRUTHSTREAM_ENGINE_PROCESSES=N`, input partition p is always handled by engine process p mod N:
a partition's batches still go, in order, through one process, exactly as with one engine, and
the processes work on different partitions at once, the way N workers would (their state is
partition-local in Redis; closing windows is coordinated there, as between workers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from stream.core.engine import BatchReport
from stream.core.records import RawMessage
from stream.core.state import widen
from stream.worker.engine_process import Batches


def merge_reports(reports: Sequence[BatchReport]) -> BatchReport:
    """One batch's report from its parts' (handled by different engines)."""
    out = BatchReport()
    for r in reports:
        out.messages += r.messages
        out.joined += r.joined
        out.dead_letters += r.dead_letters
        out.late += r.late
        out.closed_windows += r.closed_windows
        out.provisional += r.provisional
        out.accounting_records += r.accounting_records
        out.queued += r.queued
        out.outcomes.update(r.outcomes)
        out.dead_letter_fields.update(r.dead_letter_fields)
        out.inference_times = widen(out.inference_times, r.inference_times)
        out.stream_time = max(out.stream_time, r.stream_time)
    return out


class EnginePool:
    """Engines (see `Batches`) sharing a worker's input partitions: partition p goes to engine p mod N."""

    def __init__(self, engines: Sequence[Batches]) -> None:
        self.engines = list(engines)

    def _owner(self, partition: int) -> int:
        return partition % len(self.engines)

    async def begin(self, messages: list[RawMessage], wall_clock: float) -> Awaitable[BatchReport]:
        """Hand each engine its partitions' messages (in the batch's order); the awaitable returned
        gives the batch's report once every engine handled its part."""
        parts: dict[int, list[RawMessage]] = {}
        for msg in messages:
            parts.setdefault(self._owner(msg.partition), []).append(msg)
        if not parts:  # an empty batch still closes what is due (see `Engine.process`)
            parts[0] = []
        replies = [await self.engines[i].begin(part, wall_clock) for i, part in sorted(parts.items())]

        async def report() -> BatchReport:
            return merge_reports(await asyncio.gather(*replies))

        return asyncio.ensure_future(report())

    async def idle(self, wall_clock: float) -> int:
        """Close what is due after idleness: one engine does it for all (closing is coordinated in Redis)."""
        return await self.engines[0].idle(wall_clock)

    async def sweep(self, partitions: set[int]) -> BatchReport:
        """Each engine expires what event time passed in its own partitions."""
        mine: dict[int, set[int]] = {}
        for p in partitions:
            mine.setdefault(self._owner(p), set()).add(p)
        if not mine:
            mine[0] = set()
        return merge_reports(await asyncio.gather(*(self.engines[i].sweep(ps) for i, ps in sorted(mine.items()))))

    async def close(self) -> None:
        """Close every engine."""
        await asyncio.gather(*(engine.close() for engine in self.engines))
