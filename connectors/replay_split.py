"""Replay over several processes: each reads and joins a share of the partitions, the parent closes windows.

Everything a window holds is decided per input partition: a pair is late by its own partition's
event time, and an inference counts in a window's arrivals and data quality by its own
partition's. So a partition's records give the same window parts whatever the other partitions
do and whenever they are read. Each process reads its partitions (p mod N), merged by record
time, runs the core's reading and step over their join state, and sends each step's result,
without the join entries, to the parent. The parent applies the results to its memory store
(window parts, counts, watermarks) and closes the windows the slowest partition's time passed,
as a single-process replay does: windows, violations, segments, change events and estimates come
out the same (each window's `counts` may be attributed to another window of its model: they are
reported when the parent seals, whose timing differs; their sum does not). The parent sends the
stream's time back, so that the processes expire waiting entries as the engine would.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import threading
import time
from collections import Counter
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from typing import Any

from kafka import TopicPartition

from connectors.kafka_span import Cursor, merged, raw
from connectors.progress import progress as progress_bar
from stream.core.catalog import Catalog
from stream.core.contract import RollingDue
from stream.core.engine import BatchReport, Engine
from stream.core.state import StepResult
from stream.errors import InputError, TruthstreamError
from stream.settings import Settings
from stream.stores.memory import MemoryStore
from stream.worker.runtime import collect_garbage_rarely

Share = list[tuple[str, int, int, int | None]]  # (topic, partition, position, from_ms) of each cursor


class JoinStore(MemoryStore):
    """A replay process's store: it keeps its partitions' join state and hands every result on."""

    def __init__(self, segment_cap: int) -> None:
        super().__init__(segment_cap=segment_cap)
        self.results: list[tuple[int, StepResult]] = []

    def apply(self, partition: int, result: StepResult) -> list[RollingDue]:
        """Apply the joins here; keep the rest of the result (window parts, counts) for the parent."""
        self.apply_joins(partition, result)
        self.results.append((partition, replace(result, entries={}, unindex={})))
        return []


def serve(conn: Connection, settings: Settings, catalog: Catalog, share: Share, partitions: int) -> None:
    """A replay process's main: read the share's partitions to their ends, sending each batch's results."""
    try:
        collect_garbage_rarely()
        asyncio.run(_serve(conn, settings, catalog, share, partitions))
    except TruthstreamError as exc:
        conn.send(("error", str(exc), [], 0))
    except Exception as exc:  # noqa: BLE001 - whatever stopped it, the parent must say so
        conn.send(("error", f"a replay process failed ({type(exc).__name__}: {exc})", [], 0))
    finally:
        conn.close()


async def _serve(conn: Connection, settings: Settings, catalog: Catalog, share: Share, partitions: int) -> None:
    cursors = [Cursor(TopicPartition(t, p), position, from_ms=from_ms) for t, p, position, from_ms in share]
    starts = {c.tp: c.position for c in cursors}
    store = JoinStore(settings.segment_cap)
    engine = Engine(settings.core(), catalog, store, partitions)
    mine, swept = {p for _, p, _, _ in share}, -math.inf
    async for batch in merged(settings.kafka(), cursors, progress=False):
        messages = [raw(record, settings.side_of(record.topic)) for record in batch]
        await store.transact(engine.jobs(messages, time.time()))  # the engine's own steps, joins kept here
        now = swept
        while conn.poll():
            now = max(now, conn.recv())
        if now > swept:  # the stream's time moved: expire what it passed, as the engine does
            await engine.expire(mine, now, Counter())
            swept = now
        total = sum(max(0, (c.end or c.position) - starts[c.tp]) for c in cursors)
        conn.send(("batch", len(batch), store.results, total))
        store.results = []
    # where each partition's reading ended: the parent's cursors say so, as one process's do
    conn.send(("done", 0, store.results, {(c.tp.topic, c.tp.partition): c.position for c in cursors}))


class Split:
    """The parent of a split replay: its processes, and the store where their results meet."""

    def __init__(
        self, settings: Settings, catalog: Catalog, inputs: list[Cursor], partitions: int, processes: int
    ) -> None:
        self.store = MemoryStore(segment_cap=settings.segment_cap)
        self.inputs = inputs
        self.engine = Engine(settings.core(), catalog, self.store, partitions)
        shares: dict[int, Share] = {}
        for c in inputs:
            shares.setdefault(c.tp.partition % processes, []).append(
                (c.tp.topic, c.tp.partition, c.position, c.from_ms)
            )
        context = multiprocessing.get_context(start_method())
        self.children: dict[Connection, Any] = {}
        for share in shares.values():
            mine, theirs = context.Pipe()
            child = context.Process(target=serve, args=(theirs, settings, catalog, share, partitions), daemon=True)
            child.start()
            theirs.close()
            self.children[mine] = child

    def results(self) -> Any:
        """(records read, [(partition, result)], each process's latest total) as the processes send them,
        until every process reached its partitions' ends."""
        live, totals = dict(self.children), {}
        while live:
            for conn in wait(list(live)):
                try:
                    kind, n, results, total = conn.recv()  # type: ignore[union-attr]
                except EOFError:
                    child = live[conn]  # type: ignore[index]
                    child.join(5)
                    raise InputError(f"a replay process ended unexpectedly (exit code {child.exitcode})") from None
                if kind == "error":
                    raise InputError(n)
                if kind == "done":  # its last results, and where each of its partitions' reading ended
                    for c in self.inputs:
                        c.position = total.get((c.tp.topic, c.tp.partition), c.position)
                    del live[conn]  # type: ignore[arg-type]
                else:
                    totals[conn] = total or totals.get(conn, 0)
                yield n, results, sum(totals.values())

    async def apply(self, results: list[tuple[int, StepResult]]) -> BatchReport:
        """Apply processes' results and publish what the stream's time made due; tell the processes the time."""
        for partition, result in results:
            self.store.apply(partition, result)
        report = await self.engine.sweep(set())
        for conn in self.children:
            try:
                conn.send(report.stream_time)
            except OSError:
                pass  # that process is done
        return report

    def close(self) -> None:
        """End the processes (those still reading, when the span closed first)."""
        for conn, child in self.children.items():
            conn.close()
            if child.is_alive():
                child.terminate()
            child.join(5)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a `taskset` or a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start_method() -> str:
    """How the processes start: forked, with this process's modules loaded (an import of the core
    costs each spawned process seconds), unless a thread is running here (a client's, a server's),
    which a fork would copy in whatever state it is: then spawned."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def progress(desc: str) -> Any:
    """The split replay's progress bar (records/s, and an ETA once the partitions' ends are known)."""
    return progress_bar(desc, "records")
