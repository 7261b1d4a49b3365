"""The data-quality monitor's cost, in one run: the worker's messages/s with data quality on against
off, and the bytes a window's state holds per feature.

    python bench/data_quality.py [--events 60000] [--rounds 2] [--json out.json] [--docs docs/performance.md]
                                 [--broker kafka://HOST:PORT --redis-url redis://HOST:PORT/0]

Inferences carry 20 numeric and 5 categorical features (12,000 a one-minute window, 3,000 per
partition: every part folds once). The same messages are read by a `truthstream worker` without and
with TRUTHSTREAM_DATA_QUALITY (a baseline of the workload's first 5,000 rows), the order reversed every
other round; the ratio is the median over rounds of the ratio within a round. Bytes: MEMORY USAGE of
a part's raw rows (a list of 2,050) and of a folded profile (6,000 rows), in the Redis given, per
feature.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import docs_table  # noqa: E402 - the repository root first
from benchmark import (  # noqa: E402
    CHUNK,
    T0,
    connection,
    fresh_topics,
    produce,
    services,
    sync_redis,
    truthstream_run,
)

from stream.core.dataquality.parts import FOLD_ROWS, WindowProfile, fold  # noqa: E402
from stream.core.dataquality.profile import DataProfile  # noqa: E402
from stream.core.dataquality.suggest import suggest_constraints  # noqa: E402
from stream.core.timefmt import format_time  # noqa: E402

NUMERIC, CATEGORICAL = 20, 5
STEP_S = 0.005  # 200 inferences a second of event time: 12,000 a one-minute window


def features(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {f"x{i}": round(rng.gauss(i, 1.0 + i / 10), 4) for i in range(NUMERIC)}
    out.update({f"c{i}": rng.choice(("red", "green", "blue", "amber", "violet")) for i in range(CATEGORICAL)})
    return out


def workload(n: int, seed: int) -> tuple[list[tuple[str, bytes, bytes]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    pairs, rows = [], []
    for i in range(n):
        event_id, t = str(uuid.UUID(int=rng.getrandbits(128))), T0 + i * STEP_S
        row = features(rng)
        y = rng.randrange(2)
        inference = {
            "event_id": event_id,
            "model": "m0",
            "model_version": "1",
            "inference_time": format_time(t),
            "prediction": y if rng.random() < 0.85 else 1 - y,
            "probability": round(rng.random(), 4),
            "features": row,
        }
        label = {"event_id": event_id, "label": y, "label_time": format_time(t + 1.0)}
        pairs.append((event_id, json.dumps(inference).encode(), json.dumps(label).encode()))
        rows.append(row)
    return pairs, rows


def baseline_files(rows: list[dict[str, Any]], where: Path) -> tuple[Path, Path]:
    profile = DataProfile([])
    for row in rows:
        profile.add_record(row)
    constraints, stats = where / "constraints.json", where / "statistics.json"
    constraints.write_text(json.dumps(suggest_constraints(profile)))
    stats.write_text(json.dumps(profile.statistics()))
    return constraints, stats


def state_bytes(redis_url: str, rows: list[dict[str, Any]]) -> dict[str, float]:
    """MEMORY USAGE per feature of a part's raw rows and of a folded profile (numeric, categorical)."""
    client = sync_redis(redis_url, False)
    texts = [json.dumps(r, separators=(",", ":")) for r in rows]
    key = f"bench-dq-{uuid.uuid4().hex}"
    try:
        client.rpush(key + ":q", *texts[: FOLD_ROWS - 1])
        raw = client.memory_usage(key + ":q", samples=0)
        numeric, categorical = WindowProfile(), WindowProfile()
        numeric.add_rows([json.dumps({"x": r["x0"]}) for r in rows[:6000]], 0)
        categorical.add_rows([json.dumps({"c": r["c0"]}) for r in rows[:6000]], 0)
        sizes = {}
        for name, profile in (("numeric", numeric), ("categorical", categorical)):
            client.hset(key + ":qs", mapping={"p": profile.dump(), "n": 1})
            sizes[name] = client.memory_usage(key + ":qs", samples=0)
            client.delete(key + ":qs")
        whole = fold(None, texts[:6000], 0)
        client.hset(key + ":qs", mapping={"p": whole, "n": 1})
        sizes["all"] = client.memory_usage(key + ":qs", samples=0)
    finally:
        client.delete(key + ":q", key + ":qs")
    features = NUMERIC + CATEGORICAL
    return {
        "raw_part_bytes": raw,
        "raw_bytes_per_feature_per_row": raw / (FOLD_ROWS - 1) / features,
        "folded_bytes_numeric_feature": sizes["numeric"],
        "folded_bytes_categorical_feature": sizes["categorical"],
        "folded_part_bytes": sizes["all"],
    }


