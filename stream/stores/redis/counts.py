"""Counts no window will carry (late, expired, ... of models with no open window): read, then taken
with their accounting records if the partition's counters did not move meanwhile (COUNTS, TAKE)."""

from __future__ import annotations

import json

from stream.core.contract import CountsSnapshot, CountsTake, merge_counts
from stream.stores.redis import scripts
from stream.stores.redis.codec import counter_pairs, counters, text
from stream.stores.redis.outbox import rows
from stream.stores.redis.partitions import Partitions


class Counts:
    """The partitions' counters, read and taken."""

    def __init__(self, partitions: Partitions) -> None:
        self.partitions = partitions

    async def counts(self, models: list[str]) -> list[CountsSnapshot]:
        """Per partition, the counters of the models no window open in it carries (see COUNTS)."""
        names = json.dumps(models)
        calls = [self.partitions.call(scripts.COUNTS, p, names) for p in range(self.partitions.count)]
        return [
            CountsSnapshot(p, text(version) or "", {m: merge_counts(counters(flat)) for m, flat in zip(models, found)})
            for p, (version, found) in enumerate(await self.partitions.run(calls))
        ]

    async def take(self, takes: list[CountsTake]) -> set[int]:
        """Subtract each partition's counts and queue its records, if its counters' version is unmoved."""
        calls = []
        for t in takes:
            take = [
                [model, counter_pairs({f: -n for f, n in counts.items() if n})] for model, counts in t.counts.items()
            ]
            control = {"version": t.version, "take": take, "rows": rows(t.outputs)}
            calls.append(self.partitions.call(scripts.TAKE, t.partition, json.dumps(control)))
        replies = await self.partitions.run(calls)
        return {t.partition for t, reply in zip(takes, replies) if reply == 1}
