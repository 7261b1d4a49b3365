"""Failover under load: every final window must equal the one computed from the data.

    python bench/failover.py redis-cluster   # 3 masters + 3 replicas; one master SIGKILLed mid-run
    python bench/failover.py kafka-brokers   # 3 KRaft brokers, RF 3, min.insync.replicas 2; a leader SIGKILLed
    python bench/failover.py workers         # 4 workers; every 10 s one leaves (SIGKILL) or joins

Each run starts its own services, produces a labelled workload while the workers run, injects the
fault, supervises the workers as `truthstream up` and a process manager do (a worker that exits is
started again), closes every window, and prints one JSON line: the events, how long the run took,
the worker exits by code, the windows published, those published more than once (each must be
identical), and the windows that differ from the data (0 means exact). The Kafka run needs Java and
Maven (the jars of `.ci/kafka-pom.xml`), the Redis Cluster run Debian's redis-server and redis-cli.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from redis.cluster import ClusterNode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from benchmark import GRACE_S, WINDOW_S, worker_env, worker_progress, workload  # noqa: E402

from connectors.embedded import embedded_kafka, embedded_redis, free_ports  # noqa: E402
from connectors.kafka_span import read_topic  # noqa: E402
from stream.core.keying import event_id_on  # noqa: E402
from stream.core.timefmt import format_time  # noqa: E402
from stream.kafka_clients import KafkaConnection  # noqa: E402
from stream.stores.redis_connect import cluster_nodes  # noqa: E402

PARTITIONS = 4
CHUNKS = 40  # the workload is produced in this many parts, the fault injected after the fifth
TIMEOUT_S = 900.0


class Workers:
    """Worker processes supervised as a process manager would: one that exits is started again."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = {**os.environ, **env}, logs
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.exits: Counter[int] = Counter()
        self.started = 0

    def start(self) -> int:
        """Start one more worker; returns its number."""
        index = self.started
        self.started += 1
        with (self.logs / f"worker-{index}.log").open("ab") as out:
            self.procs[index] = subprocess.Popen(
                [sys.executable, "-m", "connectors.cli", "--log-level", "warning", "worker"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            )  # fmt: skip
        return index

    def supervise(self) -> None:
        """Start again every worker that exited (counting its exit code)."""
        for index, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.exits[proc.returncode] += 1
                del self.procs[index]
                self.start()

    def kill(self, index: int | None = None) -> None:
        """SIGKILL one worker (the oldest by default), not to be started again."""
        index = min(self.procs) if index is None else index
        proc = self.procs.pop(index)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- services ------------------------------------------------------------------------------------
@contextlib.contextmanager
def redis_cluster(workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """3 masters and 3 replicas of Debian's redis-server (append-only, fsync every second); yields the
    URL naming every node, and the 6 ports."""
    first = free_ports(6)
    ports = list(range(first, first + 6))
    for port in ports:
        node = workdir / f"redis-{port}"
        node.mkdir()
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--cluster-enabled", "yes",
             "--cluster-config-file", str(node / "nodes.conf"), "--cluster-node-timeout", "2000",
             "--pidfile", str(node / "redis.pid"), "--logfile", str(node / "redis.log"), "--dir", str(node)],
            check=True,
        )  # fmt: skip
    try:
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).ping(), f"redis-server on {port}")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "1",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(lambda: "cluster_state:ok" in _cli(ports[0], "cluster", "info"), "the cluster")
        time.sleep(2)  # every node learns the others' slots
        yield "redis://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/0", ports  # every node: any may fail
    finally:
        for port in ports:
            pid = workdir / f"redis-{port}" / "redis.pid"
            if pid.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid.read_text()), signal.SIGTERM)


def master_of(ports: list[int], key: str) -> int:
    """The port of the master serving `key`'s slot."""
    alive = next(p for p in ports if _cli(p, "ping").strip() == "PONG")
    slot = int(_cli(alive, "cluster", "keyslot", key))
    for line in _cli(alive, "cluster", "nodes").splitlines():
        fields = line.split()
        if "master" in fields[2] and "fail" not in fields[2]:
            for span in fields[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split(":")[1].split("@")[0])
    raise RuntimeError(f"no master serves slot {slot}")


