"""`truthstream demo`: the whole pipeline on embedded services, printed as it happens."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from connectors.embedded import embedded_kafka, embedded_redis
from connectors.kafka import json_producer, topic_partitions
from connectors.synthetic import drifting_workload
from stream.errors import TruthstreamError
from stream.kafka_clients import KafkaConnection
from stream.worker.topics import ensure_topics
from stream.core.timefmt import format_time

WINDOW_S = 600.0  # ten minutes of event time per window...
STEP_S = 1.0  # ...at one inference per second of event time
GRACE_S = 120.0
PARTITIONS = 4
DRAIN_TIMEOUT_S = 60.0  # after the last event, how long to wait for the last windows
CONSTRAINTS = {
    "version": 0.0,
    "binary_classification_constraints": {
        "accuracy": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"},
        "precision": {"threshold": 0.75, "comparison_operator": "LessThanThreshold"},
        "f1": {"threshold": 7.5e-1, "comparison_operator": "LessThanThreshold"},
    },
}


def run_demo(events: int, duration: float, seed: int) -> int:
    """Run the demo; returns the process exit code."""
    with (
        tempfile.TemporaryDirectory(prefix="truthstream-demo-") as tmp,
        embedded_kafka() as broker,
        embedded_redis() as redis_url,
    ):
        constraints = Path(tmp) / "constraints.json"
        constraints.write_text(json.dumps(CONSTRAINTS, indent=2))
        kafka = KafkaConnection([broker.split("://", 1)[1]])
        print(f"truthstream demo: embedded broker (tansu) {broker}, redis {redis_url}")
        print(f"  {events} predictions of a model trained before a concept drift at prediction {events // 2};")
        print(
            f"  {WINDOW_S / 60:.0f}-minute windows of event time, constraints: "
            + ", ".join(f"{k} >= {v['threshold']}" for k, v in CONSTRAINTS["binary_classification_constraints"].items())
        )
        topics = ["inferences", "labels", "metrics", "violations", "dead-letters"]
        ensure_topics(kafka, topics, PARTITIONS)
        env = {
            **os.environ,
            "TRUTHSTREAM_BROKER": broker,
            "TRUTHSTREAM_REDIS_URL": redis_url,
            "TRUTHSTREAM_CONSTRAINTS": str(constraints),
            "TRUTHSTREAM_WINDOW": str(WINDOW_S),
            "TRUTHSTREAM_LABEL_GRACE": str(GRACE_S),
            "TRUTHSTREAM_MIN_SAMPLES": "100",
            "TRUTHSTREAM_ROLLING_SIZE": "0",
            "TRUTHSTREAM_DATA_DIR": str(Path(tmp) / "faust"),
        }
        log_path = Path(tmp) / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "connectors.cli", "--log-level", "warning", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            return _drive(kafka, worker, log_path, events, duration, seed)
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()


def _drive(
    kafka: KafkaConnection, worker: subprocess.Popen[bytes], log_path: Path, events: int, duration: float, seed: int
) -> int:
    consumer = KafkaConsumer(**kafka.kafka_python(), enable_auto_commit=False, auto_offset_reset="earliest")
    tps = [TopicPartition(t, p) for t in ("metrics", "violations") for p in topic_partitions(consumer, t)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    producer = json_producer(kafka)
    start = math.floor(time.time() / WINDOW_S) * WINDOW_S
    expected_windows = math.ceil(events * STEP_S / WINDOW_S)
    seen = {"windows": 0, "violations": 0}
    _header()
    began = time.monotonic()
    pace = duration / max(1, events)
    for n, event in enumerate(drifting_workload(events, start, STEP_S, max_label_delay=GRACE_S / 2, seed=seed)):
        producer.send(event.kind, key=event.key, value=event.value)
        if n % 200 == 0:
            producer.flush()
            _print_new(consumer, seen)
            _check_worker(worker, log_path)
            ahead = began + (n / 2) * pace - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    # Move every partition's event time past the last window, so it closes too.
    end = start + events * STEP_S + WINDOW_S + GRACE_S
    for p in range(PARTITIONS):
        producer.send(
            "inferences",
            key=f"end-{p}",
            partition=p,
            value={
                "event_id": f"end-{p}",
                "model": "churn",
                "model_version": "1",
                "inference_time": format_time(end),
                "prediction": 0,
            },
        )
        producer.send(
            "labels",
            key=f"end-label-{p}",
            partition=p,
            value={"event_id": f"end-label-{p}", "label": 0, "label_time": format_time(end)},
        )
    producer.flush()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while seen["windows"] < expected_windows and time.monotonic() < deadline:
        _print_new(consumer, seen)
        _check_worker(worker, log_path)
        time.sleep(0.5)
    producer.close()
    consumer.close()
    print(
        f"\n{seen['windows']} windows published, {seen['violations']} violations, in {time.monotonic() - began:.0f} s."
    )
    if seen["windows"] < expected_windows:
        print(f"expected {expected_windows} windows; worker log:\n{log_path.read_text(errors='replace')[-3000:]}")
        return 1
    return 0


def _header() -> None:
    print(
        f"\n{'window (event time, UTC)':<27}{'n':>6}{'accuracy':>10}{'precision':>10}{'recall':>8}{'f1':>7}"
        f"{'auc':>7}  status"
    )


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def _print_new(consumer: KafkaConsumer, seen: dict[str, int]) -> None:
    for records in consumer.poll(timeout_ms=100).values():
        for msg in records:
            doc = json.loads(msg.value)
            if msg.topic == "metrics" and doc["window"]["kind"] == "tumbling":
                seen["windows"] += 1
                s = doc.get("binary_classification_metrics", {})
                window = f"{doc['window']['start'][:16]} +{WINDOW_S / 60:.0f}m"
                print(
                    f"{window:<27}{doc['sample_count']:>6}"
                    + "".join(
                        f"{_fmt(s.get(k, {}).get('value', '-')):>{w}}"
                        for k, w in (("accuracy", 10), ("precision", 10), ("recall", 8), ("f1", 7), ("auc", 7))
                    )
                    + f"  {doc['status']}"
                )
            elif msg.topic == "violations" and doc["window"]["kind"] == "tumbling":
                seen["violations"] += 1
                print(f"  ! violation {doc['model']} v{doc['model_version']}: {doc['description']}")


def _check_worker(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    if worker.poll() is not None:
        raise TruthstreamError(
            f"the worker exited with {worker.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}"
        )
