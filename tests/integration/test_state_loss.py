"""A Redis that comes back without its data, or older, under a running worker: the worker stops
before it computes anything from the older state, and its restart reads the input again from the
positions Redis holds, so every window published is exact (and one published twice, identical)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.embedded import embedded_redis, free_port
from tests.integration.conftest import Deployment, tumbling
from tests.integration.test_worker import WINDOW, assert_matches_sklearn, produce, settings
from tests.integration.workload import arrival_order, expected_windows, workload

pytestmark = [pytest.mark.integration, pytest.mark.redis]

STATE_LOST = 75  # the worker's exit code when Redis lost writes


class RestartableRedis:
    """A redis-server of the test's own, on a fixed port, that can be killed and started again
    (empty, or from the snapshot it saved in `data`)."""

    def __init__(self, data: Path) -> None:
        self.port, self.data = free_port(), data
        self.stack = contextlib.ExitStack()
        self.url = ""

    def start(self) -> str:
        self.url = self.stack.enter_context(embedded_redis(self.port, "--dir", str(self.data)))
        return self.url

    def stop(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis-data")
    server.data.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dep(broker: str, own_redis: RestartableRedis, unique: str, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on the test's own Redis, its workers stopped after the test."""
    deployment = Deployment(broker, own_redis.url, unique, tmp_path)
    try:
        yield deployment
    finally:
        deployment.stop()


def wait_for_exit(dep: Deployment, worker, code: int) -> None:
    dep.retire(worker)
    dep.wait_for(f"the worker to exit with {code}", lambda: worker.poll() is not None, timeout=120)
    assert worker.returncode == code, dep.tail()


def logged(dep: Deployment) -> str:
    """Every worker's whole log."""
    return "".join(p.read_text(errors="replace") for p in sorted(dep.logs.glob("worker-*.log")))


def half_applied(dep: Deployment, tmp_path: Path, seed: int) -> tuple[list, list, Any]:
    """The workload's pairs and records, the first half produced and a worker running over it
    until it published a window: returns the pairs, the records left to produce, the worker."""
    pairs = workload(n=8000, per_window=1000, window=WINDOW, drift_window=5, seed=seed, max_label_delay=20)
    dep.configure(**settings(tmp_path, batch_size=500))
    records = arrival_order(pairs)
    produce(dep, records[: len(records) // 2])
    worker = dep.start_worker()
    dep.wait_for("the first closed window", lambda: tumbling(dep.read("metrics")))
    return pairs, records[len(records) // 2 :], worker


def exact_after_restart(dep: Deployment, pairs, windows: int) -> None:
    dep.start_worker()
    dep.close_all_windows(pairs[-1].time + 1000)
    published = dep.wait_for(
        f"{windows} closed windows",
        lambda: (w := tumbling(dep.read("metrics"))) and len(w) == windows and w,
        timeout=240,
    )
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
    assert sum(r["counts"]["late"] + r["counts"]["duplicates"] for r in published.values()) == 0


def test_redis_restarted_empty_mid_stream_is_recomputed_exactly(
    dep: Deployment, own_redis: RestartableRedis, tmp_path: Path
) -> None:
    """Redis killed and started empty while the worker runs: the worker exits (75) at its next batch,
    and the restarted worker reads every input partition again from the start."""
    pairs, rest, worker = half_applied(dep, tmp_path, seed=11)
    time.sleep(4)  # Kafka commits what the worker acknowledged (every 2.8 s): the witness of the loss
    own_redis.stop()
    own_redis.start()  # no persistence: it comes back empty
    produce(dep, rest)
    wait_for_exit(dep, worker, STATE_LOST)
    assert "Redis went back in time" in logged(dep)
    exact_after_restart(dep, pairs, 8)
    assert "Redis lost its state" in logged(dep)


def test_redis_that_lost_its_last_writes_is_recomputed_exactly(
    dep: Deployment, own_redis: RestartableRedis, tmp_path: Path
) -> None:
    """Redis killed and started from an older snapshot (what `appendfsync everysec` or a lagging
    replica leaves): Redis is behind Kafka's committed offsets, and the records since are read again."""
    pairs, rest, worker = half_applied(dep, tmp_path, seed=12)
    own_redis.client().save()  # the snapshot Redis will come back with
    produce(dep, rest)
    dep.wait_for("a window after the snapshot", lambda: len(tumbling(dep.read("metrics"))) >= 6)
    time.sleep(4)  # Kafka commits what the worker acknowledged (every 2.8 s)
    own_redis.stop()
    own_redis.start()
    dep.send("inferences", [("nudge", {"event_id": "nudge"})], partition=0)  # a batch for the worker to find it
    wait_for_exit(dep, worker, STATE_LOST)
    exact_after_restart(dep, pairs, 8)
    assert "Redis is behind Kafka" in logged(dep)


def test_state_lost_beyond_retention_stops_the_worker_with_one_line(
    dep: Deployment, own_redis: RestartableRedis, tmp_path: Path
) -> None:
    """Redis lost its state and Kafka deleted records it held: the windows cannot be recomputed, so
    the worker refuses to start (exit code 2) naming the partition and what to do, and starts from
    Kafka's committed offsets only when asked (TRUTHSTREAM_STATE_LOSS=resume)."""
    from kafka import KafkaAdminClient, TopicPartition

    pairs = workload(n=2000, per_window=1000, window=WINDOW, drift_window=5, seed=13, max_label_delay=20)
    dep.configure(**settings(tmp_path, batch_size=500))
    produce(dep, arrival_order(pairs))
    worker = dep.start_worker()
    dep.wait_for("every record applied", lambda: _applied(own_redis, dep) >= 4000)
    time.sleep(4)  # Kafka commits what the worker acknowledged (every 2.8 s)
    dep.retire(worker)
    worker.terminate()
    worker.wait(30)
    admin = KafkaAdminClient(**dep.kafka.kafka_python())
    try:
        admin.delete_records({TopicPartition(dep.topic("inferences"), 0): 10})
    except Exception as exc:  # noqa: BLE001 - a broker without DeleteRecords (tansu)
        pytest.skip(f"the broker cannot delete records: {exc}")
    finally:
        admin.close()
    own_redis.client().flushall()
    refused = dep.start_worker()
    wait_for_exit(dep, refused, 2)
    assert "records before offset 10 were deleted by retention" in logged(dep)
    assert "Traceback" not in logged(dep)
    dep.env["TRUTHSTREAM_STATE_LOSS"] = "resume"
    dep.start_worker()
    dep.wait_for("the resumed worker", lambda: "as TRUTHSTREAM_STATE_LOSS=resume asks" in logged(dep))


def _applied(server: RestartableRedis, dep: Deployment) -> int:
    """Records applied over every input partition, by the offsets Redis holds."""
    client = server.client()
    prefix = dep.env["TRUTHSTREAM_REDIS_PREFIX"]
    total = 0
    for p in range(4):
        held = client.hgetall(f"{prefix}:{{{prefix}:{p}}}:ck")
        total += sum(int(v) + 1 for v in held.values())
    return total
