"""Producers that key records otherwise than by event id: no pair is stranded silently. Each record
that cannot meet its pair is a dead letter naming the key, the event id and the fix, and counted in
`truthstream_dead_letters_total{reason="key"}`; records keyed and placed right join as always."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from connectors.embedded import free_port
from tests.factories import T0, inference, label
from tests.integration.conftest import PARTITIONS, Deployment, tumbling
from tests.integration.test_metrics_endpoint import scrape, value
from tests.integration.test_worker import settings

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_records_keyed_by_user_without_key_or_by_another_partitioner_are_dead_letters(
    deployment: Deployment, tmp_path: Path
) -> None:
    import confluent_kafka

    port = free_port()
    deployment.configure(**settings(tmp_path, min_samples=1), metrics_port=port)
    worker = deployment.start_worker()
    # 1. inferences keyed by a user id, labels by event id (the common mistake)
    user_keyed = [f"u{i}" for i in range(40)]
    deployment.send("inferences", [(f"user-{i % 5}", inference(e, T0 + i, 1, 0.9)) for i, e in enumerate(user_keyed)])
    deployment.send("labels", [(e, label(e, 1, label_time=T0 + i + 1)) for i, e in enumerate(user_keyed)])
    # 2. inferences with no key at all
    unkeyed = [f"n{i}" for i in range(10)]
    deployment.send("inferences", [(None, inference(e, T0 + i, 1, 0.9)) for i, e in enumerate(unkeyed)])
    # 3. inferences from librdkafka (confluent-kafka), whose default partitioner is CRC32's, not murmur2's
    other = [f"c{i}" for i in range(40)]
    placed: dict[str, int] = {}
    producer = confluent_kafka.Producer({"bootstrap.servers": deployment.broker.removeprefix("kafka://")})
    for i, e in enumerate(other):
        producer.produce(
            deployment.topic("inferences"),
            key=e.encode(),
            value=json.dumps(inference(e, T0 + i, 1, 0.9)).encode(),
            on_delivery=lambda err, msg: placed.__setitem__(msg.key().decode(), msg.partition()),
        )
    assert producer.flush(30) == 0
    deployment.send("labels", [(e, label(e, 1, label_time=T0 + i + 1)) for i, e in enumerate(other)])
    murmur2 = DefaultPartitioner()  # aiokafka's, as the oracle of where the default partitioner puts a key
    moved = {e for e in other if placed[e] != murmur2(e.encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))}
    assert 0 < len(moved) < len(other)  # CRC32 and murmur2 agree on some keys only
    deployment.close_all_windows(T0 + 1000)

    expected = len(user_keyed) + len(unkeyed) + len(moved)
    letters = deployment.wait_for(
        f"{expected} dead letters", lambda: (d := deployment.read("dead-letters")) and len(d) >= expected and d
    )
    by_id = {json.loads(x["value"])["event_id"]: x for x in letters}
    assert set(by_id) == set(user_keyed) | set(unkeyed) | moved and {x["field"] for x in letters} == {"key"}
    assert "Kafka key is 'user-3' but its event id is 'u3'" in by_id["u3"]["reason"]
    assert "Kafka key is missing but its event id is 'n0'" in by_id["n0"]["reason"]
    some = sorted(moved)[0]
    assert "but Kafka's default partitioner puts it in partition" in by_id[some]["reason"]
    assert "murmur2_random" in by_id[some]["reason"]
    # the inferences placed where murmur2 puts them too joined their labels
    windows = deployment.wait_for("the window", lambda: tumbling(deployment.read("metrics")))
    assert sum(w["sample_count"] for w in windows.values()) == len(other) - len(moved)
    samples = deployment.wait_for(
        "the dead letters counted",
        lambda: (s := scrape(port)) and value(s, "truthstream_dead_letters_total", reason="key") == expected and s,
    )
    assert value(samples, "truthstream_dead_letters_total", reason="key") == expected
    assert worker.poll() is None
