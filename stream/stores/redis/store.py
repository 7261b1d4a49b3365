"""The worker's state store: a `StateStore` over redis-py's asyncio client or its cluster client.

Every batch of an input partition is one optimistic transaction on keys of that partition alone
(`transactions`), so the store runs on one Redis or on a Redis Cluster; the layout is in `keys`,
the stored forms in `codec`, window closing in `windows`, the counts no window carries in `counts`,
the records to publish in `outbox`. This class only puts them together.
"""

from __future__ import annotations

from typing import Any

from stream.core.contract import (
    Claim,
    ClaimResult,
    Clock,
    CountsSnapshot,
    CountsTake,
    DetectorStates,
    Job,
    RollingDue,
    SealedWindow,
    Stage,
    Transacted,
)
from stream.core.state import Output
from stream.core.windows import WindowKey
from stream.errors import StateError
from stream.stores.redis import scripts, sizes
from stream.stores.redis.codec import EntryCodec, ModelTable, handle
from stream.stores.redis.counts import Counts
from stream.stores.redis.keys import OLD_LAYOUT_KEYS, Keys
from stream.stores.redis.outbox import Outbox
from stream.stores.redis.partitions import Partitions
from stream.stores.redis.quality import QualityParts
from stream.stores.redis.transactions import Transactions
from stream.stores.redis.windows import Windows

# Redis forgets a bucket, index list or long label this long after its last write even if event
# time stalls, so an abandoned prefix cannot hold memory for ever. Event-time expiry comes first.
SAFETY_TTL_FACTOR = 2
EXPIRY_PAGE = 10000  # expired entries handled per partition per batch


