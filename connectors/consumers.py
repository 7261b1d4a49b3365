"""Consuming the output topics as a downstream service does: a consumer group with manual commits,
committing an offset only after the record's effect is done, so an outage delays and never loses.
`truthstream violations` and the sinks are worked examples."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from stream.settings import Settings

# kafka-python's first group join waits out a session timeout on some brokers (tansu: ~23 s
# with the 45 s default); 6 s keeps start-up short while tolerating GC pauses.
SESSION_TIMEOUT_MS = 6000
POLL_MS = 500


def group_consumer(settings: Settings, topic: str, group: str, earliest: bool = True) -> KafkaConsumer:
    """A consumer in `group` on `topic` with manual commits."""
    consumer = KafkaConsumer(
        **settings.kafka().require_reachable().kafka_python(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if earliest else "latest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )
    consumer.subscribe([topic])
    return consumer


def records(
    consumer: KafkaConsumer,
    follow: bool,
    idle_s: float = 3.0,
    from_s: float | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Any]:
    """Messages as they come; without `follow`, stop once nothing new came for `idle_s` after joining,
    and in any case once `stop` is set (checked every poll). With `from_s`, a group's partitions start
    at that time once assigned (what the first poll returned is dropped), and records stamped earlier
    are skipped."""
    quiet_since = None
    pending_seek = from_s is not None and consumer.config["group_id"] is not None
    from_ms = -1 if from_s is None else from_s * 1000
    while stop is None or not stop.is_set():
        batch = consumer.poll(timeout_ms=POLL_MS)
        if pending_seek and consumer.assignment():
            assigned = list(consumer.assignment())
            found = consumer.offsets_for_times({tp: int(from_ms) for tp in assigned})
            ends = consumer.end_offsets(assigned)
            for tp in assigned:
                consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
            pending_seek = False
            continue
        if batch:
            quiet_since = None
            for messages in batch.values():
                yield from (m for m in messages if m.timestamp is None or m.timestamp >= from_ms)
        elif not follow and consumer.assignment():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > idle_s:
                return


def topic_reader(settings: Settings, topic: str | list[str], from_s: float | None) -> KafkaConsumer:
    """A consumer outside any group on every partition of `topic` (or of several), from `from_s` (else
    the beginning): it commits nothing, so every run reads the same. Records before `from_s` are also
    dropped by their timestamps in `records`, for brokers whose offsets-for-times answers are wrong."""
    from connectors.kafka import topic_partitions

    consumer = KafkaConsumer(
        **settings.kafka().require_reachable().kafka_python(), group_id=None, enable_auto_commit=False
    )
    topics = [topic] if isinstance(topic, str) else topic
    tps = [TopicPartition(t, p) for t in topics for p in topic_partitions(consumer, t)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    if from_s is not None:
        found = consumer.offsets_for_times({tp: int(from_s * 1000) for tp in tps})
        for tp in tps:
            if found.get(tp) is not None and found[tp].offset > 0:
                consumer.seek(tp, found[tp].offset)
    return consumer


def commit(consumer: KafkaConsumer, message: Any) -> None:
    """Commit past one message."""
    tp = TopicPartition(message.topic, message.partition)
    consumer.commit({tp: OffsetAndMetadata(message.offset + 1, None, -1)})
