"""The worker's cost per instance when messages carry many: inferences/s at 1, 10 and 100 instances
per message, in one run (issue 32's target: at 100 a message, 10x the inferences/s of single records).

    python bench/batched.py [--instances 100000] [--per 1,10,100] [--rounds 2] [--json out.json]
                            [--broker kafka://HOST:PORT --redis-url redis://...]

One instance a message is the main benchmark's plain records; more are SageMaker data-capture
records (`endpointOutput` CSV rows, one score a row) and ground truths (`groundTruthData` CSV rows),
each instance of a capture 0.01 s of event time after the previous one. Each size is produced to
fresh topics, then one `truthstream worker` runs over each, --rounds times (the order reversed every
other round); its steady rate (10 % -> 90 % of the messages applied) in inferences/s is the
figure, and every closed window it published is checked against the data (sample count, accuracy).
`bench/benchmark.py` runs the same (`--per`) and writes the figures into the performance page.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import docs_table  # noqa: E402 - the repository root first
from benchmark import (  # noqa: E402
    CHUNK,
    EVENT_STEP_S,
    T0,
    check_results,
    connection,
    fresh_topics,
    produce,
    services,
    truthstream_run,
    workload,
)

from stream.core.timefmt import format_time  # noqa: E402

MODEL = "m0"  # the capture model: the name the plain records of `workload` carry too


def capture_workload(
    instances: int, per: int, seed: int
) -> tuple[list[tuple[str, bytes, bytes]], pd.DataFrame, list[float]]:
    """(key, capture bytes, ground-truth bytes) of `instances` instances, `per` a message, the
    instances as a table (event_id, model, time, label, prediction, score) and each message's time."""
    rng = random.Random(seed)
    out, rows, times = [], [], []
    for m in range(instances // per):
        event_id, t = str(uuid.UUID(int=rng.getrandbits(128))), T0 + m * per * EVENT_STEP_S
        scores = [round(rng.random(), 4) for _ in range(per)]
        labels = [int(rng.random() < (0.85 if s >= 0.5 else 0.15)) for s in scores]
        capture = {
            "captureData": {
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": "\n".join(str(s) for s in scores),
                    "encoding": "CSV",
                }
            },
            "eventMetadata": {"eventId": event_id, "inferenceTime": format_time(t)},
            "eventVersion": "0",
        }
        truth = {
            "groundTruthData": {"data": "\n".join(map(str, labels)), "encoding": "CSV"},
            "eventMetadata": {"eventId": event_id},
            "eventVersion": "0",
        }
        out.append((event_id, json.dumps(capture).encode(), json.dumps(truth).encode()))
        times.append(t)
        rows += [(f"{event_id}:{i}", MODEL, t, y, int(s >= 0.5), s) for i, (s, y) in enumerate(zip(scores, labels))]
    return out, pd.DataFrame(rows, columns=["event_id", "model", "time", "label", "prediction", "score"]), times


def runs(
    broker: str,
    redis_url: str,
    instances: int,
    sizes: list[int],
    rounds: int,
    seed: int,
    logs: Path,
    engines: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """Produce each size's messages, then run the worker over each --rounds times (the order reversed
    every other round), with one engine process and, for several instances a message, with each of
    `engines` engine processes; returns inferences/s by run, the ratios to one a message, and the
    windows that differ from the data."""
    kafka = connection(broker)
    figures: dict[str, Any] = {"instances": instances, "rates": {}, "ratios": {}, "wrong_windows": 0}
    made = {}
    for per in sizes:
        times: list[float] | None = None  # plain records carry their label_time
        if per == 1:
            pairs, table = workload(instances, 1, 2, seed)
        else:
            pairs, table, times = capture_workload(instances, per, seed)
        topics = fresh_topics(kafka, f"per{per}-{uuid.uuid4().hex[:6]}")
        # labels are shuffled within CHUNK instances: never later than the grace
        produce(kafka, topics, pairs, seed, chunk=max(1, CHUNK // per), times=times)
        made[per] = (topics, table, 2 * len(pairs))
    variants = [(per, 1) for per in sizes] + [(per, n) for per in sizes if per > 1 for n in engines if n > 1]
    for r in range(rounds):
        for per, n in variants if r % 2 == 0 else reversed(variants):
            topics, table, messages = made[per]
            tag = f"b{per}x{n}x{uuid.uuid4().hex[:6]}"
            extra = {"capture_model": MODEL, "engine_processes": n}
            rate, _, _ = truthstream_run(broker, redis_url, topics, tag, messages, logs, **extra)
            time.sleep(2)  # the last outbox flush
            figures["wrong_windows"] += check_results(tag, table, broker)
            name = run_name(per, n)
            figures["rates"].setdefault(name, []).append(rate / 2 * per)
            print(f"round {r + 1}/{rounds}: {name}: {rate / 2 * per:,.0f} inferences/s", file=sys.stderr)
    one = figures["rates"].get(run_name(1, 1))
    for name, rates in figures["rates"].items():
        if one and name != run_name(1, 1):
            figures["ratios"][name] = statistics.median([x / y for x, y in zip(rates, one)])
    return figures


def run_name(per: int, engines: int) -> str:
    """How a run is named in the figures and the table."""
    return f"{per} instance(s) a message" + (f", {engines} engine processes" if engines > 1 else "")


def rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures as the docs' table shows them."""
    out = [
        (f"worker, {name}", f"{statistics.median(rates):,.0f} inferences/s (median of rounds)")
        for name, rates in figures["rates"].items()
    ]
    for name, ratio in figures["ratios"].items():
        target = " (target >= 10)" if name.startswith("100 ") else ""
        out.append((f"**{name} / 1 a message, inferences/s**{target}", f"{ratio:.2f}"))
    out.append(("many instances a message: windows that differ from the data", str(figures["wrong_windows"])))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=100_000, help="inferences of each run (default 100000)")
    parser.add_argument(
        "--per",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 10, 100],
        help="instances per message of each run (default 1,10,100)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every run (default 2)")
    parser.add_argument(
        "--engines",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=(1, 2),
        help="engine processes of the runs of several instances a message (default 1,2)",
    )
    parser.add_argument("--broker", help="Kafka URL (default: an embedded tansu)")
    parser.add_argument("--redis-url", help="Redis URL (default: an embedded redis-server)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="truthstream-bench-batched-"))
    with services(args) as (broker, redis_url):
        figures = runs(broker, redis_url, args.instances, args.per, args.rounds, args.seed, logs, args.engines)
    print(docs_table.table(f"### Many instances a message ({args.instances:,} inferences a run)", rows(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if figures["wrong_windows"] else 0


if __name__ == "__main__":
    sys.exit(main())
