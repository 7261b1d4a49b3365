"""Poison in a good stream: each message that once stopped, stalled or skewed the worker, sent in the
middle of a healthy workload; every window still equals scikit-learn's and the worker never stops."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from connectors.embedded import embedded_redis, free_port
from tests.integration.conftest import Deployment, counted, tumbling
from tests.integration.test_metrics_endpoint import scrape
from tests.integration.test_metrics_endpoint import value as sample_value
from tests.integration.test_worker import assert_matches_sklearn, produce, settings
from tests.integration.workload import arrival_order, expected_windows, workload

pytestmark = pytest.mark.integration

WINDOW = 60.0
NOW_ISH = "2025-11-24T16:00:30Z"


def poison(t0: float) -> dict[str, list[tuple[str, bytes]]]:
    """(key, raw value) per input topic: the cases found by probing the worker, and a few more."""
    inference = {"event_id": "p", "model": "churn", "inference_time": t0, "prediction": 1, "probability": 0.5}

    def doc(**fields: object) -> bytes:
        return json.dumps({**inference, **fields}).encode()

    return {
        "inferences": [
            ("deep", b"[" * 2000 + b"]" * 2000),
            (
                "surrogate-id",
                b'{"event_id": "\\ud800x", "model": "churn", "inference_time": 1764000000, "prediction": 1}',
            ),
            (
                "surrogate-model",
                b'{"event_id": "sm", "model": "\\udfffm", "inference_time": 1764000000, "prediction": 1}',
            ),
            ("big-feature", doc(event_id="big", features={"blob": "x" * 600_000})),
            ("million", doc(event_id="million", features={"v": [0] * 1_000_000})),
            ("epoch-1e12", doc(event_id="e12", inference_time=1e12)),
            ("year-1900", doc(event_id="y1900", inference_time="1900-01-01T00:00:00Z")),
            ("minus-1000", doc(event_id="m1000", inference_time=-1000)),
            ("version-object", doc(event_id="vo", model_version={"a": 1})),
            ("x" * 100_000, doc(event_id="x" * 100_000)),
            ("huge-int", doc(event_id="hi", inference_time=10**400)),
            ("nan", b'{"event_id": "nan", "model": "churn", "inference_time": NaN, "prediction": 1}'),
        ],
        "labels": [
            ("deep-label", b"[" * 100_000 + b"]" * 100_000),
            ("future", json.dumps({"event_id": "fut", "label": 1, "label_time": "9999-12-31T23:59:59Z"}).encode()),
            ("surrogate-label", b'{"event_id": "sl", "label": "\\ud800"}'),
        ],
    }


def test_poison_in_a_good_stream_is_dead_lettered_and_every_window_is_right(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Poison sent mid-stream (and a far-future label on every partition) is dead-lettered, each dead
    letter small; the windows equal scikit-learn's, none late, and the worker is still running."""
    pairs = workload(n=1200, per_window=150, window=WINDOW, drift_window=4, seed=31, max_label_delay=10)
    deployment.configure(**settings(tmp_path))
    deployment.start_worker()
    good = arrival_order(pairs)
    produce(deployment, good[:1000])
    bad = poison(pairs[0].time)
    for partition in range(4):  # one bad clock per partition, the case that once closed windows early
        bad["labels"].append(
            (f"fut-{partition}", json.dumps({"event_id": f"fut-{partition}", "label": 1, "label_time": 1e12}).encode())
        )
    # 10 MB of zeros, gzip-compressed to a few kilobytes: accepted by the broker, far over the record limit.
    bad["inferences"].append(("zip", b"0" * 10_000_000))
    # Large values go compressed, as a producer with compression sends them (the broker limits the batch).
    zipped = KafkaProducer(**deployment.kafka.kafka_python(), compression_type="gzip", max_request_size=20_000_000)
    sent = 0
    for kind, records in bad.items():
        for key, value in records:
            partition = int(key[-1]) if key.startswith("fut-") else None
            zipped.send(deployment.topic(kind), key=key.encode(), value=value, partition=partition).get(timeout=60)
            sent += 1
    zipped.close()
    produce(deployment, good[1000:])
    deployment.close_all_windows(pairs[-1].time + 1000)
    expected = expected_windows(pairs, WINDOW)
    published = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w, timeout=180
    )
    assert_matches_sklearn(published, expected)
    assert all(r["counts"]["late"] == 0 for r in published.values())
    dead = deployment.wait_for(
        "every dead letter", lambda: (d := deployment.read("dead-letters")) and len(d) >= sent and d
    )
    assert len(dead) == sent
    assert all(len(json.dumps(d)) < 12_000 for d in dead)
    # rejects are counted in their model's windows, and those that name no model in accounting
    # records of their own (model null)
    deployment.wait_for("every reject counted", lambda: counted(deployment, "rejected") == sent)
    assert sum(r["counts"]["rejected"] for r in published.values()) <= sent
    assert all(w.poll() is None for w in deployment.workers)
    log = deployment.tail()
    assert "Traceback" not in log and "unexpected error" not in log


