"""A whole truthstream on this machine: the embedded broker and Redis, the topics, and worker processes.

Used by `truthstream up` and `truthstream demo`. Everything runs as child processes of the
command and stops with it; nothing survives: the embedded broker keeps topics in memory, and
Redis runs without persistence.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from connectors.embedded import embedded_kafka, embedded_redis, free_port
from stream.errors import TruthstreamError
from stream.kafka_clients import KafkaConnection
from stream.settings import Settings
from stream.worker.topics import ensure_topics

PARTITIONS = 4
STOP_TIMEOUT_S = 20.0


@dataclass
class LocalStack:
    """What `local_stack` started: where the services listen, the settings the workers run with."""

    broker: str
    redis_url: str
    settings: Settings
    workdir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kafka(self) -> KafkaConnection:
        """How a client connects to the embedded broker."""
        return KafkaConnection([self.broker.split("://", 1)[1]])

    def log(self, index: int) -> Path:
        """The log file of worker `index`."""
        return self.workdir / f"worker-{index}.log"

    def check(self) -> None:
        """Raise if a worker died, with the end of its log."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                tail = self.log(index).read_text(errors="replace")[-3000:]
                raise TruthstreamError(f"worker {index} exited with {worker.returncode}; its log ends:\n{tail}")


def port_or_free(port: int) -> int:
    """`port` if nothing listens on it on loopback, else any free port."""
    if port:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    return free_port()


@contextlib.contextmanager
def local_stack(
    env: dict[str, str], workers: int = 1, broker_port: int = 0, redis_port: int = 0
) -> Iterator[LocalStack]:
    """Start the embedded broker and Redis (on these ports when free), create the topics the settings
    in `env` name, and start `workers` worker processes with those settings; stop all on exit."""
    with (
        tempfile.TemporaryDirectory(prefix="truthstream-local-") as tmp,
        embedded_kafka(port_or_free(broker_port)) as broker,
        embedded_redis(port_or_free(redis_port)) as redis_url,
    ):
        worker_env = {
            **os.environ,
            **env,
            "TRUTHSTREAM_BROKER": broker,
            "TRUTHSTREAM_REDIS_URL": redis_url,
        }
        settings = Settings.from_env(worker_env)  # refuses bad settings before anything starts
        stack = LocalStack(broker, redis_url, settings, Path(tmp))
        topics = [
            settings.inference_topic,
            settings.label_topic,
            settings.metrics_topic,
            settings.violations_topic,
            settings.dead_letter_topic,
        ]
        ensure_topics(stack.kafka, topics, PARTITIONS)
        try:
            for index in range(workers):
                with stack.log(index).open("wb") as log:
                    stack.workers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "connectors.cli", "--log-level", "warning", "worker"],
                            env={
                                **worker_env,
                                **_own_ports(settings, index),
                                "TRUTHSTREAM_DATA_DIR": str(Path(tmp) / f"faust-{index}"),
                            },
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,  # Ctrl-C reaches the command, which stops them in order
                        )
                    )
            yield stack
        finally:
            for worker in stack.workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in stack.workers:
                try:
                    worker.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()


def _own_ports(settings: Settings, index: int) -> dict[str, str]:
    """Worker `index`'s metrics port: the one given plus its index (workers on one host need a port each)."""
    return {"TRUTHSTREAM_METRICS_PORT": str(settings.metrics_port + index)} if settings.metrics_port else {}
