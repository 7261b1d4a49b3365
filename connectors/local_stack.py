"""A whole truthstream on this machine: the embedded broker and Redis, the topics, and worker processes.

Used by `truthstream up` and `truthstream demo`. Everything runs as child processes of the
command and stops with it; nothing survives: the embedded broker keeps topics in memory, and
Redis runs without persistence. `LocalStack.check` supervises: a worker or Redis that ends is
started again (the workers then rebuild Redis's state from the topics), and what cannot be
(the broker, a worker that cannot work or keeps ending) stops everything with one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from connectors.embedded import Service, free_port, redis_server, running, tansu
from stream.errors import TruthstreamError
from stream.kafka_clients import KafkaConnection
from stream.settings import Settings
from stream.worker.topics import ensure_topics

PARTITIONS = 4
STOP_TIMEOUT_S = 20.0


# A worker that exits this often within RESTART_WINDOW_S is not restarted again: `up` stops.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 120.0
# What a worker's exit code means (see stream.worker.outages), for the line `up` prints.
EXIT_MEANINGS = {
    2: "a setting or state it cannot work with",
    70: "a bug",
    75: "Redis lost state: it reads the topics again from Redis's positions",
}
CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def plain(text: str) -> str:
    """Text without terminal escape sequences or control characters (a log line, printed safely)."""
    return CONTROL.sub("", text)


def last_line(log: Path) -> str:
    """The last non-empty line of a log, printable (empty when there is none)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((plain(line).strip() for line in reversed(lines) if plain(line).strip()), "")[:300]


def exit_meaning(code: int) -> str:
    """`exited with 75 (Redis lost state ...)`, `was killed by SIGKILL`, ..."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    meaning = EXIT_MEANINGS.get(code)
    return f"exited with {code}" + (f" ({meaning})" if meaning else "")


@dataclass
class Worker:
    """One worker process of the stack, and when it was started."""

    index: int
    command: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)

    def start(self) -> None:
        """Start (or start again) the worker process, appending to its log."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the command, which stops them in order
            )
        self.starts.append(time.monotonic())

    def restarts_lately(self) -> int:
        """Starts within the last RESTART_WINDOW_S, less the first."""
        since = time.monotonic() - RESTART_WINDOW_S
        return sum(1 for t in self.starts[1:] if t >= since)


@dataclass
class LocalStack:
    """What `local_stack` started: where the services listen, the settings the workers run with."""

    broker: str
    redis_url: str
    settings: Settings
    workdir: Path
    broker_service: Service
    redis_service: Service
    workers: list[Worker] = field(default_factory=list)

    @property
    def kafka(self) -> KafkaConnection:
        """How a client connects to the embedded broker."""
        return KafkaConnection([self.broker.split("://", 1)[1]])

    def log(self, index: int) -> Path:
        """The log file of worker `index`."""
        return self.workdir / f"worker-{index}.log"

    def logs(self) -> list[Path]:
        """Every log file of the stack: the workers', Redis's, the broker's."""
        return [w.log for w in self.workers] + [self.redis_service.log, self.broker_service.log]

    def check(self) -> list[str]:
        """Supervise: start again a worker or Redis that ended, and return one line for each; raise
        TruthstreamError (one line naming what died, how, and its log) when the broker ended (its
        topics were in memory), or a worker cannot work (exit code 2) or keeps ending."""
        notes = []
        code = self.broker_service.exit_code()
        if code is not None:
            raise TruthstreamError(
                f"the embedded broker {exit_meaning(code)}; its topics were in memory, so everything stops "
                f"(its log: {self.broker_service.log})"
            )
        code = self.redis_service.exit_code()
        if code is not None:
            self.redis_service.start()
            notes.append(
                f"Redis {exit_meaning(code)} and was started again, empty: the workers find its state gone and read "
                f"the topics again to rebuild it (its log: {self.redis_service.log})"
            )
        for worker in self.workers:
            code = worker.proc.poll() if worker.proc is not None else None
            if code is None:
                continue
            where = f"its log: {worker.log}" + (f", last line: {line}" if (line := last_line(worker.log)) else "")
            if code == 2:
                raise TruthstreamError(f"worker {worker.index} {exit_meaning(code)}; everything stops ({where})")
            if worker.restarts_lately() >= MAX_RESTARTS:
                raise TruthstreamError(
                    f"worker {worker.index} {exit_meaning(code)}, the {MAX_RESTARTS + 1}th time within "
                    f"{RESTART_WINDOW_S:.0f} s; everything stops ({where})"
                )
            worker.start()
            notes.append(f"worker {worker.index} {exit_meaning(code)} and was started again ({where})")
        return notes


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
    with tempfile.TemporaryDirectory(prefix="truthstream-local-") as tmp:
        workdir = Path(tmp)
        with (
            running(tansu(port_or_free(broker_port), workdir)) as broker_service,
            running(redis_server(port_or_free(redis_port), workdir)) as redis_service,
        ):
            broker, redis_url = f"kafka://{broker_service.url_host}", f"redis://{redis_service.url_host}/0"
            worker_env = {**os.environ, **env, "TRUTHSTREAM_BROKER": broker, "TRUTHSTREAM_REDIS_URL": redis_url}
            settings = Settings.from_env(worker_env)  # refuses bad settings before anything starts
            stack = LocalStack(broker, redis_url, settings, workdir, broker_service, redis_service)
            topics = [
                settings.inference_topic,
                settings.label_topic,
                settings.metrics_topic,
                settings.violations_topic,
                settings.dead_letter_topic,
            ]
            ensure_topics(stack.kafka, topics, PARTITIONS)
            command = [sys.executable, "-m", "connectors.cli", "--log-level", "warning", "worker"]
            try:
                for index in range(workers):
                    own = {**_own_ports(settings, index), "TRUTHSTREAM_DATA_DIR": str(workdir / f"faust-{index}")}
                    worker = Worker(index, command, {**worker_env, **own}, stack.log(index))
                    stack.workers.append(worker)
                    worker.start()
                yield stack
            finally:
                _stop_workers([w.proc for w in stack.workers if w.proc is not None])


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _own_ports(settings: Settings, index: int) -> dict[str, str]:
    """Worker `index`'s metrics port: the one given plus its index (workers on one host need a port each)."""
    return {"TRUTHSTREAM_METRICS_PORT": str(settings.metrics_port + index)} if settings.metrics_port else {}