@contextlib.contextmanager
def kafka_cluster(workdir: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]], list[int]]]:
    """3 Apache Kafka nodes (KRaft, each broker and controller), replication factor 3 and
    min.insync.replicas 2 by default; yields the bootstrap URL, the processes and their ports."""
    libs = ROOT / ".ci" / ".work" / "failover-kafka-libs"
    if not libs.exists() or not any(libs.iterdir()):
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(ROOT / ".ci" / "kafka-pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={libs}"],
            check=True,
        )  # fmt: skip
    classpath = f"{libs}/*"
    first = free_ports(6)
    ports, controllers = [first, first + 1, first + 2], [first + 3, first + 4, first + 5]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, c in enumerate(controllers))
    cluster_id = subprocess.run(
        ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], check=True, capture_output=True, text=True
    ).stdout.strip()
    procs = []
    try:
        for i, (port, controller) in enumerate(zip(ports, controllers)):
            node = workdir / f"kafka-{i + 1}"
            node.mkdir()
            props = node / "server.properties"
            props.write_text(
                "\n".join([
                    "process.roles=broker,controller", f"node.id={i + 1}", f"controller.quorum.voters={voters}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}", "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT", f"log.dirs={node / 'data'}", "num.partitions=4",
                    "default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
                    "offsets.topic.num.partitions=4", "transaction.state.log.replication.factor=3",
                    "transaction.state.log.min.isr=2", "group.initial.rebalance.delay.ms=0",
                    "unclean.leader.election.enable=false",
                ])
                + "\n"
            )  # fmt: skip
            (node / "log4j.properties").write_text(
                "log4j.rootLogger=WARN, file\nlog4j.appender.file=org.apache.log4j.FileAppender\n"
                f"log4j.appender.file.File={node}/server.log\n"
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            )
            subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            with (node / "stdout.log").open("wb") as out:
                java = ["java", "-Xmx384m", f"-Dlog4j.configuration=file:{node}/log4j.properties", "-cp", classpath]
                procs.append(subprocess.Popen([*java, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT))
        bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
        _wait(
            lambda: len(KafkaAdminClient(bootstrap_servers=bootstrap).describe_cluster()["brokers"]) == 3, "3 brokers"
        )
        yield f"kafka://{bootstrap}", procs, ports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    """The node id leading a partition."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [described] = admin.describe_topics([topic])
        return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)
    finally:
        admin.close()


def _cli(port: int, *command: str) -> str:
    """A redis-cli command's reply, as text ("" when the node does not answer)."""
    done = subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True, text=True, timeout=10)
    return done.stdout if done.returncode == 0 else ""


def _wait(check: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.5)
    raise RuntimeError(f"{what} not ready in {timeout:.0f} s")


