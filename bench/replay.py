"""Replay against the client's limit, in one run: `truthstream replay` records/s and a raw aiokafka
read of the same topics (issue 32's target: replay at 0.3 of the raw read or better).

    python bench/replay.py [--events 100000] [--rounds 2] [--json out.json] [--broker kafka://HOST:PORT]

Produces N inference/label pairs (the main benchmark's workload: labels with `label_time`, 100
inferences a second of event time) to fresh topics, then, for --rounds rounds (the order reversed
every other round), times a bare aiokafka consumer reading every record and `truthstream replay
--out FILE.csv` over the topics (its whole wall time: the process starting, reading, computing,
writing the table). The ratio is the median over rounds of the ratio within a round. The replay's
windows are checked against the data: every window's sample count and accuracy. `bench/benchmark.py`
runs the same over its own topics and writes the figures into the performance page.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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
from benchmark import GRACE_S, WINDOW_S, connection, fresh_topics, produce, raw_aiokafka, services, workload  # noqa: E402


def replay_run(broker: str, topics: tuple[str, str], out: Path, processes: int = 1) -> float:
    """Wall seconds of one `truthstream replay --out [--processes N]` over the topics."""
    env = {
        **os.environ,
        "TRUTHSTREAM_BROKER": broker,
        "TRUTHSTREAM_INFERENCE_TOPIC": topics[0],
        "TRUTHSTREAM_LABEL_TOPIC": topics[1],
        "TRUTHSTREAM_WINDOW_SECONDS": str(WINDOW_S),
        "TRUTHSTREAM_LABEL_GRACE": str(GRACE_S),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "replay", "--out", str(out), "--processes", str(processes)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"replay exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def check_windows(out: Path, table: pd.DataFrame) -> int:
    """The replay's windows (those the topics' event time closed) against the data: the same sample
    count and accuracy per window; every window closed by the last record's time is there."""
    found = pd.read_csv(out)
    table = table.assign(start=(table["time"] // WINDOW_S) * WINDOW_S)
    expected = table.groupby("start").apply(lambda w: (len(w), float((w["label"] == w["prediction"]).mean())))
    starts = [t.timestamp() for t in pd.to_datetime(found["window_start"], utc=True)]
    for start, samples, accuracy in zip(starts, found["sample_count"], found["accuracy"]):
        n, right = expected[float(start)]
        if samples != n or abs(accuracy - right) > 1e-12:
            raise RuntimeError(f"window {start}: {samples} samples, accuracy {accuracy}; the data has {n}, {right}")
    closed = sum(1 for start in expected.index if start + WINDOW_S + GRACE_S <= table["time"].max())
    if len(found) != closed:
        raise RuntimeError(f"{len(found)} windows replayed, the data closes {closed}")
    return len(found)


def runs(
    broker: str, topics: tuple[str, str], table: pd.DataFrame, records: int, rounds: int, processes: tuple[int, ...]
) -> dict[str, Any]:
    """A raw aiokafka read and a whole replay of the topics with each number of `processes`, --rounds
    times (the order reversed every other round); every replay's windows checked against the data
    (the `workload` on the topics) and against the first's table."""
    kafka = connection(broker)
    work = Path(tempfile.mkdtemp(prefix="truthstream-bench-replay-"))
    figures: dict[str, Any] = {"records": records, "raw": [], "replay": {}, "ratios": {}, "processes": processes}
    order = ["raw", *processes]
    for r in range(rounds):
        rates: dict[Any, float] = {}
        for what in order if r % 2 == 0 else reversed(order):
            if what == "raw":
                rates[what] = raw_aiokafka(kafka, topics, records)
                figures["raw"].append(rates[what])
            else:
                out = work / f"round{r}-{what}.csv"
                rates[what] = records / replay_run(broker, topics, out, int(what))
                figures["windows"] = check_windows(out, table)
                first = work / f"round0-{processes[0]}.csv"
                if first.exists() and out != first and first.read_text() != out.read_text():
                    raise RuntimeError(f"the replay with {what} processes wrote another table than with {processes[0]}")
                figures["replay"].setdefault(str(what), []).append(rates[what])
            print(f"round {r + 1}/{rounds}: {what}: {rates[what]:,.0f} records/s", file=sys.stderr)
        for n in processes:
            figures["ratios"].setdefault(str(n), []).append(rates[n] / rates["raw"])
    figures["replay_over_raw"] = {n: statistics.median(ratios) for n, ratios in figures["ratios"].items()}
    return figures


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures as the docs' table shows them."""
    rows = [("raw aiokafka read of the replayed topics", f"{statistics.median(figures['raw']):,.0f} records/s")]
    for n, rates in figures["replay"].items():
        rows.append(
            (
                f"replay of {figures['records']:,} records, {n} process(es) (`replay --out`, whole run)",
                f"{statistics.median(rates):,.0f} records/s (median of rounds)",
            )
        )
    for n, ratio in figures["replay_over_raw"].items():
        rows.append((f"**replay, {n} process(es) / raw aiokafka read** (target >= 0.3)", f"{ratio:.3f}"))
    rows.append(("replayed windows checked against the data", f"{figures['windows']}, all equal, every table alike"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="inference/label pairs (default 100000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both reads (default 2)")
    parser.add_argument(
        "--processes",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=(1, os.cpu_count() or 1),
        help="the replay's --processes of each run (default 1 and this machine's cores)",
    )
    parser.add_argument("--broker", help="Kafka URL (default: an embedded tansu)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.redis_url = "unused"  # `services` starts no Redis when given a URL: replay needs none
    pairs, table = workload(args.events, 1, 2, args.seed)
    with services(args) as (broker, _):
        topics = fresh_topics(connection(broker), uuid.uuid4().hex[:8])
        produce(connection(broker), topics, pairs, args.seed)
        figures = runs(broker, topics, table, 2 * len(pairs), args.rounds, args.processes)
    print(docs_table.table(f"### Replay ({figures['records']:,} records, {args.rounds} rounds)", table_rows(figures)))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