def table_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures as the docs' table shows them."""
    b, rates = figures["bytes"], figures["msgs_per_s"]
    return [
        ("messages/s, data quality off (median)", f"{statistics.median(rates['off']):,.0f}"),
        ("messages/s, data quality on (median)", f"{statistics.median(rates['on']):,.0f}"),
        ("on / off (median of rounds; target 0.7)", f"{figures['on_over_off']:.2f}"),
        ("raw rows: bytes per feature per row", f"{b['raw_bytes_per_feature_per_row']:.1f}"),
        ("raw part of 2,050 rows, 25 features", f"{b['raw_part_bytes'] / 1e6:.2f} MB"),
        ("folded profile, one numeric feature", f"{b['folded_bytes_numeric_feature'] / 1e3:.1f} KB"),
        ("folded profile, one categorical feature", f"{b['folded_bytes_categorical_feature'] / 1e3:.1f} KB"),
        ("folded profile, 25 features", f"{b['folded_part_bytes'] / 1e3:.0f} KB"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000, help="inference/label pairs (default 60000)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds (default 2)")
    parser.add_argument("--broker", help="Kafka URL (default: an embedded tansu)")
    parser.add_argument("--redis-url", help="Redis URL (default: an embedded redis-server)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--docs", type=Path, metavar="PAGE", help="rewrite the data-quality table of PAGE (docs/performance.md)"
    )
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    pairs, rows = workload(args.events, args.seed)
    logs = Path(tempfile.mkdtemp(prefix="truthstream-bench-dq-"))
    constraints, stats = baseline_files(rows[:5000], logs)
    figures: dict[str, Any] = {"events": args.events, "features": {"numeric": NUMERIC, "categorical": CATEGORICAL}}
    with services(args) as (broker, redis_url):
        kafka = connection(broker)
        tag = uuid.uuid4().hex[:8]
        topics = fresh_topics(kafka, tag)
        produce(kafka, topics, pairs, args.seed)
        total = 2 * len(pairs)
        print(f"produced {total} messages ({CHUNK} pairs a chunk); logs in {logs}", file=sys.stderr)
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(args.rounds):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for mode in order:
                extra = {"data_quality": constraints, "data_quality_statistics": stats} if mode == "on" else {}
                rate, _, _ = truthstream_run(broker, redis_url, topics, f"{tag}-{mode}{r}", total, logs, **extra)
                rates[mode].append(rate)
                print(f"round {r + 1}: data quality {mode}: {rate:,.0f} msgs/s", file=sys.stderr)
        figures["msgs_per_s"] = rates
        figures["on_over_off"] = statistics.median(on / off for on, off in zip(rates["on"], rates["off"]))
        figures["bytes"] = state_bytes(redis_url, rows)
    rows = table_rows(figures)
    title = f"### Data quality ({args.events:,} pairs, {args.rounds} rounds)"
    print(docs_table.table(title, rows))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    if args.docs:
        docs_table.update(
            args.docs, "data-quality", f"### Data quality ({args.events:,} pairs, {args.rounds} rounds)", rows
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
