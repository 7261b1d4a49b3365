"""Integration fixtures: a worker process on a real broker and Redis, with topics of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from connectors.kafka import json_producer
from connectors.kafka_span import read_topic
from stream.kafka_clients import KafkaConnection
from stream.settings import Settings
from stream.worker.topics import ensure_topics
from tests.conftest import wait_until
from tests.harness import CLUSTER

PARTITIONS = 4
WORKER_READY_S = 60.0  # a cold Faust worker needs a few seconds to join its group; CI machines are slow


@dataclass
class Deployment:
    """One isolated truthstream deployment: its topics, app id, Redis prefix and worker processes."""

    broker: str
    redis_url: str
    name: str
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    retired: list[subprocess.Popen[bytes]] = field(default_factory=list)  # exited as the test meant them to
    producer: KafkaProducer | None = None

    @property
    def kafka(self) -> KafkaConnection:
        """How the test's own clients connect: the broker, with any TRUTHSTREAM_KAFKA_* security settings."""
        return Settings.from_env(broker=self.broker).kafka()

    def topic(self, kind: str) -> str:
        return f"{kind}-{self.name}"

    def configure(self, **settings: Any) -> None:
        """Set the worker's TRUTHSTREAM_* variables and create its topics."""
        self.env = {
            "TRUTHSTREAM_BROKER": self.broker,
            "TRUTHSTREAM_REDIS_URL": self.redis_url,
            "TRUTHSTREAM_APP_ID": f"app-{self.name}",
            "TRUTHSTREAM_REDIS_PREFIX": f"ts-{self.name}",
            "TRUTHSTREAM_INFERENCE_TOPIC": self.topic("inferences"),
            "TRUTHSTREAM_LABEL_TOPIC": self.topic("labels"),
            "TRUTHSTREAM_METRICS_TOPIC": self.topic("metrics"),
            "TRUTHSTREAM_VIOLATIONS_TOPIC": self.topic("violations"),
            "TRUTHSTREAM_DEAD_LETTER_TOPIC": self.topic("dead-letters"),
            "TRUTHSTREAM_DATA_DIR": str(self.logs / "data"),
        }
        self.env.update({f"TRUTHSTREAM_{k.upper()}": str(v) for k, v in settings.items()})
        if CLUSTER:  # the Redis given is a cluster node: run the worker in cluster mode (its defaults otherwise)
            self.env.update(TRUTHSTREAM_REDIS_CLUSTER="on")
        ensure_topics(
            self.kafka,
            [self.topic(k) for k in ("inferences", "labels", "metrics", "violations", "dead-letters")],
            PARTITIONS,
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start a `truthstream worker` process."""
        index = len(self.workers)
        log = open(self.logs / f"worker-{index}.log", "wb")
        env = {**os.environ, **self.env, "TRUTHSTREAM_DATA_DIR": str(self.logs / f"data-{index}")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker: no clean shutdown, no final commit."""
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def retire(self, proc: subprocess.Popen[bytes]) -> None:
        """Take note that a worker exited as the test meant it to (`wait_for` fails on other exits)."""
        self.retired.append(proc)

    def send(self, kind: str, records: list[tuple[str, Any]], partition: int | None = None) -> list[Any]:
        """Produce (key, value) pairs to one of the input topics; returns their record metadata."""
        if self.producer is None:
            self.producer = json_producer(self.kafka)
        futures = [self.producer.send(self.topic(kind), key=k, value=v, partition=partition) for k, v in records]
        self.producer.flush()
        return [f.get(timeout=30) for f in futures]

    def close_all_windows(self, t: float) -> None:
        """Move every input partition's event time to `t`, so every earlier window closes."""
        from tests.factories import inference, label, on_partition

        for p in range(PARTITIONS):
            i, j = on_partition("close", p, PARTITIONS), on_partition("close-label", p, PARTITIONS)
            self.send("inferences", [(i, inference(i, t, 0, 0.5))], partition=p)
            self.send("labels", [(j, label(j, 0, label_time=t))], partition=p)

    def read(self, kind: str) -> list[dict[str, Any]]:
        """Every record published so far to an output topic."""
        return list(read_topic(self.kafka, self.topic(kind)))

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
        """Poll `check` until it returns something truthy; fail with the workers' logs otherwise."""

        def exited() -> str | None:
            for proc in self.workers:
                if proc.poll() not in (None, -signal.SIGKILL) and proc not in self.retired:
                    return f"worker exited with {proc.returncode}"
            return None

        return wait_until(what, check, timeout, exited, self.tail)

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker-*.log"))
        )

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self.producer is not None:
            self.producer.close()


@pytest.fixture
def deployment(broker: str, redis_url: str, unique: str, tmp_path: Path) -> Iterator[Deployment]:
    """A fresh deployment whose worker processes are stopped after the test."""
    dep = Deployment(broker, redis_url, unique, tmp_path)
    try:
        yield dep
    finally:
        dep.stop()


def tumbling(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tumbling-window metrics records by window start; a window published twice must be identical."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["window"]["kind"] != "tumbling":
            continue
        start = r["window"]["start"]
        if start in out:
            assert json.dumps(out[start], sort_keys=True) == json.dumps(r, sort_keys=True), (
                f"window {start} was published twice with different content"
            )
        out[start] = r
    return out


def counted(deployment: Deployment, name: str) -> int:
    """A count summed over the records that carry counts: tumbling windows (each once, however
    often published) and accounting records (those of models without a window, and those of
    records that name no model)."""
    records = deployment.read("metrics")
    windows = tumbling(records)
    return sum(r["counts"][name] for r in windows.values()) + sum(
        r["counts"][name] for r in records if r["window"]["kind"] == "accounting"
    )


@dataclass(frozen=True)
class SecureRedis:
    """A redis-server speaking only TLS, whose only user is an ACL user with a password."""

    port: int
    ca: Path
    user: str
    password: str

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """rediss://USER:PASSWORD@127.0.0.1:PORT/0 trusting the test CA."""
        user, password = user or self.user, password or self.password
        return f"rediss://{user}:{password}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"


@pytest.fixture(scope="session")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    """Debian's redis-server with TLS on and the default user off (skipped where it has no TLS)."""
    import shutil

    from connectors.embedded import free_port, wait_for_port
    from tests.integration.certs import make_certs

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH (Debian's package has TLS)")
    folder = tmp_path_factory.mktemp("secure-redis")
    certs = make_certs(folder)
    port, password = free_port(), "acl-Secret-7f3b"
    log = folder / "redis.log"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--tls-cert-file", str(certs["cert"]), "--tls-key-file", str(certs["key"]),
         "--tls-ca-cert-file", str(certs["ca"]), "--tls-auth-clients", "no", "--dir", str(folder),
         "--user", "default", "off", "--user", "truthstream", "on", f">{password}", "~*", "&*", "+@all"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        try:
            wait_for_port(port, proc, "redis-server (TLS)", log)
        except Exception:  # noqa: BLE001 - a build without TLS refuses --tls-port
            pytest.skip(f"this redis-server does not start with TLS: {log.read_text()[-300:]}")
        yield SecureRedis(port, certs["ca"], "truthstream", password)
    finally:
        proc.terminate()
        proc.wait()