def test_a_full_redis_stalls_the_worker_with_advice_and_it_resumes(deployment: Deployment, tmp_path: Path) -> None:
    """With Redis at maxmemory (noeviction) the worker stays up, says what to do at a steady cadence,
    and once Redis has room again every window is published and right."""
    import redis

    pairs = workload(n=600, per_window=150, window=WINDOW, drift_window=99, seed=32, max_label_delay=5)
    with embedded_redis(None, "--maxmemory-policy", "noeviction") as url:
        deployment.redis_url = url
        deployment.configure(**settings(tmp_path))
        client = redis.Redis.from_url(url)
        client.set("ballast", b"x" * 2_000_000)
        client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)  # full before the worker writes
        deployment.start_worker()
        produce(deployment, arrival_order(pairs))
        deployment.close_all_windows(pairs[-1].time + 1000)
        deployment.wait_for("the advice about a full Redis", lambda: "Redis is full" in deployment.tail(), timeout=90)
        time.sleep(3)
        assert all(w.poll() is None for w in deployment.workers)
        client.delete("ballast")
        client.config_set("maxmemory", "0")
        published = deployment.wait_for(
            "4 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 4 and w, timeout=120
        )
        assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
        client.close()


def test_an_output_the_broker_refuses_for_good_is_dead_lettered_and_the_outbox_moves_on(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A metrics topic that takes at most 1,000-byte messages refuses every window's record for good:
    each becomes an 'undeliverable' dead letter, violations, later records and the small records
    the producer had batched with the refused ones still flow."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(**deployment.kafka.kafka_python())
    admin.create_topics([NewTopic(deployment.topic("metrics"), 4, 1, topic_configs={"max.message.bytes": "1000"})])
    admin.close()
    probe = KafkaProducer(**deployment.kafka.kafka_python())
    try:
        probe.send(deployment.topic("metrics"), b"x" * 5000).get(timeout=30)
        pytest.skip("this broker does not enforce a topic's max.message.bytes")
    except KafkaError:
        pass
    finally:
        probe.close()
    pairs = workload(n=600, per_window=150, window=WINDOW, drift_window=2, seed=33, max_label_delay=5)
    port = free_port()
    deployment.configure(**settings(tmp_path, rolling_size=0), metrics_port=port)
    deployment.start_worker()
    produce(deployment, arrival_order(pairs))
    deployment.close_all_windows(pairs[-1].time + 1000)
    dead = deployment.wait_for(
        "4 undeliverable metrics records",
        lambda: (d := [x for x in deployment.read("dead-letters") if x.get("undeliverable")]) and len(d) >= 4 and d,
    )
    assert all(d["topic"] == deployment.topic("metrics") and d["value_bytes"] > 1000 for d in dead)
    # the small provisional records, sent in batches with the refused ones, still arrive (alone)
    provisional = [r for r in deployment.read("metrics") if r["window"]["kind"] == "provisional"]
    assert {r["window"]["start"] for r in provisional} == set(expected_windows(pairs, WINDOW))
    assert "undeliverable" in deployment.tail()
    violations = deployment.wait_for("the drifted windows' violations", lambda: deployment.read("violations"))
    assert {v["window"]["start"] for v in violations} == set(sorted(expected_windows(pairs, WINDOW))[2:])
    assert all(w.poll() is None for w in deployment.workers)
    undeliverable = sample_value(scrape(port), "truthstream_dead_letters_total", reason="undeliverable")
    assert undeliverable == len([x for x in deployment.read("dead-letters") if x.get("undeliverable")])
