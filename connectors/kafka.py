"""Kafka plumbing of the commands, with kafka-python: JSON producing and reading topics back
(topic set-up is `stream.worker.topics`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.serializer import Serializer

from stream.errors import ConfigError
from stream.kafka_clients import KafkaConnection


class _KeySerializer(Serializer):
    def serialize(self, topic: str, headers: Any, value: Any) -> bytes | None:
        return value.encode() if isinstance(value, str) else value


class _JsonSerializer(Serializer):
    def serialize(self, topic: str, headers: Any, value: Any) -> bytes | None:
        return value if isinstance(value, bytes) or value is None else json.dumps(value).encode()


def json_producer(kafka: KafkaConnection) -> KafkaProducer:
    """A producer of JSON values (bytes pass through as they are) keyed by UTF-8 strings."""
    return KafkaProducer(
        **kafka.require_reachable().kafka_python(),
        acks="all",
        linger_ms=5,
        key_serializer=_KeySerializer(),
        value_serializer=_JsonSerializer(),
    )


def topic_partitions(consumer: KafkaConsumer, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The partitions of a topic, waiting for the first metadata response."""
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise ConfigError(f"topic {topic!r} does not exist or has no partitions")
        consumer.poll(timeout_ms=100)  # drives the metadata request


def read_topic(
    kafka: KafkaConnection, topic: str, idle_s: float = 1.0, deadline_s: float = 30.0
) -> Iterator[dict[str, Any]]:
    """Every message of a topic from its beginning, as decoded JSON (no consumer group, no commits)."""
    consumer = KafkaConsumer(
        **kafka.require_reachable().kafka_python(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(idle_s * 1000),
    )
    try:
        parts = topic_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        stop = time.monotonic() + deadline_s
        while time.monotonic() < stop and any(consumer.position(tp) < end[tp] for tp in tps):
            for msg in consumer:
                yield json.loads(msg.value)
    finally:
        consumer.close()
