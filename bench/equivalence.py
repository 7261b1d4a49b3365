"""Replay a fixed data set through the engine and print a digest of everything it publishes.

Refactors must not change behaviour: run this before and after, over the memory store and over a
real Redis, and compare the digests (and, with --out, the records themselves). The data set is
made here from a fixed seed: several models (binary, multiclass, regression), labels late and early,
duplicate and conflicting events, segments, calibrated estimates, change detectors, rolling windows,
two input partitions, dead letters.

    python bench/equivalence.py [--redis-url redis://127.0.0.1:6379/0] [--out records.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.core.calibration import Calibration  # noqa: E402
from stream.core.catalog import Catalog  # noqa: E402
from stream.core.constraints import parse_constraints  # noqa: E402
from stream.core.engine import Engine  # noqa: E402
from stream.core.records import INFERENCE, LABEL, RawMessage  # noqa: E402
from stream.core.timefmt import format_time  # noqa: E402
from stream.settings import Settings  # noqa: E402
from stream.stores.memory import MemoryStore  # noqa: E402

T0 = 1_764_000_000.0
MODELS = {
    "churn": "BinaryClassification",
    "fraud": "BinaryClassification",
    "species": "MulticlassClassification",
    "price": "Regression",
}
SPECIES = ("cat", "dog", "bird")


def settings(rolling: int) -> Settings:
    """The run's settings: one-minute windows, segments, change detectors, rolling windows."""
    return Settings(
        window_seconds=60.0,
        label_grace=30.0,
        label_ttl=900.0,
        min_samples=5,
        rolling_size=rolling,
        rolling_every=50,
        segments="features.country",
        model_problem_types=",".join(f"{m}={p}" for m, p in MODELS.items()),
        model_classes="species=" + "|".join(SPECIES),
    )


def catalog(s: Settings) -> Catalog:
    """The settings' catalog with a calibration for churn (label-free estimates)."""
    base = s.catalog()
    churn = parse_constraints(json.loads((ROOT / "constraints" / "churn.json").read_text()), "churn.json")
    return Catalog(
        default_problem_type=base.default_problem_type,
        per_model={"churn": churn, "fraud": churn},
        problem_types=base.problem_types,
        classes=base.classes,
        calibrations={"churn": Calibration((0.0, 0.5, 1.0), (0.05, 0.45, 0.95), 10)},
        default_segments=("features.country",),
    )


