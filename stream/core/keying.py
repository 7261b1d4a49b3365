"""How input records must be keyed and placed so that an inference and its label meet.

A pair meets only in one partition: both records must carry the event id as their Kafka key, and
be placed by the partitioner Kafka's clients share by default (murmur2: Java, kafka-python and
aiokafka place a keyed record alike). A record that breaks this is dead-lettered (field `key`)
with the key, the event id and the fix, instead of waiting in vain for a pair in another partition.
"""

from __future__ import annotations

import functools
import struct

from stream.core.records import RawMessage, shown

KEY_CHECKS = ("partition", "key", "off")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a key (a 32-bit signed value, as Java computes it).

    >>> murmur2(b"21"), murmur2(b"")
    (-973932308, 275646681)
    """
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for k in struct.unpack_from(f"<{whole // 4}I", data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    if rest:
        if rest == 3:
            h ^= data[whole + 2] << 16
        if rest >= 2:
            h ^= data[whole + 1] << 8
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


# An inference and its label share a key, most often within a few thousand records of each other:
# remembered, the label's placement costs no second hash. At most 32,768 keys (about 5 MB).
@functools.lru_cache(maxsize=1 << 15)
def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` among `partitions`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def event_id_on(prefix: str, partition: int, partitions: int) -> str:
    """An event id starting with `prefix` that Kafka's default partitioner puts in `partition` (for
    records that must reach one partition, such as those that move every partition's event time).

    >>> event_id_on("end", 3, 4), default_partition(b"end-5", 4)
    ('end-5', 3)
    """
    if partitions <= 1:
        return prefix
    return next(
        f"{prefix}-{i}"
        for i in range(1_000_000)
        if default_partition(f"{prefix}-{i}".encode(), partitions) == partition
    )


def key_problem(msg: RawMessage, event_id: str, count: int, partitions: int, mode: str) -> str | None:
    """Why a record whose (first) event id is `event_id` cannot meet its pair, or None. `count` is
    the instances the message holds (several share the message's id, `<id>:<i>`); `partitions` the
    input topics' partition count (0: unknown, the placement is not checked); `mode` one of
    `KEY_CHECKS`: partition (key and placement), key (the key only), off."""
    if mode == "off":
        return None
    wanted = event_id if count == 1 else event_id.rsplit(":", 1)[0]
    key = msg.key.decode("utf-8", "replace") if msg.key is not None else None
    if key != wanted:
        return (
            f"the record's Kafka key is {'missing' if key is None else shown(key, 100)} but its event id is "
            f"{shown(wanted, 100)}: key inference and label records by their event id, so that both land in the "
            "same partition and meet (see TRUTHSTREAM_KEY_CHECK)"
        )
    if mode == "partition" and partitions > 0 and msg.key is not None:
        home = default_partition(msg.key, partitions)
        if msg.partition != home:
            return (
                f"key {shown(key, 100)} is in partition {msg.partition}, but Kafka's default partitioner puts it in "
                f"partition {home} of {partitions}, where its pair is looked for: produce without an explicit "
                "partition, with the murmur2 partitioner (librdkafka clients: partitioner=murmur2_random), or set "
                "TRUTHSTREAM_KEY_CHECK=key if the producers of both topics share another partitioner"
            )
    return None