class RedisStore:
    """A StateStore in Redis (see the package's modules for each part)."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        label_ttl: float,
        partitions: int = 1,
        rolling_size: int = 0,
        rolling_every: int = 1,
        resolution: float = 1e-4,
        segment_cap: int = 20,
    ) -> None:
        self.redis, self.prefix, self.label_ttl = client, prefix, label_ttl
        self.keys = Keys(prefix)
        self.partitions = Partitions(client, self.keys, partitions)
        self.safety_ttl = int(label_ttl * SAFETY_TTL_FACTOR) + 86400
        self.models = ModelTable()
        self.codec = EntryCodec(label_ttl, self.models)
        self.transactions = Transactions(
            self.partitions,
            self.models,
            self.codec,
            label_ttl,
            self.safety_ttl,
            (rolling_size, rolling_every),
            segment_cap,
        )
        self.windows = Windows(self.partitions, resolution, label_ttl, self.safety_ttl)
        self.counters = Counts(self.partitions)
        self.quality = QualityParts(self.partitions, self.safety_ttl, segment_cap)
        self.outbox = Outbox(self.partitions)
        self.outbox_page = self.outbox.page
        self.rolling_size = rolling_size

    async def check_layout(self) -> None:
        """Refuse a Redis holding truthstream's first key layout under this prefix (its state would be
        ignored: counted nowhere). Reads only: a full Redis must not stop the worker from starting."""
        for name in OLD_LAYOUT_KEYS:
            if await self.redis.exists(self.keys.outside(name)):
                raise StateError(
                    f"Redis holds state of truthstream's first key layout under prefix {self.prefix!r} "
                    f"(key {self.keys.outside(name)!r}): run the previous version until its windows closed and "
                    "its outbox is empty, then delete its keys (or choose another TRUTHSTREAM_REDIS_PREFIX); "
                    "see 'Upgrading' in the docs"
                )

    async def transact(self, jobs: list[Job]) -> Transacted:
        """Run the jobs as optimistic transactions (see `transactions`), then fold the data-quality
        rows that reached a whole fold (see `quality`)."""
        done = await self.transactions.transact(jobs)
        if self.transactions.fold_due:
            due, self.transactions.fold_due = self.transactions.fold_due, []
            await self.quality.fold(due)
        return done

    async def rolling_samples(self, due: list[RollingDue]) -> list[RollingDue]:
        """The rolling windows `transact` found due, each merged from every partition's part (read once
        per batch, after it; see `RollingDue`)."""
        count, keys = self.partitions.count, self.keys
        reads = []
        for d in due:
            for p in range(count):
                reads.append(lambda pipe, p=p, d=d: pipe.lrange(keys.of(p, f"r:{d.model_key}"), 0, -1))
                reads.append(lambda pipe, p=p, d=d: pipe.hget(keys.of(p, "rn"), d.model_key))
        replies = await self.partitions.run([], reads)
        out = []
        for i, d in enumerate(due):
            mine = replies[2 * count * i : 2 * count * (i + 1)]
            parts = [(int(n or 0), RollingDue.decode(d.model_key, 0, rows)) for rows, n in zip(mine[::2], mine[1::2])]
            out.append(RollingDue.merged(d.model_key, parts, self.rolling_size))
        return out

    async def clock(self) -> Clock:
        """Partition watermarks and the idle floor (the lowest partition's: raising it is not atomic).
        Read with the applied offsets this process saw: a Redis that lost writes raises `StateLost`
        here too, before windows are closed over its older state."""
        reads = self.partitions.clock_reads()
        checked, positions = self.transactions.position_reads()
        replies = await self.partitions.run([], reads + positions)
        self.transactions.check_all(checked, replies[len(reads) :])
        return self.partitions.clock_of(replies[: len(reads)])

    async def positions(self, inputs: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """The last offset applied of each input partition (None: Redis holds none)."""
        reads = [lambda pipe, t=t, p=p: pipe.hget(self.keys.of(p, "ck"), t) for t, p in inputs]
        replies = await self.partitions.run([], reads)
        return {tp: int(r) if r is not None else None for tp, r in zip(inputs, replies)}

    async def raise_floor(self, when: float) -> None:
        """Advance every partition's idle floor (a Lua max keeps each monotonic under concurrent writers)."""
        calls = [
            scripts.Call(scripts.RAISE_FLOOR, self.keys.of(p, "wm"), (repr(when),))
            for p in range(self.partitions.count)
        ]
        await self.partitions.run(calls)

    async def expiry_candidates(
        self, partitions: set[int], horizon: float, clock: Clock | None = None
    ) -> dict[int, list[str]]:
        """Handles of these partitions' entries indexed in expiry slots ending by `horizon` (a page)."""
        due = {p for p in partitions if clock is None or clock.sweep_due(p, horizon)}
        return await self._work(due, "xw", "due", repr(horizon)) if due else {}

    async def oldest_beyond(self, partitions: set[int], limit: int) -> dict[int, list[str]]:
        """Handles of the entries of each partition past the `limit` that expire last (a page)."""
        return await self._work(partitions, "xv", "over", str(limit))

    async def _work(self, partitions: set[int], work: str, mode: str, bound: str) -> dict[int, list[str]]:
        ordered = sorted(partitions)
        calls = [self.partitions.call(scripts.CANDIDATES, p, work, mode, bound, EXPIRY_PAGE) for p in ordered]
        replies = await self.partitions.run(calls)
        return {p: [handle(work, d) for d in found] for p, found in zip(ordered, replies) if found}

    async def sizes(self) -> dict[str, float]:
        """Bytes of the state by family, estimated in two round trips (see `sizes`)."""
        return await sizes.estimate(self.partitions)

    async def waiting(self) -> dict[str, int]:
        """Inferences and labels waiting for their other side, over all partitions (counted by the
        writes of this version: entries written before it are not in the count)."""
        reads = [lambda pipe, p=p: pipe.hmget(self.keys.meta(p), "pi", "pl") for p in range(self.partitions.count)]
        counts = await self.partitions.run([], reads)
        return {
            "inference": sum(int(i or 0) for i, _ in counts),
            "label": sum(int(lab or 0) for _, lab in counts),
        }

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Windows with a part ending by `until` in some partition, or sealed (see `windows`)."""
        return await self.windows.open_windows(until)

    async def seal(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """Seal the windows in every partition (see `windows`)."""
        return await self.windows.seal(keys)

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows waiting for a provisional record, ending by `until` (see `windows`)."""
        return await self.windows.provisional_due(until)

    async def provisional_state(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """The windows' state so far, with their data-quality parts (see `windows`, `quality`)."""
        found = await self.windows.provisional_state(keys)
        if found:
            for window, parts in zip(found, await self.quality.read([w.key for w in found])):
                window.quality = parts
        return found

    async def unlist_provisional(self, keys: list[WindowKey]) -> None:
        """Take the windows off the provisional lists (see `windows`)."""
        await self.windows.unlist_provisional(keys)

    async def detectors(self, models: list[str], stage: Stage) -> dict[str, DetectorStates]:
        """The model versions' change detectors (see `windows`)."""
        return await self.windows.detectors(models, stage)

    async def claim(self, claims: list[Claim], stage: Stage) -> ClaimResult:
        """Claim windows' records (see `windows`)."""
        return await self.windows.claim(claims, stage)

    async def finish(self, keys: list[WindowKey]) -> None:
        """Drop sealed windows (see `windows`)."""
        await self.windows.finish(keys)

    async def counts(self, models: list[str]) -> list[CountsSnapshot]:
        """Counts no open window carries (see `counts`)."""
        return await self.counters.counts(models)

    async def take_counts(self, takes: list[CountsTake]) -> set[int]:
        """Take counts with their records (see `counts`)."""
        return await self.counters.take(takes)

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs (see `outbox`)."""
        await self.outbox.enqueue(outputs)

    async def pending_outbox(self) -> list[Output]:
        """The first page of every partition's outbox (see `outbox`)."""
        return await self.outbox.pending()

    async def confirm_outbox(self, count: int) -> None:
        """Drop what Kafka acknowledged (see `outbox`)."""
        await self.outbox.confirm(count)