def messages(n: int, seed: int = 7) -> list[RawMessage]:
    """The data set, in the order a worker would read it (two partitions a side, interleaved)."""
    rng = random.Random(seed)
    out: list[tuple[float, RawMessage]] = []
    offsets: dict[tuple[str, int], int] = {}

    def msg(side: Any, topic: str, doc: Any, at: float, key: str | None) -> None:
        partition = 0 if key is None else int(hashlib.md5(key.encode()).hexdigest(), 16) % 2
        value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        out.append((at, RawMessage(side, topic, partition, 0, key.encode() if key else None, value, at)))

    for i in range(n):
        t = T0 + i * 0.9 + rng.random()
        model = rng.choice(list(MODELS))
        drift = 0.35 if t > T0 + n * 0.9 * 0.6 else 0.1
        event_id = f"e{i:07d}"
        doc: dict[str, Any] = {
            "event_id": event_id,
            "model": model,
            "model_version": rng.choice(["1", "2"]),
            "inference_time": format_time(t),
            "features": {"country": rng.choice("ABCDE")},
        }
        if model == "price":
            truth: Any = round(rng.gauss(100, 20), 3)
            doc["prediction"] = round(truth + rng.gauss(0, 5), 3)
        elif model == "species":
            truth = rng.choice(SPECIES)
            doc["prediction"] = truth if rng.random() > drift else rng.choice(SPECIES)
        else:
            truth = rng.random() < 0.3
            score = min(1.0, max(0.0, (0.8 if truth else 0.2) + rng.gauss(0, 0.2)))
            doc["prediction"] = (score > 0.5) if rng.random() > drift else (rng.random() < 0.5)
            doc["probability"] = round(score, 4)
        msg(INFERENCE, "inferences", doc, t, event_id)
        if rng.random() < 0.02:  # a duplicate, sometimes conflicting
            again = dict(doc)
            if rng.random() < 0.5 and model != "price":
                again["prediction"] = truth
            msg(INFERENCE, "inferences", again, t + 1, event_id)
        if rng.random() < 0.05:
            continue  # never labelled: expires
        delay = rng.choice([rng.uniform(-2, 0), rng.uniform(0, 20), rng.uniform(20, 120), rng.uniform(200, 400)])
        label: dict[str, Any] = {"event_id": event_id, "label": truth}
        if rng.random() < 0.5:
            label["label_time"] = format_time(t + max(delay, 0))
        msg(LABEL, "labels", label, t + delay, event_id)
        if rng.random() < 0.01:
            msg(LABEL, "labels", label, t + delay + 3, event_id)  # a duplicate label
    for j in range(n // 200):  # rejected input
        msg(INFERENCE, "inferences", b"{not json", T0 + j * 40, None)
        msg(LABEL, "labels", {"event_id": f"x{j}"}, T0 + j * 40 + 5, f"x{j}")
    out.sort(key=lambda item: item[0])
    read = []
    for _, m in out:  # offsets in the order the partitions hold them
        offset = offsets.get((m.topic, m.partition), 0)
        offsets[(m.topic, m.partition)] = offset + 1
        read.append(dataclasses.replace(m, offset=offset))
    return read


async def run(store: Any, s: Settings, cat: Catalog, batches: list[list[RawMessage]]) -> list[dict[str, Any]]:
    """Feed the batches; every output published, in order."""
    engine = Engine(s.core(), cat, store, 2)
    published: list[dict[str, Any]] = []
    clock = T0
    for batch in batches:
        clock = max(clock, max(m.timestamp or 0 for m in batch))
        await engine.process(batch, clock)
        while pending := await store.pending_outbox():
            published.extend({"kind": o.channel, "key": o.key, "value": o.value} for o in pending)
            await store.confirm_outbox(len(pending))
    await engine.idle(clock + 10_000)
    while pending := await store.pending_outbox():
        published.extend({"kind": o.channel, "key": o.key, "value": o.value} for o in pending)
        await store.confirm_outbox(len(pending))
    return published


async def over_redis(url: str, s: Settings, cat: Catalog, batches: list[list[RawMessage]]) -> list[dict[str, Any]]:
    """The run over a real Redis, under the prefix 'equivalence' (deleted first), two partitions."""
    import redis.asyncio as aioredis

    from stream.stores.redis import RedisStore

    client = aioredis.from_url(url)
    async for key in client.scan_iter("equivalence*"):
        await client.delete(key)
    try:
        store = RedisStore(
            client, "equivalence", s.label_ttl, 2, s.rolling_size, s.rolling_every, s.score_resolution, s.segment_cap
        )
        return await run(store, s, cat, batches)
    finally:
        await client.aclose()


def main() -> int:
    """Print the digests."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000, help="inferences in the data set")
    parser.add_argument("--batch", type=int, default=500, help="messages per batch")
    parser.add_argument("--redis-url", help="also run over this Redis (its prefix 'equivalence' is deleted first)")
    parser.add_argument("--out", help="write the memory run's records here, one JSON line each")
    args = parser.parse_args()
    data = messages(args.events)
    batches = [data[i : i + args.batch] for i in range(0, len(data), args.batch)]
    digests = {}
    for rolling in (0, 200):
        s = settings(rolling)
        cat = catalog(s)
        store = MemoryStore(s.rolling_size, s.rolling_every, s.segment_cap)
        published = asyncio.run(run(store, s, cat, batches))
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in published)
        digests[f"memory rolling={rolling}"] = (len(published), hashlib.sha256(text.encode()).hexdigest())
        if args.out and rolling == 0:
            Path(args.out).write_text(text)
        if args.redis_url:
            rows = asyncio.run(over_redis(args.redis_url, s, cat, batches))
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
            digests[f"redis rolling={rolling}"] = (len(rows), hashlib.sha256(text.encode()).hexdigest())
    print(f"{len(data)} messages in {len(batches)} batches")
    for name, (count, digest) in digests.items():
        print(f"{name:20} {count:7} records  sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
