"""The input partitions' state in Redis as one thing to run scripts on: names, calls, the clock."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from stream.core.contract import Clock
from stream.stores.redis import scripts
from stream.stores.redis.codec import text
from stream.stores.redis.keys import Keys
from stream.stores.redis.scripts import Call, Read, Script


class Partitions:
    """A client, the key layout and the partition count: what every part of the store runs on."""

    def __init__(self, client: Any, keys: Keys, count: int) -> None:
        self.client, self.keys, self.count = client, keys, count

    def call(self, script: Script, partition: int, *args: Any) -> Call:
        """A partition script's run: KEYS[1] the partition's meta hash, ARGV[1] its base."""
        return Call(script, self.keys.meta(partition), (self.keys.base(partition), *args))

    async def run(self, calls: Sequence[Call], reads: Sequence[Read] = ()) -> list[Any]:
        """Run scripts of several partitions (each atomic on its own), then the reads, in one round trip."""
        if not calls and not reads:
            return []
        return await scripts.run(self.client, calls, reads)

    def clock_reads(self) -> list[Read]:
        """The reads of every partition's watermarks (see `clock_of`)."""
        return self.hash_reads("wm", range(self.count))

    def hash_reads(self, name: str, partitions: Iterable[int]) -> list[Read]:
        """The reads of one hash (`wm`, `ck`, ...) of each of these partitions (HGETALL)."""
        return [partial(_hgetall, self.keys.of(p, name)) for p in partitions]

    def clock_of(self, replies: list[dict[bytes, bytes]], expiry: dict[int, tuple[float, bool]] | None = None) -> Clock:
        """The clock from `clock_reads`' replies (and `expiry_of`'s, when read with them): the idle
        floor is the lowest partition's (raising it is not atomic over partitions)."""
        watermarks: dict[str, float] = {}
        floors: list[float] = []
        for p, marks in enumerate(replies):
            found = {text(k) or "": float(v) for k, v in marks.items()}
            watermarks.update((f"{side}{p}", found[side]) for side in ("i", "l") if side in found)
            floors.append(found.get("f", -math.inf))
        return Clock(watermarks, min(floors, default=-math.inf), expiry)

    def expiry_reads(self, partitions: list[int]) -> list[Read]:
        """The reads of the partitions' earliest expiry slot and sweep work list (see `expiry_of`)."""
        reads: list[Read] = []
        for p in partitions:
            reads.append(partial(_first_scored, self.keys.of(p, "xs")))
            reads.append(partial(_exists, self.keys.of(p, "xw")))
        return reads

    @staticmethod
    def expiry_of(partitions: list[int], replies: list[Any]) -> dict[int, tuple[float, bool]]:
        """Per partition, the end of its earliest expiry slot and whether a sweep's work is left."""
        return {
            p: (first[0][1] if first else math.inf, bool(work))
            for p, first, work in zip(partitions, replies[::2], replies[1::2])
        }

    async def hashes(self, names: dict[int, list[str]]) -> dict[int, list[list[bytes]]]:
        """Per partition, the hashes of these names under its base, as flat HGETALL replies (one
        script call per partition instead of a command per hash)."""
        ordered = sorted(p for p, n in names.items() if n)
        replies = await self.run([self.call(scripts.HASHES, p, json.dumps(names[p])) for p in ordered])
        return dict(zip(ordered, replies))


def _hgetall(key: str, pipe: Any) -> object:
    return pipe.hgetall(key)


def _first_scored(key: str, pipe: Any) -> object:
    return pipe.zrange(key, 0, 0, withscores=True)


def _exists(key: str, pipe: Any) -> object:
    return pipe.exists(key)
