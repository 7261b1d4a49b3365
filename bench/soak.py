"""Months of event time in minutes: does the state reach a steady size and stay there?

    python bench/soak.py [--models 200] [--window 60] [--days 30] [--rate 3] [--redis-url URL]
                         [--out soak.csv] [--chart soak.png]

Drives the engine the worker runs (the same code as its engine process) over a real Redis, with
no broker: event time moves as fast as the engine goes. The workload, per model and minute of
event time, `--rate` binary inferences with a calibrated score (label-free estimates), a country
segment of 5 values, change detectors on, and labels that come:

    70 %  within 5 minutes (before the grace ends)       3 %  twice (a duplicate)
    20 %  1 to 6 hours later (late: counted, not joined)  5 %  1 to 3 days later (late)
     5 %  never (the inference expires after the label TTL)

(delays times --delay-scale, for short windows).

Every `--sample-hours` of event time it records Redis's `used_memory`, the bytes of every key
family (SCAN and MEMORY USAGE over the run's prefix, `soak`, deleted first), the waiting entries,
this process's RSS and the engine's time to close a window, in a CSV and a chart; at the end it
prints the figures the docs quote: growth from day 10 to the end, bytes per model, per waiting
inference, per segment value. Without --redis-url it starts the embedded redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import heapq
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.core.calibration import Calibration  # noqa: E402
from stream.core.catalog import Catalog  # noqa: E402
from stream.core.engine import Engine  # noqa: E402
from stream.core.keying import default_partition  # noqa: E402
from stream.core.records import INFERENCE, LABEL, RawMessage  # noqa: E402
from stream.core.timefmt import format_time  # noqa: E402
from stream.settings import Settings  # noqa: E402
from stream.stores.redis import RedisStore  # noqa: E402
from stream.stores.redis.keys import Keys  # noqa: E402

T0 = 1_764_000_000.0
DAY = 86400.0
PARTITIONS = 4
PREFIX = "soak"
REFERENCE_EVERY = 30  # minutes of event time between two runs of the reference task
COUNTRIES = "ABCDE"


def delay(rng: random.Random, scale: float) -> float | None:
    """When a label comes after its inference (None: never), its delays times `scale`."""
    u = rng.random()
    if u < 0.70:
        return scale * rng.uniform(0, 300)
    if u < 0.90:
        return scale * rng.uniform(3600, 6 * 3600)
    if u < 0.95:
        return scale * rng.uniform(DAY, 3 * DAY)
    return None


def minutes(
    models: int, rate: int, scale: float = 1.0, seed: int = 11
) -> Iterator[list[tuple[float, str, str, dict[str, Any]]]]:
    """Each minute of event time: its (time, side, key, record) in time order, labels as they come."""
    rng = random.Random(seed)
    labels: list[tuple[float, int, str, dict[str, Any]]] = []
    serial = 0
    minute = 0
    while True:
        start = T0 + 60 * minute
        out: list[tuple[float, str, str, dict[str, Any]]] = []
        for m in range(models):
            drifted = minute % 10_000 > 7_000 and m % 4 == 0  # some models drift for a while
            for _ in range(rate):
                serial += 1
                t = start + rng.random() * 60
                truth = rng.random() < 0.3
                score = min(1.0, max(0.0, (0.8 if truth else 0.2) + rng.gauss(0, 0.2)))
                if drifted and rng.random() < 0.3:
                    score = 1 - score
                event_id = f"{serial:012d}-{m}"
                doc = {
                    "event_id": event_id,
                    "model": f"model-{m:03d}",
                    "model_version": "1",
                    "inference_time": format_time(t),
                    "prediction": score > 0.5,
                    "probability": round(score, 3),
                    "features": {"country": rng.choice(COUNTRIES)},
                }
                out.append((t, INFERENCE, event_id, doc))
                after = delay(rng, scale)
                if after is None:
                    continue
                copies = 2 if rng.random() < 0.03 else 1
                for c in range(copies):
                    when = t + after + c * 30
                    label = {"event_id": event_id, "label": truth, "label_time": format_time(when)}
                    heapq.heappush(labels, (when, serial * 2 + c, event_id, label))
        end = start + 60
        while labels and labels[0][0] < end:
            when, _, event_id, label = heapq.heappop(labels)
            out.append((when, LABEL, event_id, label))
        out.sort(key=lambda item: item[0])
        yield out
        minute += 1


class Feed:
    """Turns records into the messages a worker would read (offsets per partition)."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}

    def messages(self, records: list[tuple[float, str, str, dict[str, Any]]]) -> list[RawMessage]:
        out = []
        for when, side, key, doc in records:
            topic = "inferences" if side == INFERENCE else "labels"
            partition = default_partition(key.encode(), PARTITIONS)
            offset = self.offsets.get((topic, partition), 0)
            self.offsets[topic, partition] = offset + 1
            out.append(RawMessage(side, topic, partition, offset, key.encode(), json.dumps(doc).encode(), when))
        return out


