"""The state's size in Redis by family, estimated in two round trips whatever its size.

A full count (SCAN and MEMORY USAGE of every key, as `bench/soak.py` does) reads every key, which
a Redis holding a week of join state (millions of bucket hashes) must not pay every minute. This
estimate reads each partition's fixed keys exactly and extrapolates the families of many keys from
a few of them: join entries (bucket hashes: their number is the linear hashing's `2^L + s`), the
expiry index (lists, one per slot in `xs`), window parts (one per window in `open` and `sealed`),
data-quality rows and profiles (one list and one hash per window in `pv`), change detectors (one
hash per model version its owner partition published, `cp`) and rolling parts (`rn`). What it
leaves out (admitted segment values, waiting labels too long for a bucket, counters, provisional
markers) is small; Redis's `used_memory` holds everything.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

from stream.stores.redis.codec import text
from stream.stores.redis.partitions import Partitions
from stream.stores.redis.scripts import Read

# families, in the order Prometheus shows them
ENTRIES, EXPIRY, WINDOWS, DETECTORS, ROLLING, QUALITY, OUTBOX, BOOKKEEPING = (
    "join entries",
    "expiry index",
    "windows",
    "change detectors",
    "rolling windows",
    "data quality",
    "outbox",
    "bookkeeping",
)
FIXED = {"o": OUTBOX, "rn": ROLLING, **{k: BOOKKEEPING for k in ("meta", "m", "ck", "wm", "open", "pv", "sealed",
                                                                  "cl", "cp", "xs", "cv")}}  # fmt: skip
SAMPLES = 6  # keys measured per partition and family


async def estimate(partitions: Partitions, rng: random.Random | None = None) -> dict[str, float]:
    """Bytes of the state by family, over every partition (see the module's docstring)."""
    rng = rng or random.Random()
    keys = partitions.keys
    first: list[Read] = []
    for p in range(partitions.count):
        first += [_command("memory_usage", keys.of(p, name)) for name in FIXED]
        first += [
            _command("hmget", keys.meta(p), "L", "s"),
            _command("zcard", keys.of(p, "xs")),
            _command("zrandmember", keys.of(p, "xs"), SAMPLES),
            _command("zcard", keys.of(p, "open")),
            _command("zrandmember", keys.of(p, "open"), SAMPLES),
            _command("hlen", keys.of(p, "cp")),
            _command("hrandfield", keys.of(p, "cp"), SAMPLES),
            _command("hlen", keys.of(p, "rn")),
            _command("hrandfield", keys.of(p, "rn"), SAMPLES),
            _command("zcard", keys.of(p, "pv")),
            _command("zrandmember", keys.of(p, "pv"), SAMPLES),
        ]
    replies = await partitions.run([], first)
    width = len(FIXED) + 11
    sizes = dict.fromkeys((ENTRIES, EXPIRY, WINDOWS, DETECTORS, ROLLING, QUALITY, OUTBOX, BOOKKEEPING), 0.0)
    # (family, group, count it stands for, partition, key)
    sampled: list[tuple[str, int, int, int, str]] = []
    for p in range(partitions.count):
        row = replies[p * width : (p + 1) * width]
        for name, used in zip(FIXED, row):
            sizes[FIXED[name]] += float(used or 0)
        (level, split), slots, slot_names, opened, windows, owned, models, rolled, rolling, listed, pending = row[
            len(FIXED) :
        ]
        buckets = 2 ** int(level or 0) + int(split or 0) if level is not None else 0
        groups = [
            (ENTRIES, buckets, [f"e:{rng.randrange(buckets)}" for _ in range(min(SAMPLES, buckets))]),
            (EXPIRY, int(slots), [f"x:{text(s)}" for s in slot_names or []]),
            (WINDOWS, int(opened), [f"w:{text(w)}" for w in windows or []]),
            (DETECTORS, int(owned), [f"cd:{text(m)}" for m in models or []]),
            (ROLLING, int(rolled), [f"r:{text(m)}" for m in rolling or []]),
            (QUALITY, int(listed), [f"q:{text(w)}" for w in pending or []]),  # rows, then folded profiles
            (QUALITY, int(listed), [f"qs:{text(w)}" for w in pending or []]),
        ]
        for group, (family, count, names) in enumerate(groups):
            sampled += [(family, group, count, p, keys.of(p, name)) for name in names]
    if sampled:
        used = await partitions.run([], [_command("memory_usage", key) for *_, key in sampled])
        per: dict[tuple[str, int, int, int], list[float]] = {}
        for (family, group, count, p, _), size in zip(sampled, used):
            per.setdefault((family, group, count, p), []).append(float(size or 0))
        for (family, _, count, _), found in per.items():
            sizes[family] += count * sum(found) / len(found)
    return sizes


def _command(name: str, key: str, *args: Any) -> Read:
    return partial(_run, name, key, args)


def _run(name: str, key: str, args: tuple[Any, ...], pipe: Any) -> object:
    return getattr(pipe, name)(key, *args)


async def used_memory(client: Any) -> float:
    """Redis's `used_memory`, summed over the masters of a cluster."""
    info = await client.info("memory")
    if isinstance(info, dict) and "used_memory" in info:
        return float(info["used_memory"])
    return float(sum(node["used_memory"] for node in info.values() if isinstance(node, dict)))
