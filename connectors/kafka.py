"""Kafka plumbing of the commands, with kafka-python: JSON producing and topic metadata (topic set-up
is `stream.worker.topics`, reading topics to their end `connectors.kafka_span`)."""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
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