async def family_bytes(client: Any, keys: Keys) -> dict[str, int]:
    """MEMORY USAGE of every key under the prefix, summed by row of the key layout."""
    sizes: dict[str, int] = {}
    batch: list[bytes] = []

    async def measure() -> None:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(batch, await pipe.execute()):
            kind = keys.kind(key.decode("latin-1")) or "other"
            sizes[kind] = sizes.get(kind, 0) + int(used or 0)
        batch.clear()

    async for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await measure()
    if batch:
        await measure()
    return sizes


def rss_bytes() -> int:
    """This process's resident set size."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def soak(args: argparse.Namespace, url: str) -> list[dict[str, Any]]:
    import redis.asyncio as aioredis

    settings = Settings(
        window_seconds=args.window,
        label_grace=args.grace,
        label_ttl=args.ttl_days * DAY,
        min_samples=1,
        rolling_size=args.rolling,
        rolling_every=max(1, args.rolling // 10),
        segments="features.country",
    )
    catalog = Catalog(
        default_calibration=Calibration((0.0, 0.5, 1.0), (0.05, 0.45, 0.95), 10),
        default_segments=("features.country",),
    )
    client = aioredis.from_url(url)
    async for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        await client.delete(key)
    store = RedisStore(
        client,
        PREFIX,
        settings.label_ttl,
        PARTITIONS,
        settings.rolling_size,
        settings.rolling_every,
        settings.score_resolution,
        settings.segment_cap,
    )
    engine = Engine(settings.core(), catalog, store, PARTITIONS)
    closing = {"seconds": 0.0, "cpu": 0.0, "windows": 0}
    close_due = engine.close_due

    async def timed_close(now: float | None = None) -> int:
        # Wall time includes waiting for Redis and whatever else the machine runs; this process's CPU
        # time does not, so a trend in it is the engine's own.
        started, cpu = time.perf_counter(), time.process_time()
        closed = await close_due(now)
        closing["seconds"] += time.perf_counter() - started
        closing["cpu"] += time.process_time() - cpu
        closing["windows"] += closed
        return closed

    engine.close_due = timed_close  # type: ignore[method-assign]
    feed = Feed()
    rows: list[dict[str, Any]] = []
    per_batch = max(1, 1000 // max(1, args.models * args.rate * 2))
    sample_every = int(args.sample_hours * 60)
    total = int(args.days * 1440)
    pending: list[RawMessage] = []
    started, messages = time.monotonic(), 0
    redis_cpu, period_messages = await _redis_cpu(client), 0
    reference = {"seconds": 0.0, "runs": 0}
    for minute, records in enumerate(minutes(args.models, args.rate, args.delay_scale)):
        if minute >= total:
            break
        pending += feed.messages(records)
        if minute % REFERENCE_EVERY == 0:
            reference["seconds"] += reference_task()
            reference["runs"] += 1
        if (minute + 1) % per_batch == 0:
            await engine.process(pending, T0 + 60 * (minute + 1))
            messages += len(pending)
            period_messages += len(pending)
            pending = []
            while out := await store.pending_outbox():
                await store.confirm_outbox(len(out))
        if (minute + 1) % sample_every == 0:
            info = await client.info("memory")
            cpu_now = await _redis_cpu(client)
            families = await family_bytes(client, store.keys)
            waiting = await store.waiting()
            metas = [await client.hget(store.keys.meta(p), "n") for p in range(PARTITIONS)]
            row = {
                "day": round((minute + 1) / 1440, 3),
                "wall_seconds": round(time.monotonic() - started, 1),
                "messages": messages,
                "used_memory": info["used_memory"],
                "rss": rss_bytes(),
                "waiting_inferences": waiting["inference"],
                "waiting_labels": waiting["label"],
                "entries": sum(int(n or 0) for n in metas),  # waiting and joined-pair markers
                "close_ms_per_window": round(1000 * closing["seconds"] / max(1, closing["windows"]), 3),
                "close_cpu_ms_per_window": round(1000 * closing["cpu"] / max(1, closing["windows"]), 3),
                "redis_cpu_us_per_message": round(1e6 * (cpu_now - redis_cpu) / max(1, period_messages), 2),
                "reference_ms": round(1000 * reference["seconds"] / max(1, reference["runs"]), 3),
                "windows_closed": closing["windows"],
                **{f"bytes:{k}": v for k, v in sorted(families.items())},
            }
            closing = {"seconds": 0.0, "cpu": 0.0, "windows": 0}
            redis_cpu, period_messages = cpu_now, 0
            reference = {"seconds": 0.0, "runs": 0}
            row["close_per_reference"] = round(row["close_cpu_ms_per_window"] / max(1e-9, row["reference_ms"]), 4)
            rows.append(row)
            print(
                f"day {row['day']:6.2f}  {row['wall_seconds']:7.1f} s"
                f"  used_memory {row['used_memory'] / 2**20:7.1f} MiB"
                f"  rss {row['rss'] / 2**20:6.1f} MiB  waiting {row['waiting_inferences']:8}"
                f"  close {row['close_ms_per_window']:.2f} ms/window ({row['close_cpu_ms_per_window']:.2f} CPU)"
                f"  Redis CPU {row['redis_cpu_us_per_message']:.1f} us/message"
                f"  reference {row['reference_ms']:.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    await client.aclose()
    return rows


def reference_task() -> float:
    """CPU seconds of a fixed piece of work like the engine's (hashing, dicts, JSON), run now and then
    through the soak: it gauges how fast this machine runs at that moment (a shared or throttled
    machine varies by tens of percent), so that the engine's close time can be read against it."""
    started = time.process_time()
    table: dict[str, int] = {}
    for i in range(2000):
        key = hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest()
        table[key] = table.get(key, 0) + len(json.dumps({"i": i, "k": key}))
    return time.process_time() - started


