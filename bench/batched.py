"""The worker's cost per instance when messages carry many: inferences/s at 1, 10 and 100 instances
per message, in one run (issue 32's target: at 100 a message, 10x the inferences/s of single records).

    python bench/batched.py [--instances 100000] [--per 1,10,100] [--rounds 2] [--json out.json]
                            [--docs docs/performance.md] [--broker kafka://HOST:PORT --redis-url redis://...]

One instance a message is the main benchmark's plain records; more are SageMaker data-capture
records (`endpointOutput` CSV rows, one score a row) and ground truths (`groundTruthData` CSV rows),
each instance of a capture 0.01 s of event time after the previous one. Each size is produced to
fresh topics, then one `truthstream worker` runs over each, --rounds times (the order reversed every
other round); its steady rate (10 % -> 90 % of the messages applied) in inferences/s is the
figure, and every closed window it published is checked against the data (sample count, accuracy).
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
    parser.add_argument("--broker", help="Kafka URL (default: an embedded tansu)")
    parser.add_argument("--redis-url", help="Redis URL (default: an embedded redis-server)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--docs", type=Path, metavar="PAGE", help="rewrite the batched table of PAGE")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="truthstream-bench-batched-"))
    figures: dict[str, Any] = {"instances": args.instances, "per": args.per, "rates": {}, "wrong_windows": 0}
    with services(args) as (broker, redis_url):
        kafka = connection(broker)
        runs = {}
        for per in args.per:
            times: list[float] | None = None  # plain records carry their label_time
            if per == 1:
                pairs, table = workload(args.instances, 1, 2, args.seed)
            else:
                pairs, table, times = capture_workload(args.instances, per, args.seed)
            topics = fresh_topics(kafka, f"per{per}-{uuid.uuid4().hex[:6]}")
            # labels are shuffled within CHUNK instances: never later than the grace
            produce(kafka, topics, pairs, args.seed, chunk=max(1, CHUNK // per), times=times)
            runs[per] = (topics, table, 2 * len(pairs))
            figures["rates"][per] = []
        for r in range(args.rounds):
            for per in args.per if r % 2 == 0 else reversed(args.per):
                topics, table, messages = runs[per]
                tag = f"b{per}x{uuid.uuid4().hex[:6]}"
                started = time.perf_counter()
                rate, _, _ = truthstream_run(broker, redis_url, topics, tag, messages, logs, capture_model=MODEL)
                time.sleep(2)  # the last outbox flush
                figures["wrong_windows"] += check_results(tag, table, broker)
                inferences_per_s = rate / 2 * per
                figures["rates"][per].append(inferences_per_s)
                print(
                    f"round {r + 1}: {per} a message: {inferences_per_s:,.0f} inferences/s "
                    f"({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                )
    one = figures["rates"].get(1)
    rows = [
        (f"{per} instance(s) a message, inferences/s (median)", f"{statistics.median(rates):,.0f}")
        for per, rates in figures["rates"].items()
    ]
    if one:
        for per, rates in figures["rates"].items():
            if per > 1:
                ratio = statistics.median([x / y for x, y in zip(rates, one)])
                figures[f"ratio_{per}"] = ratio
                target = " (target 10)" if per == 100 else ""
                rows.append((f"{per} a message / 1 a message (median of rounds){target}", f"{ratio:.1f}"))
    rows.append(("windows that differ from the data", str(figures["wrong_windows"])))
    title = f"### Many instances a message ({args.instances:,} inferences a run, {args.rounds} rounds)"
    print(docs_table.table(title, rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.docs:
        docs_table.update(args.docs, "batched", title, rows)
    return 1 if figures["wrong_windows"] else 0


if __name__ == "__main__":
    sys.exit(main())
