"""`truthstream up` as a new user runs it: started, fed records, followed, stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

import pytest

from connectors.embedded import free_port, free_ports
from connectors.kafka import json_producer
from stream.kafka_clients import KafkaConnection
from tests.factories import on_partition
from tests.integration.workload import Pair, inference_doc, label_doc, workload
from tests.processes import descendants, still_running

pytestmark = pytest.mark.integration


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout, line by line, as it comes."""
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            out.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return out


def wait_line(out: queue.Queue[str], pattern: str, seen: list[str], timeout: float = 90) -> re.Match[str]:
    """The first line matching `pattern` (every line read is kept in `seen`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = out.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    pytest.fail(f"no line matching {pattern!r} in {timeout} s:\n" + "\n".join(seen))


def close_windows(producer: Any, end: float, like: Pair, tag: str = "") -> None:
    """Event time past `end` on every partition (records keyed so that Kafka puts them there)."""
    for partition in range(4):
        tick_id, closer_id = on_partition(f"t{tag}", partition, 4), on_partition(f"u{tag}", partition, 4)
        tick = {**inference_doc(like), "event_id": tick_id, "inference_time": end}
        producer.send("inferences", key=tick_id, partition=partition, value=tick)
        closer = {"event_id": closer_id, "label": 0, "label_time": end}
        producer.send("labels", key=closer_id, partition=partition, value=closer)
    producer.flush()


def test_up_runs_the_real_worker_and_stops_everything_on_ctrl_c() -> None:
    """It prints the broker to produce to, then each closed window; SIGINT stops the workers, Redis and
    the broker: exit 0, no port left open, no worker left running."""
    metrics_port, page_port = free_ports(2), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "up", "--workers", "2", "--broker-port", "0", "--redis-port", "0",
         "--window-seconds", "60", "--label-grace", "10", "--min-samples", "10", "--rolling-size", "0",
         "--metrics-port", str(metrics_port), "--dashboard", str(page_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    seen: list[str] = []
    out = lines_of(proc)
    try:
        broker = wait_line(out, r"export TRUTHSTREAM_BROKER=(kafka://127\.0\.0\.1:(\d+))", seen)
        redis_port = int(wait_line(out, r"export TRUTHSTREAM_REDIS_URL=redis://127\.0\.0\.1:(\d+)", seen).group(1))
        kafka = KafkaConnection([broker.group(1).split("://")[1]])
        pairs = workload(n=300, per_window=100, window=60.0, drift_window=99, seed=41, max_label_delay=5)
        producer = json_producer(kafka)
        for p in pairs:
            producer.send("inferences", key=p.event_id, value=inference_doc(p))
            producer.send("labels", key=p.event_id, value=label_doc(p))
        end = pairs[-1].time + 1000
        close_windows(producer, end, pairs[0])
        producer.close()
        page = wait_line(out, r"The live page: (http://\S+)", seen).group(1)
        for _ in range(3):
            wait_line(out, r"churn v1\s+n=100 ", seen)
        for port in (metrics_port, metrics_port + 1):  # each worker its own port
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                assert b"truthstream_records_total" in reply.read()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(page + "api/snapshot", timeout=10) as reply:
                records = json.load(reply)["records"]
            # each window once or more: records are published at least once (a rebalance between the
            # two workers can publish a window again, and the page shows what the topic holds)
            metrics = [r["record"] for r in records if r["type"] == "metrics"]
            if len({r["window"]["start"] for r in metrics if r["window"]["kind"] == "tumbling"}) == 3:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the live page has not read the 3 windows: {[r['window'] for r in metrics]}")
    finally:
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    time.sleep(0.5)  # the reader thread takes the last lines
    while not out.empty():
        seen.append(out.get())
    assert proc.returncode == 130, "\n".join(seen)  # Ctrl-C, as for every command
    assert "stopped" in seen[-1]
    for port in (int(broker.group(2)), redis_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    assert len(started) >= 4  # the embedded broker, Redis and the two workers at least
    assert still_running(started) == [], "processes `up` started are still running"


def _command(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_up_starts_a_killed_worker_or_redis_again_and_stays_exact() -> None:
    """SIGKILL a worker, then Redis: `up` says what died, how, and where its log is (no escape codes),
    starts it again, and the workers rebuild Redis's state from the topics: the windows after are
    exact, and those published again are identical."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "up", "--workers", "2", "--broker-port", "0", "--redis-port", "0",
         "--window-seconds", "60", "--label-grace", "10", "--min-samples", "10", "--rolling-size", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    seen: list[str] = []
    out = lines_of(proc)
    try:
        broker = wait_line(out, r"export TRUTHSTREAM_BROKER=kafka://(127\.0\.0\.1:\d+)", seen).group(1)
        logs = wait_line(out, r"^Logs: (.*)$", seen).group(1).split(", ")
        assert [log.rsplit("/", 1)[1] for log in logs] == [
            "worker-0.log", "worker-1.log", "redis-server.log", "tansu.log",
        ]  # fmt: skip
        producer = json_producer(KafkaConnection([broker]))
        pairs = workload(n=400, per_window=100, window=60.0, drift_window=99, seed=43, max_label_delay=5)

        def send(part: list[Pair], tag: str) -> None:
            for p in part:
                producer.send("inferences", key=p.event_id, value=inference_doc(p))
                producer.send("labels", key=p.event_id, value=label_doc(p))
            close_windows(producer, part[-1].time + 61, part[0], tag)

        send(pairs[:200], "a")
        for _ in range(2):
            wait_line(out, r"churn v1\s+n=100 ", seen)
        workers = [pid for pid in descendants(proc.pid) if _command(pid).endswith(" worker ")]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        wait_line(out, r"worker \d was killed by SIGKILL and was started again \(its log: \S+worker-\d\.log", seen)
        [redis] = [pid for pid in descendants(proc.pid) if "redis-server" in _command(pid)]
        os.kill(redis, signal.SIGKILL)
        wait_line(out, r"Redis was killed by SIGKILL and was started again, empty", seen)
        send(pairs[200:], "b")
        wait_line(out, r"worker \d exited with 75 \(Redis lost state", seen, timeout=120)
        windows: dict[str, str] = {}
        deadline = time.monotonic() + 180
        while len(windows) < 4 and time.monotonic() < deadline:
            line = wait_line(out, r"churn v1\s+n=(\d+) ", seen).string
            window = line.split("churn v1")[0].strip()
            assert windows.setdefault(window, line) == line, "a window published again differs"
        assert sorted(line.split("n=")[1].split()[0] for line in windows.values()) == ["100"] * 4, windows
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    while not out.empty():
        seen.append(out.get())
    assert proc.returncode == 130, "\n".join(seen)  # Ctrl-C, as for every command
    assert not any(ch in line for line in seen for ch in "\x1b\x07\r"), "control characters printed"
