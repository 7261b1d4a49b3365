"""Reading the input topics to their end, merged by record time, outside any consumer group.

Brokers' offset answers are hints, never facts: the embedded broker (tansu) reports end offsets
below what its partitions hold and answers every offsets-for-times query with offset 0. So a
partition is read until a fetch at its position comes back empty with the fetch's own high
watermark at or below that position, and an offsets-for-times answer is used only when the
record before it confirms it. The bulk read (`merged`) is aiokafka's: its record batches are
decoded in C and every partition's fetches are in flight together (kafka-python decoded a record
in about 30 us of Python: most of a replay's reading). The offset lookups and single-record probes
(`cursors`, `record_at`) are kafka-python's, each partition fetched on its own (assigned alone,
then sought), never paused and resumed: with kafka-python on tansu, a resumed partition was
never fetched again.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from connectors.kafka import topic_partitions
from connectors.progress import progress as progress_bar
from stream.core.records import RawMessage, Side
from stream.core.timefmt import format_time
from stream.errors import ConfigError, InputError
from stream.kafka_clients import KafkaConnection

log = logging.getLogger(__name__)

POLL_MS = 500
STALL_POLLS = 60  # 30 s of empty fetches below the partition's high watermark: the broker went away
STALL_S = STALL_POLLS * POLL_MS / 1000
FETCH_WAIT_MS = 100  # how long the broker holds an empty fetch: the cost of confirming a partition's end


@dataclass
class Cursor:
    """One partition being read: its next offset, what was fetched and not yet handed on, and
    whether a fetch said it is exhausted."""

    tp: TopicPartition
    position: int
    buffer: deque[ConsumerRecord] = field(default_factory=deque)
    done: bool = False
    end: int | None = None  # the high watermark of the latest fetch
    from_ms: int | None = None  # records stamped earlier are skipped (whatever offset the broker started at)


def span_consumer(kafka: KafkaConnection) -> KafkaConsumer:
    """A consumer outside any group (it never commits, so it cannot disturb a live worker)."""
    return KafkaConsumer(
        **kafka.require_reachable().kafka_python(),
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )


def partitions_of(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of an input topic; a topic the broker does not have is an InputError."""
    try:
        return [TopicPartition(topic, p) for p in topic_partitions(consumer, topic, timeout_s=5.0)]
    except ConfigError:
        raise InputError(f"topic {topic!r} does not exist on the broker") from None


def cursors(
    consumer: KafkaConsumer, topic: str, from_ms: int | None = None, needed_ms: int | None = None
) -> list[Cursor]:
    """A cursor on every partition of `topic`, at its first record stamped `from_ms` or later
    (at its beginning without `from_ms`). Refuses a partition whose retained records begin after
    `needed_ms` (default `from_ms`), and warns when they begin after `from_ms`."""
    needed_ms = from_ms if needed_ms is None else needed_ms
    tps = partitions_of(consumer, topic)
    begin = consumer.beginning_offsets(tps)
    if from_ms is None:
        return [Cursor(tp, begin[tp]) for tp in tps]
    found = consumer.offsets_for_times({tp: from_ms for tp in tps})
    out = []
    for tp in tps:
        start = begin[tp]
        answer = found.get(tp)
        if answer is None:
            # "No record that late": believed when the partition's last record is older than from_ms.
            probe = Cursor(tp, start)
            _fill(consumer, probe, max_records=1)
            last = record_at(consumer, tp, probe.end - 1) if probe.end else None
            if last is None or last.timestamp < from_ms:
                start = probe.end or start
        elif answer.offset > start:
            before = record_at(consumer, tp, answer.offset - 1)
            if before is not None and before.timestamp < from_ms:
                start = answer.offset  # confirmed: the record before it is older than the span
        if start == begin[tp] and start > 0:
            first = record_at(consumer, tp, start)
            if first is not None and first.timestamp > from_ms:
                gone = (
                    f"{topic}[{tp.partition}] no longer holds records before {format_time(first.timestamp / 1000)}"
                    " (deleted by retention)"
                )
                if first.timestamp > needed_ms:
                    raise InputError(f"{gone}, and the span needs those from {format_time(needed_ms / 1000)} on")
                log.warning("%s: inferences stamped before their own time by then are missing", gone)
        out.append(Cursor(tp, start, from_ms=from_ms))
    return out


