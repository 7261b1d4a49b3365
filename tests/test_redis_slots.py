"""Every Lua script the Redis store runs touches keys of one hash slot only, so a new script cannot
silently break cluster mode: a workload that exercises every script (joins, labels first and long,
duplicates, expiry, eviction, idle floor, window closes, accounting, the outbox) runs against a real
Redis while MONITOR records what each script executed; Redis itself says which arguments are keys
(COMMAND GETKEYS) and redis-py computes their slots."""

from __future__ import annotations

import random
import re
import socket
import threading
from urllib.parse import urlparse

import pytest
import redis
from redis.crc import key_slot

from stream.core.records import INFERENCE
from stream.settings import Settings
from stream.stores.redis.keys import PARTITION_KEYS, Keys
from tests.factories import T0, Topic, inference, label
from tests.harness import CLUSTER, Harness

ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b'"': b'"', b"\\": b"\\"}


def unescape(text: bytes) -> bytes:
    """An argument as MONITOR quotes it (sdscatrepr), back to its bytes."""
    out, i = bytearray(), 0
    while i < len(text):
        if text[i : i + 1] == b"\\":
            if text[i + 1 : i + 2] == b"x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
                continue
            out += ESCAPES[text[i + 1 : i + 2]]
            i += 2
            continue
        out.append(text[i])
        i += 1
    return bytes(out)


class Monitor(threading.Thread):
    """MONITOR on a raw socket, collecting the lines until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379))
        self.sock.sendall(b"MONITOR\r\n")
        self.lines: list[bytes] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        buffer = b""
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n")
            self.lines += complete

    def stop(self) -> list[bytes]:
        self.stopped.set()
        self.join()
        self.sock.close()
        return self.lines


def script_runs(lines: list[bytes]) -> list[list[list[bytes]]]:
    """The commands of each script run: a script runs alone, so its commands are consecutive lines
    marked [db lua], between the lines of other clients' commands."""
    runs: list[list[list[bytes]]] = []
    previous_lua = False
    for line in lines:
        is_lua = b" lua] " in line
        if is_lua:
            args = [unescape(a) for a in ARG.findall(line.split(b"] ", 1)[1])]
            if not previous_lua:
                runs.append([])
            runs[-1].append(args)
        previous_lua = is_lua
    return runs


def workload(h: Harness) -> None:
    """Joins, labels first (one long), duplicates, bad records, expiry, eviction and window closes on
    four partitions, then an idle close."""
    inf, lab = Topic("inferences", 4), Topic("labels", 4)
    rng, msgs = random.Random(3), []
    for i in range(300):
        p, t, event_id = i % 4, T0 + i, f"e{i}"
        if i % 5 == 0:
            msgs.append(lab.msg(label(event_id, 1, label_time=t + 1, note="x" * 200 if i % 10 else None), p))
        msgs.append(inf.msg(inference(event_id, t, rng.randint(0, 1), rng.random()), p))
        if i % 5 and i % 3:
            msgs.append(lab.msg(label(event_id, 1, label_time=t + 2), p))
        if i % 17 == 0:
            msgs.append(lab.msg(label(event_id, 0, label_time=t + 3), p))
    msgs += [lab.msg(None, i % 4, raw=b"{not json") for i in range(4)]
    h.feed(msgs, batch=50)
    h.feed([inf.msg(inference(f"end{p}", T0 + 5000, 0, 0.5), p) for p in range(4)])
    h.idle(T0 + 20000)
    assert any(m.side == INFERENCE for m in msgs)


def monitored(redis_url: str) -> tuple[list[bytes], redis.Redis]:
    """MONITOR's lines while the workload runs on four partitions under the prefix 'slots', and a
    client that answers COMMAND GETKEYS."""
    settings = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=20, rolling_every=7,
                        label_ttl=600.0, max_pending=150)  # fmt: skip
    harness = Harness("redis", settings, None, 4, redis_url, prefix="slots")
    client = redis.Redis.from_url(redis_url)
    client.response_callbacks.pop("COMMAND", None)  # GETKEYS answers a plain list of keys
    for key in client.scan_iter(match="slots:*"):
        client.delete(key)
    monitor = Monitor(redis_url)
    monitor.start()
    try:
        workload(harness)
    finally:
        lines = monitor.stop()
    return lines, client


def keys_of(client: redis.Redis, args: list[bytes], getkeys: dict[tuple[bytes, int], list[int]]) -> list[bytes]:
    """The keys of one command, as Redis says (the positions depend only on the command and its
    argument count: none here has numkeys)."""
    shape = (args[0].upper(), len(args))
    if shape not in getkeys:
        try:
            keys = client.execute_command("COMMAND", "GETKEYS", *args)
        except redis.ResponseError:  # a command without keys (PING, SCRIPT LOAD, ...)
            keys = []
        getkeys[shape] = [args.index(k) for k in keys]
    return [args[i] for i in getkeys[shape]]


@pytest.mark.skipif(CLUSTER, reason="MONITOR watches one Redis; on a cluster a cross-slot script fails anyway")
def test_every_script_touches_keys_of_one_slot(redis_url: str) -> None:
    """Each script run's keys hash to one cluster slot, and the workload reached every script's
    distinctive commands."""
    lines, client = monitored(redis_url)
    runs = script_runs(lines)
    assert len(runs) > 50
    seen_commands: set[bytes] = set()
    getkeys: dict[tuple[bytes, int], list[int]] = {}
    for commands in runs:
        slots = set()
        for args in commands:
            seen_commands.add(args[0].upper())
            slots |= {key_slot(k) for k in keys_of(client, args, getkeys)}
        assert len(slots) <= 1, [a[:2] for a in commands]
    for command in ("HSET", "HDEL", "RPUSH", "LTRIM", "LRANGE", "RENAME", "ZADD", "INCR", "SET"):
        assert command.encode() in seen_commands, command
    client.close()


@pytest.mark.skipif(CLUSTER, reason="MONITOR watches one Redis")
def test_every_key_the_store_touches_is_in_the_documented_layout(redis_url: str) -> None:
    """The key layout written in `stream.stores.redis.keys` holds every key that the scripts and the
    store's own commands touch, and the workload touches most of its rows."""
    lines, client = monitored(redis_url)
    layout = Keys("slots")
    getkeys: dict[tuple[bytes, int], list[int]] = {}
    kinds: dict[str | None, set[bytes]] = {}
    for line in lines:
        if b"] " not in line:
            continue
        args = [unescape(a) for a in ARG.findall(line.split(b"] ", 1)[1])]
        if not args or args[0].upper() in (b"EVALSHA", b"EVAL"):
            continue  # the script's own commands are on the lines after it
        for key in keys_of(client, args, getkeys):
            kinds.setdefault(layout.kind(key.decode("utf-8", "replace")), set()).add(key)
    assert None not in kinds, sorted(kinds[None])[:10]
    missing = set(PARTITION_KEYS) - set(kinds)
    # the workload writes no segment, no calibration (provisional lists) and no label past INLINE_BYTES
    assert missing <= {"admitted segment values", "provisional list", "provisional done", "long label"}, missing
    client.close()
