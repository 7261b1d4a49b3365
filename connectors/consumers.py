"""Consuming the output topics as a downstream service does: a consumer group with manual commits,
committing an offset only after the record's effect is done, so an outage delays and never loses.
`truthstream violations` and the sinks are worked examples."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from stream.settings import Settings

# kafka-python's first group join waits out a session timeout on some brokers (tansu: ~23 s
# with the 45 s default); 6 s keeps start-up short while tolerating GC pauses.
SESSION_TIMEOUT_MS = 6000
POLL_MS = 500
# A following reader that read nothing for this long asks the broker for its partitions' ends: to
# say once that the broker went away (the client reconnects by itself, backing off up to
# RECONNECT_BACKOFF_MAX_MS) and came back, and to notice a broker that came back without the
# records it had (a topic recreated, an in-memory broker restarted).
CHECK_S = 5.0
CHECK_TIMEOUT_MS = 5000
RECONNECT_BACKOFF_MAX_MS = 10_000

log = logging.getLogger(__name__)


class BrokerWatch:
    """What a long-running reader knows of its broker: whether it answers (said once per outage),
    and whether it still holds the last record read from each partition."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.lost = False
        self.checked = time.monotonic()
        self.last: dict[TopicPartition, tuple[int, int | None]] = {}  # offset and timestamp of the last record
        self._probe: KafkaConsumer | None = None

    def read(self, message: Any) -> None:
        """Remember a record handed on."""
        self.last[TopicPartition(message.topic, message.partition)] = (message.offset, message.timestamp)
        self.checked = time.monotonic()

    def due(self) -> bool:
        """Whether a quiet reader should check again."""
        return time.monotonic() - self.checked >= CHECK_S

    def check(self, consumer: KafkaConsumer) -> None:
        """Ask the broker for the ends of the reader's partitions and for the last record read from
        each; read a partition again from its beginning when it no longer holds that record (the
        broker lost or recreated it: whatever it holds now is new to this reader)."""
        self.checked = time.monotonic()
        assigned = sorted(consumer.assignment())
        if not assigned:
            return
        try:
            ends = consumer.end_offsets(assigned, timeout_ms=CHECK_TIMEOUT_MS)
            begins = consumer.beginning_offsets(assigned, timeout_ms=CHECK_TIMEOUT_MS)
            gone = [
                tp
                for tp in assigned
                if tp in self.last and not self._still_there(consumer, tp, begins.get(tp), ends.get(tp))
            ]
        except KafkaError as exc:
            if not self.lost:
                log.warning("%s: the broker does not answer (%s); reconnecting until it is back", self.what, exc)
            self.lost = True
            return
        if self.lost:
            log.warning("%s: the broker answers again; reading on", self.what)
            self.lost = False
        for tp in gone:
            log.warning(
                "%s: %s[%d] no longer holds the record read at offset %d: the broker lost or recreated it; "
                "reading it again from its beginning",
                self.what,
                tp.topic,
                tp.partition,
                self.last[tp][0],
            )
            del self.last[tp]
            consumer.seek_to_beginning(tp)

    def _still_there(self, consumer: KafkaConsumer, tp: TopicPartition, begin: int | None, end: int | None) -> bool:
        offset, timestamp = self.last[tp]
        if end is None or offset >= end:
            return False
        if begin is not None and offset < begin:
            return True  # deleted by retention since: the partition goes on
        if self._probe is None:
            self._probe = KafkaConsumer(**{**consumer.config, "group_id": None, "enable_auto_commit": False})
        self._probe.assign([tp])
        self._probe.seek(tp, offset)
        found = self._probe.poll(timeout_ms=CHECK_TIMEOUT_MS, max_records=1).get(tp, [])
        if not found:
            raise KafkaError(f"no answer for {tp.topic}[{tp.partition}] at offset {offset}")
        return bool(found[0].offset == offset and found[0].timestamp == timestamp)

    def close(self) -> None:
        """Close the probe's connections."""
        if self._probe is not None:
            self._probe.close()


def group_consumer(settings: Settings, topic: str, group: str, earliest: bool = True) -> KafkaConsumer:
    """A consumer in `group` on `topic` with manual commits."""
    consumer = KafkaConsumer(
        **settings.kafka().require_reachable().kafka_python(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if earliest else "latest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
    )
    consumer.subscribe([topic])
    return consumer


def records(
    consumer: KafkaConsumer,
    follow: bool,
    idle_s: float = 3.0,
    from_s: float | None = None,
    stop: threading.Event | None = None,
    what: str = "reading",
) -> Iterator[Any]:
    """Messages as they come; without `follow`, stop once nothing new came for `idle_s` after joining,
    and in any case once `stop` is set (checked every poll). With `from_s`, a group's partitions start
    at that time once assigned (what the first poll returned is dropped), and records stamped earlier
    are skipped. With `follow`, a broker that goes away is waited for (said once, as `what`), and
    one that comes back without what was read is read again from its beginning (BrokerWatch)."""
    watch = BrokerWatch(what) if follow else None
    try:
        yield from _records(consumer, follow, idle_s, from_s, stop, watch)
    finally:
        if watch is not None:
            watch.close()


def _records(
    consumer: KafkaConsumer,
    follow: bool,
    idle_s: float,
    from_s: float | None,
    stop: threading.Event | None,
    watch: BrokerWatch | None,
) -> Iterator[Any]:
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
                for message in messages:
                    if watch is not None:
                        watch.read(message)
                    if message.timestamp is None or message.timestamp >= from_ms:
                        yield message
        elif watch is not None:
            if watch.due():
                watch.check(consumer)
        elif consumer.assignment():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > idle_s:
                return


def topic_reader(settings: Settings, topic: str | list[str], from_s: float | None) -> KafkaConsumer:
    """A consumer outside any group on every partition of `topic` (or of several), from `from_s` (else
    the beginning): it commits nothing, so every run reads the same. Records before `from_s` are also
    dropped by their timestamps in `records`, for brokers whose offsets-for-times answers are wrong."""
    from connectors.kafka import topic_partitions

    consumer = KafkaConsumer(
        **settings.kafka().require_reachable().kafka_python(),
        group_id=None,
        enable_auto_commit=False,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
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