def record_at(consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> ConsumerRecord | None:
    """The record at `offset` (or the next one there is), if a fetch returns it."""
    cursor = Cursor(tp, offset)
    _fill(consumer, cursor, max_records=1)
    return cursor.buffer[0] if cursor.buffer else None


def _fill(consumer: KafkaConsumer, cursor: Cursor, max_records: int) -> None:
    """Fetch the next records of one partition into its buffer, or mark it exhausted."""
    consumer.assign([cursor.tp])
    consumer.seek(cursor.tp, cursor.position)
    empty = 0
    while empty < STALL_POLLS:
        records = consumer.poll(timeout_ms=POLL_MS, max_records=max_records).get(cursor.tp, [])
        cursor.end = consumer.highwater(cursor.tp)
        if records:
            empty = 0
            cursor.position = records[-1].offset + 1
            cursor.buffer.extend(r for r in records if cursor.from_ms is None or r.timestamp >= cursor.from_ms)
            if cursor.buffer:
                return
            continue
        empty += 1
        # An empty fetch can also have stepped over transaction markers: take the consumer's position.
        cursor.position = max(cursor.position, consumer.position(cursor.tp))
        if cursor.end is not None and cursor.position >= cursor.end:
            cursor.done = True
            return
    raise InputError(
        f"{cursor.tp.topic}[{cursor.tp.partition}]: the broker stopped returning records at offset "
        f"{cursor.position}, below the end it reports ({cursor.end}); nothing was computed from a partial read"
    )


async def merged(
    kafka: KafkaConnection,
    partitions: list[Cursor],
    desc: str = "reading",
    batch_size: int = 5000,
    progress: bool = True,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Every record of the cursors' partitions to their ends, in batches merged across partitions
    by timestamp, with a progress bar on stderr. The caller may stop early.

    The merge hands records to the core in about the order they were produced, which is what
    a live worker saw (it matters for labels without `label_time`). The records are fetched by
    aiokafka (record batches decoded in C, every partition's fetches in flight at once), a record
    merged when every partition still being read has one buffered; a partition is at its end when
    a fetch found nothing at its position and that fetch's high watermark is not above it.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioPartition

    consumer = AIOKafkaConsumer(
        **kafka.require_reachable().aiokafka(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_WAIT_MS,
    )
    await consumer.start()
    try:
        live = [c for c in partitions if not c.done]
        tps = {c.tp: AioPartition(c.tp.topic, c.tp.partition) for c in partitions}
        consumer.assign([tps[c.tp] for c in live])
        for c in live:
            consumer.seek(tps[c.tp], c.position)
        starts = {c.tp: c.position for c in partitions}
        stalled = {c.tp: time.monotonic() for c in live}  # when each partition last moved
        order = {c.tp: i for i, c in enumerate(partitions)}
        batch: list[ConsumerRecord] = []
        with progress_bar(desc, "records", enabled=progress) as bar:
            while live := [c for c in live if c.buffer or not c.done]:
                if dry := [c for c in live if not c.buffer]:
                    # an empty fetch does not end a getmany: twice the broker's wait sees one come back
                    fetched = await consumer.getmany(*(tps[c.tp] for c in dry), timeout_ms=2 * FETCH_WAIT_MS)
                    for c in dry:
                        await _take(consumer, tps[c.tp], c, fetched.get(tps[c.tp], []), stalled)
                        bar.update(len(c.buffer))
                    # The ends as the fetches report them (offsets: transaction markers count too).
                    bar.total = sum(max(0, (c.end or c.position) - starts[c.tp]) for c in partitions) or None
                    continue
                # Every partition still being read has a record buffered: emit the oldest until one runs
                # dry. The heap holds each one's oldest (timestamp, its place in `partitions`, cursor).
                heads = [(c.buffer[0].timestamp, order[c.tp], c) for c in live]
                heapq.heapify(heads)
                while True:
                    _, i, c = heads[0]
                    batch.append(c.buffer.popleft())
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
                    if not c.buffer:
                        break
                    heapq.heapreplace(heads, (c.buffer[0].timestamp, i, c))
        if batch:
            yield batch
    finally:
        await consumer.stop()


async def _take(
    consumer: Any, tp: Any, cursor: Cursor, records: list[Any], stalled: dict[TopicPartition, float]
) -> None:
    """One partition's share of a fetch into its buffer; or, when it brought nothing, whether the
    partition is at its end (the fetch's high watermark) or the broker stopped answering."""
    cursor.end = consumer.highwater(tp)
    if records:
        stalled[cursor.tp] = time.monotonic()
        cursor.position = records[-1].offset + 1
        cursor.buffer.extend(r for r in records if cursor.from_ms is None or r.timestamp >= cursor.from_ms)
        return
    # An empty fetch can also have stepped over transaction markers: take the consumer's position.
    cursor.position = max(cursor.position, await consumer.position(tp))
    if cursor.end is not None and cursor.position >= cursor.end:
        cursor.done = True
        return
    if time.monotonic() - stalled[cursor.tp] > STALL_S:
        raise InputError(
            f"{cursor.tp.topic}[{cursor.tp.partition}]: the broker stopped returning records at offset "
            f"{cursor.position}, below the end it reports ({cursor.end}); nothing was computed from a partial read"
        )


def read_topic(kafka: KafkaConnection, topic: str) -> Iterator[dict[str, Any]]:
    """Every message of a topic, as decoded JSON, to the end the fetches find (tests and the benchmark)."""
    yield from (json.loads(r.value) for r in read_records(kafka, topic))


def read_records(kafka: KafkaConnection, topic: str) -> Iterator[ConsumerRecord]:
    """Every record of a topic, to the end the fetches find."""
    consumer = span_consumer(kafka)
    try:
        start = cursors(consumer, topic)
    finally:
        consumer.close()

    async def read() -> list[ConsumerRecord]:
        return [r async for batch in merged(kafka, start, progress=False) for r in batch]

    yield from asyncio.run(read())


def raw(record: ConsumerRecord, side: Side) -> RawMessage:
    """The core's view of a Kafka record from one of the inputs."""
    stamp = record.timestamp / 1000 if record.timestamp is not None and record.timestamp > 0 else None
    return RawMessage(side, record.topic, record.partition, record.offset, record.key, record.value, stamp)
