"""Republish: copy a span of the input topics to new topics, for a fresh worker group to reprocess."""

from __future__ import annotations

from collections import Counter

from kafka import KafkaProducer

from connectors.kafka_span import plan, read, span_consumer
from stream.errors import ConfigError
from stream.settings import Settings
from stream.worker.topics import ensure_topics


def republish(settings: Settings, from_s: float | None, to_s: float | None, prefix: str) -> Counter[str]:
    """Copy a span of the input topics to `PREFIX<topic>`: same partitions, keys, values and timestamps."""
    if not prefix:
        raise ConfigError("--to-topic needs a non-empty prefix")
    kafka = settings.kafka()
    consumer = span_consumer(kafka)
    try:
        spans = plan(consumer, settings.inference_topic, from_s, to_s)
        spans += plan(consumer, settings.label_topic, from_s, to_s)
        partitions = Counter(s.tp.topic for s in spans)
        created = ensure_topics(kafka, [prefix + t for t in partitions], max(partitions.values()))
        for topic, n in partitions.items():
            if created[prefix + topic] != n:
                raise ConfigError(
                    f"{prefix + topic} has {created[prefix + topic]} partitions, {topic} has {n}: "
                    "they must match so that records keep their partitions"
                )
        producer = KafkaProducer(**kafka.kafka_python(), acks="all", linger_ms=20)
        sent: Counter[str] = Counter()
        try:
            for batch in read(consumer, spans, desc="republishing"):
                for r in batch:
                    producer.send(
                        prefix + r.topic, key=r.key, value=r.value, partition=r.partition, timestamp_ms=r.timestamp
                    )
                    sent[prefix + r.topic] += 1
            producer.flush()
        finally:
            producer.close()
        return sent
    finally:
        consumer.close()
