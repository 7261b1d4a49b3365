"""Reading a time span of Kafka topics: offsets-for-times, all partitions, no consumer group."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from tqdm import tqdm

from connectors.kafka import topic_partitions
from stream.errors import ConfigError, InputError
from stream.kafka_clients import KafkaConnection
from stream.core.records import RawMessage, Side
from stream.core.timefmt import format_time

POLL_MS = 500
MAX_EMPTY_POLLS = 60  # 30 s without a record while some are still expected: the broker went away


@dataclass(frozen=True)
class Span:
    """Offsets `[start, stop)` to read in one partition, and the timestamps (ms) to keep."""

    tp: TopicPartition
    start: int
    stop: int
    from_ms: int | None
    to_ms: int | None


def span_consumer(kafka: KafkaConnection) -> KafkaConsumer:
    """A consumer outside any group (it never commits, so it cannot disturb a live worker)."""
    return KafkaConsumer(
        **kafka.require_reachable().kafka_python(),
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="earliest",
    )


def plan(consumer: KafkaConsumer, topic: str, from_s: float | None, to_s: float | None) -> list[Span]:
    """Per-partition offsets of the records of `topic` timestamped in `[from_s, to_s)`."""
    try:
        parts = topic_partitions(consumer, topic, timeout_s=5.0)
    except ConfigError:
        raise InputError(f"topic {topic!r} does not exist on the broker") from None
    tps = [TopicPartition(topic, p) for p in parts]
    begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)

    def offsets(at_s: float | None, default: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        if at_s is None:
            return dict(default)
        found = consumer.offsets_for_times({tp: int(at_s * 1000) for tp in tps})
        return {tp: found[tp].offset if found.get(tp) is not None else end[tp] for tp in tps}

    starts, stops = offsets(from_s, begin), offsets(to_s, end)
    if from_s is not None:
        for tp in tps:
            if begin[tp] > 0 and begin[tp] < end[tp] and starts[tp] == begin[tp]:
                first = first_timestamp(consumer, tp, begin[tp])
                if first is not None and first > from_s * 1000:
                    raise InputError(
                        f"{topic}[{tp.partition}] no longer holds records before {format_time(first / 1000)}: "
                        f"older ones were deleted by retention, so --from {format_time(from_s)} cannot be replayed"
                    )
    to_ms = None if to_s is None else int(to_s * 1000)
    from_ms = None if from_s is None else int(from_s * 1000)
    return [Span(tp, starts[tp], max(starts[tp], stops[tp]), from_ms, to_ms) for tp in tps]


def first_timestamp(consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    """Timestamp (ms) of the record at `offset`."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    for records in consumer.poll(timeout_ms=5000, max_records=1).values():
        for record in records:
            return int(record.timestamp)
    return None


def read(
    consumer: KafkaConsumer, spans: list[Span], desc: str = "reading", batch_size: int = 5000
) -> Iterator[list[ConsumerRecord]]:
    """Every record of the spans in batches, merged across partitions by timestamp, with a
    progress bar on stderr.

    The merge hands records to the core in about the order they were produced, which is
    what a live worker saw (it matters for labels without `label_time`). Records are also
    filtered by timestamp here, so a broker whose offsets-for-times answer is approximate
    (tansu answers 0) still yields exactly the span, only more slowly.
    """
    active = {s.tp: s for s in spans if s.stop > s.start}
    if not active:
        return
    consumer.assign(list(active))
    for s in active.values():
        consumer.seek(s.tp, s.start)
    buffers: dict[TopicPartition, deque[ConsumerRecord]] = {tp: deque() for tp in active}
    empty = 0
    batch: list[ConsumerRecord] = []
    with tqdm(
        total=sum(s.stop - s.start for s in active.values()), desc=desc, unit="rec", unit_scale=True, leave=False
    ) as bar:
        while active or any(buffers.values()):
            hungry = [tp for tp in active if not buffers[tp]]
            if hungry:
                consumer.pause(*[tp for tp in active if buffers[tp]])
                consumer.resume(*hungry)
                polled = consumer.poll(timeout_ms=POLL_MS, max_records=batch_size)
                empty = 0 if polled else empty + 1
                if empty > MAX_EMPTY_POLLS:
                    raise InputError("the broker stopped returning records before the span's end")
                for tp, records in polled.items():
                    span = active.get(tp)
                    if span is None:
                        continue
                    kept = [r for r in records if r.offset < span.stop]
                    bar.update(len(kept))
                    buffers[tp].extend(
                        r
                        for r in kept
                        if (span.from_ms is None or r.timestamp >= span.from_ms)
                        and (span.to_ms is None or r.timestamp < span.to_ms)
                    )
                    if records[-1].offset + 1 >= span.stop:
                        del active[tp]
                continue
            # Every partition still being read has a record buffered: emit the oldest ones.
            while all(buffers[tp] for tp in active) and any(buffers.values()):
                tp = min((tp for tp, buf in buffers.items() if buf), key=lambda t: buffers[t][0].timestamp)
                batch.append(buffers[tp].popleft())
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
    if batch:
        yield batch


def raw(record: ConsumerRecord, side: Side) -> RawMessage:
    """The core's view of a Kafka record from one of the inputs."""
    stamp = record.timestamp / 1000 if record.timestamp is not None and record.timestamp > 0 else None
    return RawMessage(side, record.topic, record.partition, record.offset, record.key, record.value, stamp)