async def _redis_cpu(client: Any) -> float:
    """Seconds of CPU the Redis server used so far."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def write(rows: list[dict[str, Any]], out: Path, chart: Path | None) -> None:
    """The CSV, and a chart of memory, RSS and window closing time against event time."""
    columns = sorted({k for row in rows for k in row}, key=lambda k: (k.startswith("bytes:"), k))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, restval=0)
        writer.writeheader()
        writer.writerows(rows)
    if chart is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [r["day"] for r in rows]
    fig, (memory, closing) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    memory.plot(days, [r["used_memory"] / 2**20 for r in rows], label="Redis used_memory")
    memory.plot(days, [r["rss"] / 2**20 for r in rows], label="engine RSS")
    families = sorted({k for r in rows for k in r if k.startswith("bytes:")})
    biggest = sorted(families, key=lambda k: -rows[-1].get(k, 0))[:4]
    for k in biggest:
        memory.plot(days, [r.get(k, 0) / 2**20 for r in rows], linestyle="--", label=k[6:])
    memory.set_ylabel("MiB")
    memory.legend(fontsize=8)
    memory.grid(alpha=0.3)
    closing.plot(days, [r["close_ms_per_window"] for r in rows], color="tab:red", label="wall")
    closing.plot(days, [r["close_cpu_ms_per_window"] for r in rows], color="tab:purple", label="engine CPU")
    closing.set_ylabel("ms to close a window")
    closing.legend(fontsize=8)
    closing.set_xlabel("day of event time")
    closing.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)


def summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The figures the docs quote."""
    last = rows[-1]
    ten = min(rows, key=lambda r: abs(r["day"] - args.compare_day))
    print(
        f"{args.models} models, {args.window:g}-second windows, {args.rate} inferences a minute per model, "
        f"{last['day']:g} days of event time in {last['wall_seconds']:.0f} s ({last['messages']} messages)"
    )
    for name in ("used_memory", "rss"):
        a, b = ten[name], last[name]
        print(
            f"  {name:24} day {ten['day']:5.1f}: {a:>14,.2f}   day {last['day']:5.1f}: {b:>14,.2f}   ratio {b / a:.3f}"
        )
    # Times are noisy sample by sample: the medians of the week after the compared day and of the last week.
    early = [r for r in rows if args.compare_day - 2 <= r["day"] <= args.compare_day + 4] or rows[:1]
    late = [r for r in rows if r["day"] > last["day"] - 7] or rows[-1:]
    for name in (
        "close_ms_per_window",
        "close_cpu_ms_per_window",
        "redis_cpu_us_per_message",
        "reference_ms",
        "close_per_reference",
    ):
        a, b = statistics.median(r[name] for r in early), statistics.median(r[name] for r in late)
        print(
            f"  {name:24} days {early[0]['day']:g}-{early[-1]['day']:g}: {a:8.3f}   "
            f"days {late[0]['day']:g}-{late[-1]['day']:g}: {b:8.3f}   ratio {b / a:.3f}"
        )
    waiting = last["entries"]
    entries = last.get("bytes:bucket", 0) + last.get("bytes:expiry slot", 0)
    windows = sum(v for k, v in last.items() if k in ("bytes:window part", "bytes:admitted segment values"))
    detectors = last.get("bytes:change detectors", 0)
    print(
        f"  per join entry, waiting or a joined pair's marker (buckets, expiry index): "
        f"{entries / max(1, waiting):.1f} bytes ({waiting} entries)"
    )
    print(
        f"  per model (detectors): {detectors / args.models:,.0f} bytes;"
        f" open window parts: {windows / args.models:,.0f} bytes per model"
        f" ({windows / (args.models * len(COUNTRIES)):,.0f} per segment value)"
    )
    rest = {k[6:]: v for k, v in last.items() if k.startswith("bytes:")}
    print(
        "  by family: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sorted(rest.items(), key=lambda kv: -kv[1]))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=200, help="models (default 200)")
    parser.add_argument("--window", type=float, default=60.0, help="window length in seconds (default 60)")
    parser.add_argument("--days", type=float, default=30.0, help="days of event time (default 30)")
    parser.add_argument("--rate", type=int, default=3, help="inferences a minute per model (default 3)")
    parser.add_argument("--grace", type=float, default=600.0, help="label grace in seconds (default 600)")
    parser.add_argument("--ttl-days", type=float, default=7.0, help="label TTL in days (default 7, the default)")
    parser.add_argument("--rolling", type=int, default=1000, help="rolling window size (default 1000, the default)")
    parser.add_argument("--delay-scale", type=float, default=1.0, help="label delays times this (default 1)")
    parser.add_argument("--compare-day", type=float, default=10.0, help="the day compared with the last (default 10)")
    parser.add_argument("--sample-hours", type=float, default=12.0, help="event time between samples (default 12)")
    parser.add_argument("--redis-url", help="a Redis to use (its prefix 'soak' is deleted first)")
    parser.add_argument("--out", default="soak.csv", help="the CSV to write (default soak.csv)")
    parser.add_argument("--chart", help="a PNG chart to write")
    args = parser.parse_args()
    if args.redis_url:
        rows = asyncio.run(soak(args, args.redis_url))
    else:
        import tempfile

        from connectors.embedded import free_port, redis_server, running

        with tempfile.TemporaryDirectory() as workdir, running(redis_server(free_port(), Path(workdir))) as server:
            rows = asyncio.run(soak(args, f"redis://{server.url_host}/0"))
    if not rows:
        print("no sample taken: run longer than --sample-hours", file=sys.stderr)
        return 2
    write(rows, Path(args.out), Path(args.chart) if args.chart else None)
    summary(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
