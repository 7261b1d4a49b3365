"""truthstream's benchmark: the worker against the framework's and the client's limits, in one run.

    python bench/benchmark.py [--events 200000] [--models 1] [--classes 2] [--json out.json]
                              [--broker kafka://HOST:PORT --redis-url redis://HOST:PORT/0]
                              [--cluster-url redis://HOST:PORT/0 --scale-out 1,2,4]

Without --broker/--redis-url it starts the embedded broker (tansu) and redis-server. It
produces N inference/label pairs (labels shuffled within chunks) to fresh topics, then
measures on the same messages, one after the other:

  raw aiokafka     getmany over every partition, no decoding        (the client's limit)
  faust no-op      an agent that only counts, batching as we do     (the framework's limit)
  truthstream      one `truthstream worker` process, steady state   (10% -> 90% of messages)
                   (no-op, worker, worker without deviations, worker with label-free estimates
                   (binary: a calibration fitted on the data) and many-models runs follow each
                   other --rounds times, in reverse order every other round; a ratio is the median
                   over rounds of the ratio within a round, beside the ratio of the best runs)
  truthstream xM   the same with --models-compare models            (1 vs many models)
  batch            pandas merge + scikit-learn per window, as an hourly job would; and the same
                   job held to the stream's p99 freshness (recomputing the open hourly window)
  freshness        label produced -> rolling metrics record, p50/p99, at half the max rate
                   (--rounds runs; the run of median p99 is reported, every run's p99 beside it)
  memory           Redis bytes per waiting inference, per waiting label and per joined pair's
                   tombstone (MEMORY USAGE of the run's keys, 36-character UUID event ids); RSS
  scale-out        with --cluster-url (a Redis Cluster node): 1, 2, 4 workers on 8 partitions,
                   each run's windows checked against the data
  many instances   the worker's inferences/s at --per instances a message (1: plain records; more:
                   SageMaker captures and ground truths, also with --per-engines engine processes),
                   --rounds rounds, windows checked (bench/batched.py)
  replay           `truthstream replay --out` (one process, and --processes as many as cores) over
                   the main topics against a raw aiokafka read of them, --replay-rounds rounds,
                   windows checked (bench/replay.py)

and prints a table with the ratios, the machine and the versions; --json writes the figures and
settings; --docs PAGE rewrites the stack's table in PAGE (the performance page comes from here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sklearn import metrics as skm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stream  # noqa: E402
from connectors.embedded import embedded_kafka, embedded_redis  # noqa: E402
from connectors.kafka import topic_partitions  # noqa: E402
from stream.core.timefmt import format_time  # noqa: E402
from stream.kafka_clients import KafkaConnection  # noqa: E402
from stream.settings import Settings  # noqa: E402
from stream.worker.topics import ensure_topics  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import docs_table  # noqa: E402

PARTITIONS = 4
SCALE_PARTITIONS = 8  # partitions of the scale-out run
T0 = 1_764_000_000.0
EVENT_STEP_S = 0.01  # event time between inferences: 100 per second of event time
WINDOW_S = 60.0
CHUNK = 10_000  # pairs per produced chunk; labels are shuffled within a chunk (100 s of event time)
LABEL_DELAY_S = 1.0
GRACE_S = 300.0  # more than a chunk's span: a shuffled label is never late, so results are exact
SAMPLE_S = 0.25  # progress sampling period
RUN_TIMEOUT_S = 900.0
BATCH_ENV = {k: v for k, v in os.environ.items() if k in ("TRUTHSTREAM_BATCH_SIZE", "TRUTHSTREAM_BATCH_TIMEOUT")}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="inference/label pairs (default 200000)")
    parser.add_argument("--models", type=int, default=1, help="models the pairs are spread over (default 1)")
    parser.add_argument("--classes", type=int, default=2, help="classes (2: binary; more: multiclass)")
    parser.add_argument(
        "--models-compare",
        type=int,
        default=1000,
        help="also run the worker with this many models (0: skip; default 1000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also run this many worker processes on the same topics and check their "
        "windows against the data (1: skip; default 2)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run the no-op, worker and many-models runs (and the freshness run) this many times, back to back "
        "in alternating order; ratios are the median over rounds of each round's ratio (default 3)",
    )
    parser.add_argument(
        "--freshness-seconds", type=float, default=20.0, help="length of the freshness run (default 20)"
    )
    parser.add_argument(
        "--pending", type=int, default=100_000, help="waiting inferences (and labels) for the memory figures"
    )
    parser.add_argument(
        "--cluster-url",
        help="a node of a Redis Cluster for the scale-out run (--scale-out workers on 8 partitions; default: skip)",
    )
    parser.add_argument(
        "--scale-out",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 4],
        help="worker counts of the scale-out run (default 1,2,4)",
    )
    parser.add_argument(
        "--per",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[1, 10, 100],
        help="instances a message of the many-instances runs: plain records for 1, SageMaker captures and ground "
        "truths for more, --per-instances inferences each (empty: skip; default 1,10,100)",
    )
    parser.add_argument(
        "--per-instances", type=int, default=200_000, help="inferences of each many-instances run (default 200000)"
    )
    parser.add_argument(
        "--per-engines",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=(1, 2),
        help="engine processes of the many-instances runs of more than one a message (default 1,2)",
    )
    parser.add_argument(
        "--replay-rounds",
        type=int,
        default=2,
        help="rounds of the replay run: `truthstream replay --out` over the main topics against a raw aiokafka "
        "read of them (0: skip; default 2)",
    )
    parser.add_argument("--broker", help="Kafka URL (default: an embedded tansu)")
    parser.add_argument("--redis-url", help="Redis URL (default: an embedded redis-server)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--docs",
        type=Path,
        metavar="PAGE",
        help="rewrite this stack's table of current figures in PAGE (docs/performance.md)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.rounds < 1 or args.events < 8:
        parser.error("--rounds must be at least 1 and --events at least 8")
    return args


@contextlib.contextmanager
def services(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        broker = args.broker or stack.enter_context(embedded_kafka())
        redis_url = args.redis_url or stack.enter_context(embedded_redis())
        yield broker, redis_url


# -- workload -----------------------------------------------------------------------------------
def workload(n: int, models: int, classes: int, seed: int) -> tuple[list[tuple[str, bytes, bytes]], pd.DataFrame]:
    """(key, inference bytes, label bytes) in production order, and the same data as a table."""
    rng = random.Random(seed)
    rows, out = [], []
    for i in range(n):
        y = rng.randrange(classes)
        pred = y if rng.random() < 0.85 else rng.randrange(classes)
        score = min(1.0, max(0.0, (0.7 if pred == 1 else 0.3) + rng.uniform(-0.29, 0.29)))
        # event ids as production systems make them: 36-character UUIDs
        event_id, model, t = str(uuid.UUID(int=rng.getrandbits(128))), f"m{i % models}", T0 + i * EVENT_STEP_S
        inference = {
            "event_id": event_id,
            "model": model,
            "model_version": "1",
            "inference_time": format_time(t),
            "prediction": pred,
            "features": {"f1": round(rng.random(), 4), "f2": rng.randrange(100)},
        }
        if classes == 2:
            inference["probability"] = round(score, 4)
        label = {"event_id": event_id, "label": y, "label_time": format_time(t + LABEL_DELAY_S)}
        out.append((event_id, json.dumps(inference).encode(), json.dumps(label).encode()))
        rows.append((event_id, model, t, y, pred, score))
    return out, pd.DataFrame(rows, columns=["event_id", "model", "time", "label", "prediction", "score"])


def produce(
    kafka: KafkaConnection,
    topics: tuple[str, str],
    pairs: list[tuple[str, bytes, bytes]],
    seed: int,
    chunk: int = CHUNK,
    times: list[float] | None = None,
) -> float:
    """Produce the pairs, the labels of every `chunk` pairs shuffled; returns the seconds it took.
    With `times` (each pair's event time) the records carry it as their Kafka timestamp, the label's
    LABEL_DELAY_S later, as a live producer would stamp them (a label without `label_time` is
    timed by its record)."""
    rng = random.Random(seed)
    stamp = dict(zip((key for key, _, _ in pairs), times)) if times else {}
    producer = KafkaProducer(**kafka.kafka_python(), acks=1, linger_ms=20, batch_size=256 * 1024)
    started = time.perf_counter()
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        for key, inference, _ in part:
            at = stamp.get(key)
            producer.send(topics[0], key=key.encode(), value=inference, timestamp_ms=at and int(at * 1000))
        shuffled = list(part)
        rng.shuffle(shuffled)
        for key, _, label in shuffled:
            at = stamp.get(key)
            label_ms = at and int((at + LABEL_DELAY_S) * 1000)
            producer.send(topics[1], key=key.encode(), value=label, timestamp_ms=label_ms)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


def fresh_topics(kafka: KafkaConnection, tag: str, partitions: int = PARTITIONS) -> tuple[str, str]:
    topics = (f"bench-{tag}-inferences", f"bench-{tag}-labels")
    ensure_topics(kafka, topics, partitions)
    return topics


def sync_redis(url: str, cluster: bool) -> Any:
    """The benchmark's own Redis client (redis-py's cluster client for a cluster node)."""
    return redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)


def connection(broker: str) -> KafkaConnection:
    """How the benchmark's own clients connect: the broker, with any TRUTHSTREAM_KAFKA_* security settings."""
    return Settings.from_env(broker=broker).kafka()