# -- the run -------------------------------------------------------------------------------------
def topics_for(bootstrap: str, tag: str, replication: int) -> tuple[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    names = [f"fo-{tag}-{kind}" for kind in ("inferences", "labels", "metrics", "violations", "dead-letters")]
    try:
        admin.create_topics([NewTopic(n, PARTITIONS, replication) for n in names])
    finally:
        admin.close()
    return names[0], names[1]


def run(
    scenario: str,
    broker: str,
    redis_url: str,
    events: int,
    logs: Path,
    fault: Any,
    workers: int,
    every: float = 0.0,
    seconds: float = 120.0,
    **extra: Any,
) -> dict[str, Any]:
    """Produce the workload in CHUNKS parts over `seconds` while the workers run; call
    `fault(workers, tag, topics)` after the fifth part (and every `every` seconds after, if given);
    close every window; check them."""
    bootstrap = broker.removeprefix("kafka://")
    tag = uuid.uuid4().hex[:6]
    replication = 3 if scenario == "kafka-brokers" else 1
    topics = topics_for(bootstrap, tag, replication)
    pairs, table = workload(events, 4, 2, 7)
    env = worker_env(broker, redis_url, topics, tag, rolling_size=0, **extra)
    env.update(TRUTHSTREAM_METRICS_TOPIC=f"fo-{tag}-metrics", TRUTHSTREAM_VIOLATIONS_TOPIC=f"fo-{tag}-violations",
               TRUTHSTREAM_DEAD_LETTER_TOPIC=f"fo-{tag}-dead-letters")  # fmt: skip
    cluster = extra.get("redis_cluster") == "on"
    if cluster:
        first, others = cluster_nodes(redis_url)
        client: Any = redis.RedisCluster.from_url(first, startup_nodes=[ClusterNode(h, p) for h, p in others])
    else:
        client = redis.Redis.from_url(redis_url)
    applied = worker_progress(client, f"bench-{tag}", topics, PARTITIONS)
    supervised = Workers(env, logs)
    for _ in range(workers):
        supervised.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, retries=20)
    started = time.monotonic()
    faults, last_fault = 0, 0.0
    rng = random.Random(3)
    try:
        size = math.ceil(len(pairs) / CHUNKS)
        for part in range(CHUNKS):
            chunk = pairs[part * size : (part + 1) * size]
            for key, inference, _ in chunk:
                producer.send(topics[0], key=key.encode(), value=inference)
            for key, _, label in rng.sample(chunk, len(chunk)):
                producer.send(topics[1], key=key.encode(), value=label)
            producer.flush()
            supervised.supervise()
            if part == 4 or (every and part > 4 and time.monotonic() - last_fault >= every):
                fault(supervised, tag, topics)
                faults, last_fault = faults + 1, time.monotonic()
            time.sleep(max(0.0, started + (part + 1) * seconds / CHUNKS - time.monotonic()))  # paced over `seconds`
        end = table["time"].max() + WINDOW_S + GRACE_S + 1
        for p in range(PARTITIONS):  # event time past every window on every partition
            closing = event_id_on("close", p, PARTITIONS)
            inference = {"event_id": closing, "model": "m0", "inference_time": format_time(end), "prediction": 0}
            producer.send(topics[0], key=closing.encode(), value=json.dumps(inference).encode(), partition=p)
            label = {"event_id": closing, "label": 0, "label_time": format_time(end)}
            producer.send(topics[1], key=closing.encode(), value=json.dumps(label).encode(), partition=p)
        producer.flush()
        table = table.assign(start=[math.floor(t / WINDOW_S) * WINDOW_S for t in table["time"]])
        expected = {(m, format_time(s)): g for (m, s), g in table.groupby(["model", "start"])}
        kafka = KafkaConnection(bootstrap.split(","))
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            supervised.supervise()
            if every and time.monotonic() - last_fault >= every and faults < 12:
                fault(supervised, tag, topics)
                faults, last_fault = faults + 1, time.monotonic()
            records = [r for r in read_topic(kafka, f"fo-{tag}-metrics") if r["window"]["kind"] == "tumbling"]
            if {(r["model"], r["window"]["start"]) for r in records} >= set(expected) and applied() >= 2 * events:
                break
            time.sleep(2)
        elapsed = time.monotonic() - started
    finally:
        producer.close()
        supervised.stop()
    by_window: dict[tuple[str, str], list[str]] = {}
    for r in records:
        by_window.setdefault((r["model"], r["window"]["start"]), []).append(json.dumps(r, sort_keys=True))
    wrong = 0
    for key, group in expected.items():
        published = [json.loads(text) for text in by_window.get(key, [])]
        if not published:
            wrong += 1
            continue
        stats = next(v for k, v in published[-1].items() if k.endswith("_metrics"))
        accuracy = float((group["label"] == group["prediction"]).mean())
        if published[-1]["sample_count"] != len(group) or abs(stats["accuracy"]["value"] - accuracy) > 1e-9:
            wrong += 1
    return {
        "scenario": scenario,
        "events": 2 * events,
        "faults": faults,
        "seconds": round(elapsed, 1),
        "worker_exits": {str(k): v for k, v in supervised.exits.items()},
        "windows": len(expected),
        "published_again": sum(len(v) > 1 for v in by_window.values()),
        "republished_differently": sum(len(set(v)) > 1 for v in by_window.values()),
        "wrong_windows": wrong,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["redis-cluster", "kafka-brokers", "workers"])
    parser.add_argument("--events", type=int, default=40_000, help="inferences (each with its label)")
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds over which they are produced")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the services it started on the way out
    with tempfile.TemporaryDirectory(prefix="truthstream-failover-") as tmp:
        work = Path(tmp)
        if args.scenario == "redis-cluster":
            with embedded_kafka() as broker, redis_cluster(work) as (url, ports):

                def kill_master(_: Workers, tag: str, topics: tuple[str, str]) -> None:
                    port = master_of(ports, f"{{bench-{tag}:0}}")  # the slot of input partition 0's state
                    pid = int((work / f"redis-{port}" / "redis.pid").read_text())
                    os.kill(pid, signal.SIGKILL)

                result = run(
                    args.scenario,
                    broker,
                    url,
                    args.events,
                    work,
                    kill_master,
                    2,
                    seconds=args.seconds,
                    redis_cluster="on",
                )
        elif args.scenario == "kafka-brokers":
            with kafka_cluster(work) as (broker, procs, _), embedded_redis() as url:

                def kill_leader(_: Workers, tag: str, topics: tuple[str, str]) -> None:
                    leader = leader_of(broker.removeprefix("kafka://"), topics[0], 0)
                    procs[leader - 1].send_signal(signal.SIGKILL)

                result = run(args.scenario, broker, url, args.events, work, kill_leader, 2, seconds=args.seconds)
        else:
            with embedded_kafka() as broker, embedded_redis() as url:
                joins = iter([False, True] * 20)

                def churn(workers: Workers, tag: str, topics: tuple[str, str]) -> None:
                    if next(joins) or len(workers.procs) <= 1:
                        workers.start()
                    else:
                        workers.kill()

                result = run(args.scenario, broker, url, args.events, work, churn, 4, every=10.0, seconds=args.seconds)
        print(json.dumps(result))
        print(f"logs were in {work} (deleted)", file=sys.stderr)
    return 0 if result["wrong_windows"] == 0 and result["republished_differently"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
