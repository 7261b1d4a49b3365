"""Republish: copy what a replay of a span reads to new topics, for a fresh worker group to reprocess."""

from __future__ import annotations

from collections import Counter

from kafka import KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord

from connectors.kafka_span import partitions_of, span_consumer
from connectors.replay import replay
from stream.errors import ConfigError
from stream.settings import Settings
from stream.worker.topics import ensure_topics


def republish(settings: Settings, from_s: float | None, to_s: float | None, prefix: str) -> Counter[str]:
    """Copy the records that the windows of inference time `[from_s, to_s)` need (the ones replay
    reads) to `PREFIX<topic>`: same partitions, keys, values and timestamps. The span is replayed
    once before anything is created or written, so a span the topics do not cover writes nothing."""
    if not prefix:
        raise ConfigError("--to-topic needs a non-empty prefix")
    kafka = settings.kafka()
    catalog = settings.catalog()
    replay(settings, catalog, from_s, to_s)  # a first pass: a span without windows fails before any write
    consumer = span_consumer(kafka)
    try:
        partitions = {t: len(partitions_of(consumer, t)) for t in (settings.inference_topic, settings.label_topic)}
    finally:
        consumer.close()
    created = ensure_topics(kafka, [prefix + t for t in partitions], max(partitions.values()))
    for topic, n in partitions.items():
        if created[prefix + topic] != n:
            raise ConfigError(
                f"{prefix + topic} has {created[prefix + topic]} partitions, {topic} has {n}: "
                "they must match so that records keep their partitions"
            )
    producer = KafkaProducer(**kafka.kafka_python(), acks="all", linger_ms=20)
    sent: Counter[str] = Counter()

    def copy(batch: list[ConsumerRecord]) -> None:
        for r in batch:
            producer.send(prefix + r.topic, key=r.key, value=r.value, partition=r.partition, timestamp_ms=r.timestamp)
            sent[prefix + r.topic] += 1

    try:
        replay(settings, catalog, from_s, to_s, copy=copy)
        producer.flush()
    finally:
        producer.close()
    return sent