# -- consumers ------------------------------------------------------------------------------------
def raw_aiokafka(kafka: KafkaConnection, topics: tuple[str, str], total: int) -> float:
    """Messages per second of a bare aiokafka consumer reading everything (no decoding)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATP

    async def run() -> float:
        consumer = AIOKafkaConsumer(
            **kafka.aiokafka(), enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            parts = [ATP(t, p) for t in topics for p in range(PARTITIONS)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            seen, started = 0, time.perf_counter()  # from the first fetch: one getmany can hold it all
            while seen < total:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                seen += sum(len(v) for v in batch.values())
            return total / (time.perf_counter() - started)
        finally:
            await consumer.stop()

    return asyncio.run(run())


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Messages per second between 10 % and 90 % of `total`, interpolated from progress samples."""

    def when(level: float) -> float:
        target = level * total
        for (t0, n0), (t1, n1) in itertools.pairwise(samples):
            if n0 <= target <= n1 and n1 > n0:
                return t0 + (t1 - t0) * (target - n0) / (n1 - n0)
        raise RuntimeError("progress never reached the level")

    return 0.8 * total / (when(0.9) - when(0.1))


def run_until(
    command: list[str], env: dict[str, str], progress: Callable[[], int], total: int, log: Path, processes: int = 1
) -> tuple[float, float, int]:
    """Start processes, sample their progress until `total`, return (steady msgs/s, wall s, RSS of the first)."""
    procs = []
    for i in range(processes):
        with log.with_suffix(f".{i}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            )
    proc = procs[0]
    try:
        samples, started = [], time.perf_counter()
        while True:
            done = progress()
            samples.append((time.perf_counter(), done))
            if done >= total:
                break
            if proc.poll() is not None or time.perf_counter() - started > RUN_TIMEOUT_S:
                raise RuntimeError(f"{command} stopped at {done}/{total}; see {log.with_suffix('.0.log')}")
            time.sleep(SAMPLE_S)
        rss = rss_bytes(proc.pid)
        first = next(t for t, n in samples if n > 0)
        return steady_rate(samples, total), samples[-1][0] - first, rss
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def calibration_file(table: pd.DataFrame, logs: Path) -> Path:
    """calibration.json fitted on the workload itself, as `truthstream baseline` would fit it."""
    from stream.core.baseline import Baseline
    from stream.core.calibration import fit_calibration

    base = Baseline("BinaryClassification")
    base.add(
        table["label"].astype(str).tolist(),
        table["prediction"].astype(str).tolist(),
        table["score"].round(4).to_numpy(),
        table["event_id"].tolist(),
    )
    calibration, brier = fit_calibration(base.full)
    path = logs / "calibration.json"
    path.write_text(json.dumps(calibration.to_doc(brier)))
    return path


def worker_env(broker: str, redis_url: str, topics: tuple[str, str], tag: str, **extra: Any) -> dict[str, str]:
    env = {
        "TRUTHSTREAM_BROKER": broker,
        "TRUTHSTREAM_REDIS_URL": redis_url,
        "TRUTHSTREAM_APP_ID": f"bench-{tag}",
        "TRUTHSTREAM_REDIS_PREFIX": f"bench-{tag}",
        "TRUTHSTREAM_INFERENCE_TOPIC": topics[0],
        "TRUTHSTREAM_LABEL_TOPIC": topics[1],
        "TRUTHSTREAM_METRICS_TOPIC": f"bench-{tag}-metrics",
        "TRUTHSTREAM_VIOLATIONS_TOPIC": f"bench-{tag}-violations",
        "TRUTHSTREAM_DEAD_LETTER_TOPIC": f"bench-{tag}-dead-letters",
        "TRUTHSTREAM_WINDOW_SECONDS": str(WINDOW_S),
        "TRUTHSTREAM_LABEL_GRACE": str(GRACE_S),
        **BATCH_ENV,
    }
    env.update({f"TRUTHSTREAM_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def worker_progress(client: Any, prefix: str, topics: tuple[str, str], partitions: int) -> Callable[[], int]:
    """Messages the workers applied: the offsets in each partition's checkpoint hash (key layout 2)."""

    def applied() -> int:
        pipe = client.pipeline(transaction=False)
        for p in range(partitions):
            pipe.hmget(f"{prefix}:{{{prefix}:{p}}}:ck", *topics)
        return sum(int(v) + 1 for offsets in pipe.execute() for v in offsets if v is not None)

    return applied


def truthstream_run(
    broker: str,
    redis_url: str,
    topics: tuple[str, str],
    tag: str,
    total: int,
    logs: Path,
    workers: int = 1,
    partitions: int = PARTITIONS,
    **extra: Any,
) -> tuple[float, float, int]:
    client = sync_redis(redis_url, extra.get("redis_cluster") == "on")
    env = worker_env(broker, redis_url, topics, tag, **extra)
    return run_until(
        [sys.executable, "-m", "connectors.cli", "--log-level", "warning", "worker"],
        env,
        worker_progress(client, f"bench-{tag}", topics, partitions),
        total,
        logs / f"worker-{tag}.log",
        processes=workers,
    )


def check_results(tag: str, table: pd.DataFrame, broker: str) -> int:
    """Windows whose published sample count or accuracy differs from the data's, plus windows that
    must have closed but were not published (0 means correct)."""
    kafka = connection(broker)
    from connectors.kafka_span import read_topic

    published = {
        (r["model"], r["window"]["start"]): r
        for r in read_topic(kafka, f"bench-{tag}-metrics")
        if r["window"]["kind"] == "tumbling"
    }
    # Every partition has passed this event time (labels are shuffled within CHUNK pairs): a window
    # ending before it, plus the grace, is closed.
    closed_before = table["time"].max() - CHUNK * EVENT_STEP_S - GRACE_S
    table = table.assign(start=[math.floor(t / WINDOW_S) * WINDOW_S for t in table["time"]])
    wrong = 0
    for (model, start), group in table.groupby(["model", "start"]):
        record = published.get((model, format_time(start)))
        if record is None:
            wrong += int(start + WINDOW_S <= closed_before)  # else still open: the run ends first
            continue
        stats = next(v for k, v in record.items() if k.endswith("_metrics"))
        if (
            record["sample_count"] != len(group)
            or abs(stats["accuracy"]["value"] - float((group["label"] == group["prediction"]).mean())) > 1e-9
        ):
            wrong += 1
    return wrong


# -- the batch alternative --------------------------------------------------------------------------
def _window_metrics(y: np.ndarray, p: np.ndarray, scores: np.ndarray | None, classes: int) -> None:
    """What the batch job computes per window: the scalars the stream publishes, with scikit-learn."""
    average = "binary" if classes == 2 else "weighted"
    skm.confusion_matrix(y, p)
    skm.accuracy_score(y, p)
    skm.precision_score(y, p, average=average, zero_division=0)
    skm.recall_score(y, p, average=average, zero_division=0)
    skm.f1_score(y, p, average=average, zero_division=0)
    if scores is not None and len(set(y)) == 2:
        skm.roc_auc_score(y, scores)


def parsed(pairs: list[tuple[str, bytes, bytes]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The inference and label JSON lines as tables, as the batch job reads them."""
    return pd.DataFrame([json.loads(i) for _, i, _ in pairs]), pd.DataFrame([json.loads(x) for _, _, x in pairs])


def batch_job(pairs: list[tuple[str, bytes, bytes]], classes: int) -> float:
    """Pairs per second of an hourly-style job: parse JSON lines, merge, scikit-learn per window."""
    started = time.perf_counter()
    inferences, labels = parsed(pairs)
    joined = inferences.merge(labels, on="event_id")
    joined["window"] = (
        pd.to_datetime(joined["inference_time"], format="ISO8601").astype("int64") // 10**9 // int(WINDOW_S)
    )
    for _, group in joined.groupby(["model", "model_version", "window"]):
        scores = group["probability"].to_numpy() if classes == 2 else None
        _window_metrics(group["label"].to_numpy(), group["prediction"].to_numpy(), scores, classes)
    return len(pairs) / (time.perf_counter() - started)


def batch_at_freshness(pairs: list[tuple[str, bytes, bytes]], classes: int, freshness_s: float) -> dict[str, float]:
    """The batch job held to the stream's freshness: to publish metrics at most `freshness_s` old,
    it must recompute the open window from scratch (merge + scikit-learn, parsing excluded) that
    often. Refresh time is fitted as fixed + per-pair cost over window sizes taken from the data;
    the largest window one refresh can handle in `freshness_s`, spread over an hour (SageMaker's
    schedule, and the window a user compares with), is the traffic it can monitor that fresh."""
    inferences, labels = parsed(pairs)
    sizes = [len(pairs) // 8, len(pairs) // 4, len(pairs) // 2, len(pairs)]
    seconds = []
    for size in sizes:
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            joined = inferences.iloc[:size].merge(labels.iloc[:size], on="event_id")
            scores = joined["probability"].to_numpy() if classes == 2 else None
            _window_metrics(joined["label"].to_numpy(), joined["prediction"].to_numpy(), scores, classes)
            best = min(best, time.perf_counter() - started)
        seconds.append(best)
    per_pair, fixed = np.polyfit(sizes, seconds, 1)
    window_pairs = max(0.0, (freshness_s - fixed) / per_pair)
    return {
        "freshness_s": freshness_s,
        "refresh_s_by_window_pairs": dict(zip(map(str, sizes), seconds)),
        "refresh_fixed_s": float(fixed),
        "refresh_pairs_per_s": float(1 / per_pair),
        "window_pairs_within_freshness": float(window_pairs),
        "hourly_window_pairs_per_s": float(window_pairs / 3600),
    }


# -- freshness ---------------------------------------------------------------------------------------
def freshness_pairs(n: int, start: float, pairs_per_s: float) -> list[tuple[bytes, bytes, bytes]]:
    """(key, inference, label) of the freshness run, encoded before its clock starts. Each inference
    is timed when it is due to be produced (from `start`, wall clock), as a live endpoint's: its
    label, timed by its Kafka record (no `label_time`), then falls in the inference's window's
    grace, as live labels do (timed in the past, every pair would be late)."""
    pairs = []
    for i in range(n):
        key, t = f"f{i}", start + i / pairs_per_s
        inference = {"event_id": key, "model": "m", "inference_time": t, "prediction": i % 2, "probability": 0.6}
        label = {"event_id": key, "label": (i // 2) % 2}
        pairs.append((key.encode(), json.dumps(inference).encode(), json.dumps(label).encode()))
    return pairs


async def paced_pairs(
    kafka: KafkaConnection, topics: tuple[str, str], pairs: list[tuple[bytes, bytes, bytes]], pairs_per_s: float
) -> list[float]:
    """Produce `pairs` at `pairs_per_s`, each pair when it is due; returns when each label was sent.

    aiokafka, pre-encoded messages and 1 ms ticks: the load generator shares the machine with the
    broker and the worker, and kafka-python's sends cost twice the CPU (57 against 26 us a message)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**kafka.aiokafka(), acks=1, linger_ms=5)
    await producer.start()
    sent: list[float] = []
    deliveries = []
    try:
        started = time.perf_counter()
        while len(sent) < len(pairs):
            due = min(len(pairs), int((time.perf_counter() - started) * pairs_per_s) + 1)
            for key, inference, label in pairs[len(sent) : due]:
                deliveries.append(await producer.send(topics[0], key=key, value=inference))
                deliveries.append(await producer.send(topics[1], key=key, value=label))
                sent.append(time.perf_counter())
            await asyncio.sleep(0.001)
        await asyncio.gather(*deliveries)  # a failed send fails the run
    finally:
        await producer.stop()
    return sent


def freshness(broker: str, redis_url: str, pairs_per_s: float, seconds: float, logs: Path) -> dict[str, float]:
    """Label produced -> first rolling metrics record counting it, at `pairs_per_s`."""
    kafka = connection(broker)
    tag = f"fresh{uuid.uuid4().hex[:6]}"
    topics = fresh_topics(kafka, tag)
    metrics_topic = f"bench-{tag}-metrics"
    ensure_topics(kafka, [metrics_topic], PARTITIONS)
    env = worker_env(broker, redis_url, topics, tag, rolling_size=500, rolling_every=50, batch_timeout=0.05)
    log = (logs / f"worker-{tag}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "--log-level", "warning", "worker"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    records: list[tuple[float, int]] = []
    stop = threading.Event()

    def consume() -> None:
        # A short fetch wait: the measuring consumer must not add latency of its own.
        consumer = KafkaConsumer(
            **kafka.kafka_python(), group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=10
        )
        tps = [TopicPartition(metrics_topic, p) for p in topic_partitions(consumer, metrics_topic)]
        consumer.assign(tps)
        while not stop.is_set():
            for batch in consumer.poll(timeout_ms=50).values():
                now = time.perf_counter()
                for msg in batch:
                    doc = json.loads(msg.value)
                    if doc["window"]["kind"] == "rolling":
                        records.append((now, doc["window"]["sequence"]))
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    try:
        client = redis.Redis.from_url(redis_url)
        warm = worker_progress(client, f"bench-{tag}", topics, PARTITIONS)
        producer = KafkaProducer(**kafka.kafka_python(), acks=1, linger_ms=5)
        # Warm up: the worker must hold its partitions before the clock starts.
        producer.send(
            topics[0],
            key=b"warm",
            value=json.dumps(
                {"event_id": "warm", "model": "m", "inference_time": time.time(), "prediction": 0}
            ).encode(),
        )
        producer.flush()
        deadline = time.perf_counter() + 120
        while warm() < 1:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the freshness worker did not start; see {log.name}")
            time.sleep(0.2)
        producer.close()
        n = int(pairs_per_s * seconds)
        pairs = freshness_pairs(n, time.time() + 0.5, pairs_per_s)  # production starts within 0.5 s
        sent = asyncio.run(paced_pairs(kafka, topics, pairs, pairs_per_s))
        deadline = time.perf_counter() + 30
        while (not records or records[-1][1] < n - 50) and time.perf_counter() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        reader.join(10)
        proc.terminate()
        proc.wait(30)
        log.close()
    seqs = np.array([s for _, s in records])
    times = np.array([t for t, _ in records])
    order = np.argsort(seqs)
    seqs, times = seqs[order], times[order]
    latencies = []
    dump = os.environ.get("TRUTHSTREAM_BENCH_DUMP")  # to look into a tail: (seconds into the run, latency)
    for k, produced in enumerate(sent):
        idx = np.searchsorted(seqs, k + 1)
        if idx < len(seqs):
            latencies.append(float(np.min(times[idx:])) - produced)
    if dump:
        Path(dump).write_text(json.dumps([[t - sent[0], lat] for t, lat in zip(sent, latencies)]))
    if not latencies:
        raise RuntimeError("no rolling record arrived")
    return {
        "pairs_per_s": pairs_per_s,
        "p50_s": float(np.percentile(latencies, 50)),
        "p90_s": float(np.percentile(latencies, 90)),
        "p99_s": float(np.percentile(latencies, 99)),
        "max_s": float(np.max(latencies)),
        "measured": len(latencies),
        "sent": len(sent),
    }


def redis_bytes_per_entry(broker: str, redis_url: str, n: int, logs: Path, sides: str) -> float:
    """Redis memory per waiting entry the worker holds after reading `n` records of `sides`
    ("i": inferences, waiting for labels; "l": labels, waiting for inferences; "il": both, joined,
    leaving the tombstones that count duplicates): MEMORY USAGE summed over every key the run wrote
    (its prefix: entries, expiry index, model references, watermarks, offsets), so Redis's other
    contents and its Lua heap do not count."""
    kafka = connection(broker)
    tag = f"mem{uuid.uuid4().hex[:6]}"
    topics = fresh_topics(kafka, tag)
    client = redis.Redis.from_url(redis_url)
    pairs, _ = workload(n, 1, 2, seed=99)
    producer = KafkaProducer(**kafka.kafka_python(), acks=1, linger_ms=20)
    for key, inference, label in pairs:
        if "i" in sides:
            producer.send(topics[0], key=key.encode(), value=inference)
        if "l" in sides:
            producer.send(topics[1], key=key.encode(), value=label)
    producer.flush()
    producer.close()
    truthstream_run(broker, redis_url, topics, tag, n * len(sides), logs, rolling_size=0)
    keys = [k for k in client.scan_iter(match=f"bench-{tag}:*", count=1000) if b":w:" not in k and b":o" not in k]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return sum(b or 0 for b in pipe.execute()) / n


def scale_out(args: argparse.Namespace, broker: str, logs: Path) -> dict[str, Any]:
    """1, 2, 4 ... workers on SCALE_PARTITIONS partitions against the Redis Cluster at --cluster-url,
    on the same messages; each run's windows checked against the data."""
    kafka = connection(broker)
    pairs, table = workload(args.events, args.models, args.classes, args.seed + 2)
    topics = fresh_topics(kafka, f"scale{uuid.uuid4().hex[:6]}", SCALE_PARTITIONS)
    produce(kafka, topics, pairs, args.seed)
    out: dict[str, Any] = {"partitions": SCALE_PARTITIONS, "redis": args.cluster_url, "runs": {}}
    for workers in args.scale_out:
        print(f"scale-out: {workers} worker(s) on {SCALE_PARTITIONS} partitions, Redis Cluster ...")
        tag = f"sc{workers}x{uuid.uuid4().hex[:6]}"
        rate, _, _ = truthstream_run(
            broker, args.cluster_url, topics, tag, 2 * args.events, logs, workers=workers,
            partitions=SCALE_PARTITIONS, redis_cluster="on", rolling_size=0,
        )  # fmt: skip
        time.sleep(3)  # the last outbox flush
        out["runs"][workers] = {"msgs_per_s": rate, "wrong_windows": check_results(tag, table, broker)}
    return out


# -- report ----------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    names = ["faust-streaming", "aiokafka", "kafka-python", "river", "redis", "pandas", "scikit-learn"]
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def main() -> int:
    args = parse_args()
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"truthstream-bench-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True)
    figures: dict[str, Any] = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": versions(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    with services(args) as (broker, redis_url):
        figures["broker"], figures["redis"] = broker, redis_url
        kafka = connection(broker)
        total = 2 * args.events
        pairs, table = workload(args.events, args.models, args.classes, args.seed)
        topics = fresh_topics(kafka, f"main{uuid.uuid4().hex[:6]}")
        print(f"producing {total} messages ({args.events} pairs, {args.models} models, {args.classes} classes) ...")
        figures["produce_s"] = produce(kafka, topics, pairs, args.seed)

        print("raw aiokafka consumer ...")
        figures["raw_aiokafka_msgs_per_s"] = raw_aiokafka(kafka, topics, total)
        # No-op, worker and many-models runs alternate for --rounds rounds and each keeps its best
        # rate: on a shared machine, load that comes and goes then cannot favour one side of a ratio.
        client = redis.Redis.from_url(redis_url)
        many_topics: tuple[str, str] | None = None
        if args.models_compare:
            many, _ = workload(args.events, args.models_compare, args.classes, args.seed + 1)
            many_topics = fresh_topics(kafka, f"many{uuid.uuid4().hex[:6]}")
            produce(kafka, many_topics, many, args.seed)
        rounds: dict[str, list[float]] = {
            "noop": [],
            "truthstream": [],
            "no_deviations": [],
            "estimates": [],
            "many": [],
        }
        calibration = calibration_file(table, logs) if args.classes == 2 else None
        figures["truthstream_wrong_windows"] = 0

        def noop_run() -> float:
            tag = f"noop{uuid.uuid4().hex[:6]}"
            rate, _, _ = run_until(
                [sys.executable, str(ROOT / "bench" / "noop_app.py")],
                worker_env(broker, redis_url, topics, tag),
                lambda: int(client.get(f"bench-{tag}:noop-count") or 0),
                total,
                logs / f"noop-{tag}.log",
            )
            return rate

        def main_run() -> float:
            tag = f"ts{uuid.uuid4().hex[:6]}"
            rate, wall, rss = truthstream_run(broker, redis_url, topics, tag, total, logs)
            if "truthstream_wall_s" not in figures:
                figures["truthstream_wall_s"], figures["worker_rss_bytes"] = wall, rss
            figures["truthstream_wrong_windows"] += check_results(tag, table, broker)
            return rate

        def worker_run(prefix: str, on: tuple[str, str] = topics, **extra: Any) -> float:
            return truthstream_run(broker, redis_url, on, f"{prefix}{uuid.uuid4().hex[:6]}", total, logs, **extra)[0]

        steps: list[tuple[str, str, Callable[[], float]]] = [
            ("noop", "faust no-op agent", noop_run),
            ("truthstream", "truthstream worker", main_run),
            ("no_deviations", "truthstream worker, deviations off", lambda: worker_run("nodev", deviations="off")),
        ]
        if calibration is not None:
            steps.append(
                (
                    "estimates",
                    "truthstream worker, label-free estimates on",
                    lambda: worker_run("est", calibration=calibration),
                )
            )
        if many_topics:
            many_on = many_topics
            steps.append(
                ("many", f"truthstream worker, {args.models_compare} models", lambda: worker_run("many", many_on))
            )
        for round_no in range(1, args.rounds + 1):
            # Every other round runs in reverse order, so that a drift within a round (load that
            # builds up, a broker warming up) favours neither side of a ratio.
            for name, title, run in steps if round_no % 2 else reversed(steps):
                print(f"round {round_no}/{args.rounds}: {title} ...")
                rounds[name].append(run())
        figures["rounds_msgs_per_s"] = rounds
        figures["faust_noop_msgs_per_s"] = max(rounds["noop"])
        figures["truthstream_msgs_per_s"] = max(rounds["truthstream"])
        figures["truthstream_pairs_per_s"] = figures["truthstream_msgs_per_s"] / 2
        if rounds["many"]:
            figures[f"truthstream_{args.models_compare}_models_msgs_per_s"] = max(rounds["many"])
        if args.workers > 1:
            print(f"truthstream, {args.workers} workers ...")
            tag = f"scale{uuid.uuid4().hex[:6]}"
            rate, _, _ = truthstream_run(broker, redis_url, topics, tag, total, logs, workers=args.workers)
            figures[f"truthstream_{args.workers}_workers_msgs_per_s"] = rate
            time.sleep(3)  # the last outbox flush
            figures[f"truthstream_{args.workers}_workers_wrong_windows"] = check_results(tag, table, broker)
        # At half the maximum rate the benchmark's own producer and the worker share the machine:
        # one run's tail depends on what else ran then, so the median run of --rounds is reported.
        fresh_runs = []
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}/{args.rounds}: freshness at half the maximum rate ...")
            fresh_runs.append(
                freshness(broker, redis_url, figures["truthstream_pairs_per_s"] / 2, args.freshness_seconds, logs)
            )
        figures["freshness_rounds_p99_s"] = [run["p99_s"] for run in fresh_runs]
        figures["freshness"] = sorted(fresh_runs, key=lambda run: run["p99_s"])[len(fresh_runs) // 2]
        print("batch alternative (pandas + scikit-learn), once per window and at the stream's freshness ...")
        figures["batch_pairs_per_s"] = batch_job(pairs, args.classes)
        figures["batch_at_freshness"] = batch_at_freshness(pairs, args.classes, figures["freshness"]["p99_s"])
        print("Redis memory per waiting inference, per waiting label, per joined pair ...")
        for name, sides in (("inference", "i"), ("label", "l"), ("joined_pair", "il")):
            figures[f"redis_bytes_per_{name}"] = redis_bytes_per_entry(broker, redis_url, args.pending, logs, sides)
        if args.cluster_url and args.scale_out:
            figures["scale_out"] = scale_out(args, broker, logs)
        if args.per:
            import batched  # here: it imports this module

            print(f"many instances a message: {', '.join(map(str, args.per))} ...")
            figures["batched"] = batched.runs(
                broker, redis_url, args.per_instances, args.per, args.rounds, args.seed, logs, args.per_engines
            )
        if args.replay_rounds and args.events * EVENT_STEP_S < 2 * (WINDOW_S + GRACE_S):
            print(f"replay skipped: {args.events} pairs span too little event time to close a window")
        elif args.replay_rounds:
            import replay  # here: it imports this module

            print("replay against a raw read of the same topics ...")
            processes = tuple(sorted({1, os.cpu_count() or 1}))
            figures["replay"] = replay.runs(broker, topics, table, total, args.replay_rounds, processes)
    rows = report(figures, args)
    if args.docs:
        key, title = ("kafka", f"### Kafka at {args.broker}") if args.broker else ("embedded", "### Embedded stack")
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        title += f" ({stamp}: {args.events:,} pairs, {args.rounds} rounds, truthstream {stream.__version__})"
        docs_table.update(args.docs, key, title, rows)
        print(f"wrote the {key} table of {args.docs}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")
    return 0


def report(f: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str]]:
    """Print the figures and the ratios against their targets; returns them as (name, value) rows."""
    ts = f["truthstream_msgs_per_s"]
    rounds = f["rounds_msgs_per_s"]
    many_name = f"{args.models_compare} models / {args.models} model(s)"
    # The judged ratios pair the runs of one round (run back to back, in alternating order) and take
    # the median over rounds: a slow or fast spell of the shared machine then moves both sides of a
    # ratio, and one lucky run cannot set it. The ratio of each side's best run is shown beside it.
    pairs = {
        "truthstream / faust no-op": ("truthstream", "noop"),
        "deviations on / off": ("truthstream", "no_deviations"),
        "label-free estimates on / off": ("estimates", "truthstream"),
        many_name: ("many", "truthstream"),
    }
    per_round = {name: [x / y for x, y in zip(rounds[a], rounds[b])] for name, (a, b) in pairs.items() if rounds[a]}
    ratios = {name: statistics.median(values) for name, values in per_round.items()}
    ratios["truthstream / faust no-op, best run of each"] = ts / f["faust_noop_msgs_per_s"]
    ratios.update(
        {
            "truthstream / raw aiokafka": ts / f["raw_aiokafka_msgs_per_s"],
            "truthstream / batch, once per window (pairs)": f["truthstream_pairs_per_s"] / f["batch_pairs_per_s"],
            "truthstream / batch at equal freshness": f["truthstream_pairs_per_s"]
            / max(f["batch_at_freshness"]["hourly_window_pairs_per_s"], 1e-9),
        }
    )
    many = f.get(f"truthstream_{args.models_compare}_models_msgs_per_s")
    f["ratios_per_round"] = per_round
    f["ratios"] = ratios
    fresh = f["freshness"]
    rows = [
        ("raw aiokafka consumer", f"{f['raw_aiokafka_msgs_per_s']:,.0f} msg/s"),
        ("faust no-op agent", f"{f['faust_noop_msgs_per_s']:,.0f} msg/s"),
        (
            "truthstream worker",
            f"{ts:,.0f} msg/s = {f['truthstream_pairs_per_s']:,.0f} pairs/s, "
            f"{f['truthstream_wrong_windows']} wrong windows",
        ),
    ]
    if many:
        rows.append((f"truthstream, {args.models_compare} models", f"{many:,.0f} msg/s"))
    scaled = f.get(f"truthstream_{args.workers}_workers_msgs_per_s")
    if scaled:
        rows.append(
            (
                f"truthstream, {args.workers} workers",
                f"{scaled:,.0f} msg/s, {f[f'truthstream_{args.workers}_workers_wrong_windows']} wrong windows",
            )
        )
    fresh_batch = f["batch_at_freshness"]
    rows += [
        ("batch, once per window", f"{f['batch_pairs_per_s']:,.0f} pairs/s (results up to a window late)"),
        (
            "batch at equal freshness",
            f"{fresh_batch['hourly_window_pairs_per_s']:,.0f} pairs/s: an hourly window of "
            f"{fresh_batch['window_pairs_within_freshness']:,.0f} pairs recomputed every "
            f"{fresh_batch['freshness_s']:.2f} s ({fresh_batch['refresh_pairs_per_s']:,.0f} pairs/s per refresh "
            f"+ {fresh_batch['refresh_fixed_s'] * 1000:.1f} ms)",
        ),
        (
            "freshness p50 / p99",
            f"{fresh['p50_s'] * 1000:,.0f} ms / {fresh['p99_s'] * 1000:,.0f} ms at {fresh['pairs_per_s']:,.0f} pairs/s"
            f" (median run; p99 of runs {', '.join(f'{p * 1000:,.0f}' for p in f['freshness_rounds_p99_s'])} ms)",
        ),
        (
            "Redis per waiting inference",
            f"{f['redis_bytes_per_inference']:,.0f} bytes (per waiting label {f['redis_bytes_per_label']:,.0f}, "
            f"per joined pair's tombstone {f['redis_bytes_per_joined_pair']:,.0f})",
        ),
        ("worker RSS after the run", f"{f['worker_rss_bytes'] / 2**20:,.0f} MiB"),
    ]
    scale = f.get("scale_out")
    if scale:
        one = scale["runs"][min(scale["runs"])]["msgs_per_s"]
        rows.append(
            (
                f"scale-out, {scale['partitions']} partitions, Redis Cluster",
                "; ".join(
                    f"{n} worker(s) {r['msgs_per_s']:,.0f} msg/s (x{r['msgs_per_s'] / one:.2f}, "
                    f"{r['wrong_windows']} wrong windows)"
                    for n, r in sorted(scale["runs"].items())
                ),
            )
        )
    runs = "; ".join(
        f"{name} {', '.join(f'{r:,.0f}' for r in rates)}" for name, rates in f["rounds_msgs_per_s"].items() if rates
    )
    rows.append(("each round (msg/s)", runs))
    if "batched" in f:
        import batched  # here: it imports this module

        rows += batched.rows(f["batched"])
    if "replay" in f:
        import replay  # here: it imports this module

        rows += replay.table_rows(f["replay"])
    versions_text = ", ".join(f"{name} {version}" for name, version in f["versions"].items())
    rows += [
        ("machine", f"{f['machine']['cpus']} CPUs, {f['machine']['platform']}"),
        ("versions", f"truthstream {stream.__version__}, {versions_text}"),
    ]
    width = max(len(name) for name in [*(r[0] for r in rows), *ratios])
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print()
    targets = {
        "truthstream / faust no-op": 0.8,
        "truthstream / batch at equal freshness": 1.0,
        "deviations on / off": 0.9,
        "label-free estimates on / off": 0.85,
    }
    for name, value in ratios.items():
        target = targets.get(name)
        if name.endswith("model(s)"):
            target = 0.8
        mark = "" if target is None else f"   target >= {target:g}: {'met' if value >= target else 'NOT met'}"
        spread = per_round.get(name)
        shown = f"{value:.2f}" + (f" (median of rounds {', '.join(f'{r:.2f}' for r in spread)})" if spread else "")
        print(f"{name:<{width}}  {shown}{mark}")
    verdict = "met" if fresh["p99_s"] < 1 else "NOT met"
    print(f"{'p99 freshness (median run)':<{width}}  {fresh['p99_s']:.3f} s   target < 1 s: {verdict}")
    judged_more = [
        (f"{name} / 1 a message", ratio, 10.0)
        for name, ratio in f.get("batched", {}).get("ratios", {}).items()
        if name.startswith("100 ")
    ]
    for n, ratio in f.get("replay", {}).get("replay_over_raw", {}).items():
        judged_more.append((f"replay, {n} process(es) / raw aiokafka read", ratio, 0.3))
    for name, value, target in judged_more:
        print(f"{name:<{width}}  {value:.3f}   target >= {target:g}: {'met' if value >= target else 'NOT met'}")
    judged = [(f"**{name}**", f"{value:.2f}") for name, value in ratios.items()]
    return [*rows, *judged, ("**p99 freshness** (target < 1 s)", f"{fresh['p99_s']:.3f} s")]


if __name__ == "__main__":
    sys.exit(main())
