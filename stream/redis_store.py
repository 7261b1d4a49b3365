"""State held in Redis: the worker's store. Every batch is one optimistic transaction.

Key layout (all under the configured prefix):
  j:{event_id}        a join entry (pending inference, pending label, or joined tombstone)
  x:{partition}       sorted set event_id -> event time at which it expires
  ck:{topic}:{part}   last input offset applied (the exactly-once guard)
  wm                  hash i<partition> / l<partition> -> latest inference / label time seen
  floor               idle floor of event time (wall clock after an idle period)
  w:{window}          hash counter field -> count (a WindowAggregate)
  open                sorted set window -> end time
  c:{model}           hash of late/expired/duplicates/rejected counts since the last report
  r:{model version}   list of the last N joined samples (rolling window); rn: their counts
  outbox              list of records to publish, removed once Kafka acknowledged them

A batch WATCHes the offsets of its input partitions and the floor, reads what it
needs, runs the core step, and writes every change plus the new offsets in one
MULTI/EXEC: a batch replayed after a crash finds its offsets applied and changes
nothing; a zombie worker that lost its partitions fails its EXEC.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from stream.aggregate import WindowAggregate
from stream.core import UNATTRIBUTED, JoinEntry, Output, StateView, StepResult
from stream.engine import RollingDue
from stream.errors import TruthstreamError
from stream.records import Joined
from stream.windows import WindowKey, split_model_key

# Redis forgets an entry this long after its last write even if event time stalls, so a
# stopped stream cannot grow Redis without bound. Event-time expiry normally comes first.
SAFETY_TTL_FACTOR = 2
OUTBOX_PAGE = 1000  # outbox entries published per round
EXPIRY_PAGE = 10000  # expired entries handled per partition per batch
MAX_RETRIES = 50  # optimistic-transaction retries before giving up on a batch


# SET each KEYS[i] to ARGV[i + 1] with a TTL of ARGV[1] seconds.
SET_MANY = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
"""
# Add ARGV[2i] to field ARGV[2i - 1] of hash KEYS[1]; a value with a point or exponent is a float.
HINCR_MANY = """
for i = 1, #ARGV, 2 do
  if string.find(ARGV[i + 1], '[.eEn]') then
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return #ARGV / 2
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _number(value: bytes) -> float:
    """A counter as Redis returns it: an integer, or a float written by HINCRBYFLOAT."""
    try:
        return int(value)
    except ValueError:
        return float(value)


class RedisStore:
    """A StateStore over redis-py's asyncio client."""

    def __init__(self, client: aioredis.Redis, prefix: str, label_ttl: float, rolling_size: int = 0,
                 rolling_every: int = 1, resolution: float = 1e-4) -> None:
        self.redis, self.prefix = client, prefix
        self.safety_ttl = int(label_ttl * SAFETY_TTL_FACTOR) + 86400
        self.rolling_size, self.rolling_every, self.resolution = rolling_size, rolling_every, resolution
        self._set_many = client.register_script(SET_MANY)
        self._hincr_many = client.register_script(HINCR_MANY)

    # -- keys ----------------------------------------------------------------------------------
    def key(self, *parts: object) -> str:
        """A key under this store's prefix."""
        return ":".join([self.prefix, *map(str, parts)])

    # -- batches -------------------------------------------------------------------------------
    async def transact(self, ids: set[str], inputs: set[tuple[str, int]], step: Any) -> tuple[StepResult, list[RollingDue]]:
        """Load the view, run `step`, write its result and offsets atomically; retry on conflict."""
        id_list = sorted(ids)
        input_list = sorted(inputs)
        ck_keys = [self.key("ck", t, p) for t, p in input_list]
        floor_key = self.key("floor")
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*ck_keys, floor_key)
                    raw = await pipe.mget([self.key("j", i) for i in id_list] + ck_keys + [floor_key])
                    watermarks = await pipe.hgetall(self.key("wm"))
                    entries = {i: JoinEntry.decode(v) if v is not None else None
                               for i, v in zip(id_list, raw)}
                    cks = {inp: int(v) for inp, v in zip(input_list, raw[len(id_list):]) if v is not None}
                    floor = raw[-1]
                    view = StateView(entries, cks, {_text(k) or "": float(t) for k, t in watermarks.items()},
                                     float(floor) if floor is not None else -math.inf)
                    result: StepResult = step(view)
                    pipe.multi()
                    rolling_at = await self._write(pipe, result)
                    replies = await pipe.execute()
                except WatchError:
                    continue
            return result, await self._rolling_due(result, replies, rolling_at)
        raise TruthstreamError(f"Redis transaction kept conflicting {MAX_RETRIES} times; "
                               "is another worker consuming the same partitions?")

    async def _write(self, pipe: Any, result: StepResult) -> dict[str, int]:
        # A batch's writes are a handful of commands, not a few per event: redis-py spends
        # more time packing and parsing commands than Redis spends running them.
        for partition, ids in result.unindex.items():
            pipe.zrem(self.key("x", partition), *ids)
        index: dict[int, dict[str, float]] = {}
        deleted, written = [], []
        for event_id, entry in result.entries.items():
            if entry is None:
                deleted.append(self.key("j", event_id))
                continue
            written.append((self.key("j", event_id), entry.encode()))
            if math.isfinite(entry.expires):
                index.setdefault(entry.partition, {})[event_id] = entry.expires
        if deleted:
            pipe.delete(*deleted)
        if written:
            await self._set_many(keys=[k for k, _ in written], args=[self.safety_ttl, *(v for _, v in written)],
                                 client=pipe)
        for partition, members in index.items():
            pipe.zadd(self.key("x", partition), members)
        for window, agg in result.windows.items():
            await self._add_counts(self.key("w", window.encode()), agg.counts, pipe)
        if result.windows:
            pipe.zadd(self.key("open"), {w.encode(): w.end for w in result.windows})
        for model, counts in result.counters.items():
            await self._add_counts(self.key("c", model), counts, pipe)
        if result.watermarks:
            pipe.hset(self.key("wm"), mapping={k: repr(t) for k, t in result.watermarks.items()})
        for (topic, partition), offset in result.checkpoints.items():
            pipe.set(self.key("ck", topic, partition), offset)
        self._push(pipe, result.outputs)
        rolling_at = {}
        for mk, samples in result.rolling.items():
            name = self.key("r", mk)
            pipe.rpush(name, *(json.dumps([s.time, s.y_true, s.y_pred, s.score]) for s in samples))
            pipe.ltrim(name, -self.rolling_size, -1)
            rolling_at[mk] = len(pipe.command_stack)
            pipe.hincrby(self.key("rn"), mk, len(samples))
        return rolling_at

    async def _add_counts(self, name: str, counts: dict[str, float], pipe: Any) -> None:
        args: list[Any] = []
        for field, n in counts.items():
            args += [field, repr(n) if isinstance(n, float) else n]
        if args:
            await self._hincr_many(keys=[name], args=args, client=pipe)  # queued, not sent

    def _push(self, pipe: Any, outputs: Iterable[Output]) -> None:
        values = [json.dumps({"topic": o.topic, "key": o.key, "value": o.value}) for o in outputs]
        if values:
            pipe.rpush(self.key("outbox"), *values)

    async def _rolling_due(self, result: StepResult, replies: list[Any], rolling_at: dict[str, int]) -> list[RollingDue]:
        due = []
        for mk, at in rolling_at.items():
            total = int(replies[at])
            before = total - len(result.rolling[mk])
            if total // self.rolling_every > before // self.rolling_every:
                rows = await self.redis.lrange(self.key("r", mk), 0, -1)
                samples = [Joined(*split_model_key(mk), t, yt, yp, s) for t, yt, yp, s in map(json.loads, rows)]
                due.append(RollingDue(mk, total, samples))
        return due

    # -- expiry and clock ----------------------------------------------------------------------
    async def clock(self) -> tuple[dict[str, float], float]:
        """Partition watermarks and the idle floor."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key("wm"))
            pipe.get(self.key("floor"))
            watermarks, floor = await pipe.execute()
        return ({_text(k) or "": float(t) for k, t in watermarks.items()},
                float(floor) if floor is not None else -math.inf)

    async def expiry_candidates(self, partitions: set[int], now: float) -> dict[int, list[str]]:
        """Indexed entries of these partitions due before `now` (a page per call)."""
        out = {}
        if now == -math.inf:
            return out
        async with self.redis.pipeline(transaction=False) as pipe:
            ordered = sorted(partitions)
            for p in ordered:
                pipe.zrangebyscore(self.key("x", p), "-inf", f"({now!r}", start=0, num=EXPIRY_PAGE)
            for p, found in zip(ordered, await pipe.execute()):
                out[p] = [_text(i) or "" for i in found]
        return out

    async def raise_floor(self, when: float) -> None:
        """Advance the idle floor (a Lua max keeps it monotonic under concurrent writers)."""
        await self.redis.eval(
            "local v = tonumber(redis.call('GET', KEYS[1]) or '-inf') "
            "if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
            1, self.key("floor"), repr(when))

    # -- windows -------------------------------------------------------------------------------
    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open windows ending at or before `until`, oldest first."""
        found = await self.redis.zrangebyscore(self.key("open"), "-inf", until)
        return sorted((WindowKey.decode(_text(k) or "") for k in found), key=lambda k: (k.end, k.model, k.version))

    async def close_window(self, key: WindowKey, build: Any) -> list[Output]:
        """Take the window and its counters, queue its outputs, delete it: one transaction."""
        name = self.key("w", key.encode())
        counter_keys = [self.key("c", key.model), self.key("c", UNATTRIBUTED)]
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(name)
                    fields = await pipe.hgetall(name)
                    if not fields:
                        await self.redis.zrem(self.key("open"), key.encode())
                        return []
                    taken = [await pipe.hgetall(k) for k in counter_keys]
                    agg = WindowAggregate(self.resolution, {_text(f) or "": _number(n) for f, n in fields.items()})
                    counts: dict[str, int] = {}
                    for got in taken:
                        for f, n in got.items():
                            counts[_text(f) or ""] = counts.get(_text(f) or "", 0) + int(n)
                    outputs: list[Output] = build(agg, counts)
                    pipe.multi()
                    pipe.delete(name)
                    pipe.zrem(self.key("open"), key.encode())
                    for k, got in zip(counter_keys, taken):
                        for f, n in got.items():
                            if int(n):
                                pipe.hincrby(k, f, -int(n))
                    self._push(pipe, outputs)
                    await pipe.execute()
                    return outputs
                except WatchError:
                    continue
        raise TruthstreamError(f"could not close window {key} after {MAX_RETRIES} attempts")

    # -- outbox --------------------------------------------------------------------------------
    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self._push(pipe, outputs)
            await pipe.execute()

    async def pending_outbox(self) -> list[Output]:
        """Queued outputs not yet confirmed (the first page)."""
        rows = await self.redis.lrange(self.key("outbox"), 0, OUTBOX_PAGE - 1)
        return [Output(d["topic"], d["key"], d["value"]) for d in map(json.loads, rows)]

    async def confirm_outbox(self, count: int) -> None:
        """Drop the first `count` entries: Kafka has them."""
        if count:
            await self.redis.ltrim(self.key("outbox"), count, -1)
