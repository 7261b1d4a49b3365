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
from collections.abc import Iterable, Mapping
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
SAMPLE_SEP = "\x1f"


# The batch scripts take their keys and values packed in one JSON argument: redis-py spends
# about a microsecond per argument, Redis's cjson far less. They name keys they do not declare
# in KEYS, which a single Redis (all truthstream supports, for its MULTI transactions) allows.

# ARGV[1]: TTL in seconds; ARGV[2]: JSON [[key, value], ...] to SET.
SET_MANY = """
local items = cjson.decode(ARGV[2])
for _, kv in ipairs(items) do redis.call('SET', kv[1], kv[2], 'EX', ARGV[1]) end
return #items
"""
# ARGV[1]: JSON [[hash, [[field, increment], ...]], ...]; increments are strings, and one
# with a point or exponent is a float.
HINCR_MANY = """
local hashes = cjson.decode(ARGV[1])
for _, h in ipairs(hashes) do
  for _, fv in ipairs(h[2]) do
    if string.find(fv[2], '[.eEn]') then
      redis.call('HINCRBYFLOAT', h[1], fv[1], fv[2])
    else
      redis.call('HINCRBY', h[1], fv[1], fv[2])
    end
  end
end
return #hashes
"""
# HGETALL of every key, in one round trip (reads under WATCH cannot be pipelined).
HGETALL_MANY = """
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HGETALL', KEYS[k]) end
return out
"""
# KEYS[1]: hash of sample counts; ARGV[1]: list length kept; ARGV[2]: JSON
# [[list, field, [sample, ...]], ...]. Appends, trims, counts; returns each list's total.
ROLLING_PUSH = """
local lists, totals = cjson.decode(ARGV[2]), {}
for i, l in ipairs(lists) do
  for j = 1, #l[3], 1000 do  -- unpack() is bounded by Lua's stack: push a thousand at a time
    redis.call('RPUSH', l[1], unpack(l[3], j, math.min(j + 999, #l[3])))
  end
  redis.call('LTRIM', l[1], -tonumber(ARGV[1]), -1)
  totals[i] = redis.call('HINCRBY', KEYS[1], l[2], #l[3])
end
return totals
"""


def encode_sample(sample: Joined) -> str:
    """A rolling-window sample as a short string (model and version are in the list's key)."""
    score = "" if sample.score is None else repr(sample.score)
    return f"{sample.time!r}{SAMPLE_SEP}{sample.y_true}{SAMPLE_SEP}{sample.y_pred}{SAMPLE_SEP}{score}"


def decode_sample(mk: str, row: bytes) -> Joined:
    """Inverse of `encode_sample`."""
    t, y_true, y_pred, score = row.decode().split(SAMPLE_SEP)
    return Joined(*split_model_key(mk), float(t), y_true, y_pred, float(score) if score else None)


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

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        label_ttl: float,
        rolling_size: int = 0,
        rolling_every: int = 1,
        resolution: float = 1e-4,
    ) -> None:
        self.redis, self.prefix = client, prefix
        self.safety_ttl = int(label_ttl * SAFETY_TTL_FACTOR) + 86400
        self.rolling_size, self.rolling_every, self.resolution = rolling_size, rolling_every, resolution
        self._set_many = client.register_script(SET_MANY)
        self._hincr_many = client.register_script(HINCR_MANY)
        self._rolling_push = client.register_script(ROLLING_PUSH)

    # -- keys ----------------------------------------------------------------------------------
    def key(self, *parts: object) -> str:
        """A key under this store's prefix."""
        return ":".join([self.prefix, *map(str, parts)])

    # -- batches -------------------------------------------------------------------------------
    async def transact(
        self, ids: set[str], inputs: set[tuple[str, int]], step: Any
    ) -> tuple[StepResult, list[RollingDue]]:
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
                    entries = {i: JoinEntry.decode(v) if v is not None else None for i, v in zip(id_list, raw)}
                    cks = {inp: int(v) for inp, v in zip(input_list, raw[len(id_list) :]) if v is not None}
                    floor = raw[-1]
                    view = StateView(
                        entries,
                        cks,
                        {_text(k) or "": float(t) for k, t in watermarks.items()},
                        float(floor) if floor is not None else -math.inf,
                    )
                    result: StepResult = step(view)
                    if result.missing:  # messages keyed otherwise than by event id: load those too
                        id_list = sorted(set(id_list) | result.missing)
                        continue
                    pipe.multi()
                    rolling_at = await self._write(pipe, result)
                    replies = await pipe.execute()
                except WatchError:
                    continue
            return result, await self._rolling_due(result, replies, rolling_at)
        raise TruthstreamError(
            f"Redis transaction kept conflicting {MAX_RETRIES} times; is another worker consuming the same partitions?"
        )

    async def _write(self, pipe: Any, result: StepResult) -> int | None:
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
            await self._set_many(args=[self.safety_ttl, json.dumps(written)], client=pipe)
        for partition, members in index.items():
            pipe.zadd(self.key("x", partition), members)
        hashes = [(self.key("w", w.encode()), agg.fields()) for w, agg in result.windows.items()]
        hashes += [(self.key("c", model), counts) for model, counts in result.counters.items()]
        if hashes:
            await self._add_counts(hashes, pipe)
        if result.windows:
            pipe.zadd(self.key("open"), {w.encode(): w.end for w in result.windows})
        if result.watermarks:
            pipe.hset(self.key("wm"), mapping={k: repr(t) for k, t in result.watermarks.items()})
        for (topic, partition), offset in result.checkpoints.items():
            pipe.set(self.key("ck", topic, partition), offset)
        self._push(pipe, result.outputs)
        if not result.rolling:
            return None
        lists = [[self.key("r", mk), mk, [encode_sample(s) for s in samples]] for mk, samples in result.rolling.items()]
        at = len(pipe.command_stack)
        await self._rolling_push(keys=[self.key("rn")], args=[self.rolling_size, json.dumps(lists)], client=pipe)
        return at

    async def _add_counts(self, hashes: list[tuple[str, Mapping[str, float]]], pipe: Any) -> None:
        """Queue HINCRBY(FLOAT)s of many hashes as one script call (the await only queues it)."""
        packed = [
            [key, [[f, repr(n) if isinstance(n, float) else str(n)] for f, n in counts.items()]]
            for key, counts in hashes
        ]
        await self._hincr_many(args=[json.dumps(packed)], client=pipe)

    def _push(self, pipe: Any, outputs: Iterable[Output]) -> None:
        values = [json.dumps({"topic": o.topic, "key": o.key, "value": o.value}) for o in outputs]
        if values:
            pipe.rpush(self.key("outbox"), *values)

    async def _rolling_due(self, result: StepResult, replies: list[Any], rolling_at: int | None) -> list[RollingDue]:
        due = []
        if rolling_at is None:
            return due
        for mk, total in zip(result.rolling, replies[rolling_at]):
            total = int(total)
            before = total - len(result.rolling[mk])
            if total // self.rolling_every > before // self.rolling_every:
                rows = await self.redis.lrange(self.key("r", mk), 0, -1)
                samples = [decode_sample(mk, row) for row in rows]
                due.append(RollingDue(mk, total, samples))
        return due

    # -- expiry and clock ----------------------------------------------------------------------
    async def clock(self) -> tuple[dict[str, float], float]:
        """Partition watermarks and the idle floor."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.key("wm"))
            pipe.get(self.key("floor"))
            watermarks, floor = await pipe.execute()
        return (
            {_text(k) or "": float(t) for k, t in watermarks.items()},
            float(floor) if floor is not None else -math.inf,
        )

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
            1,
            self.key("floor"),
            repr(when),
        )

    # -- windows -------------------------------------------------------------------------------
    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open windows ending at or before `until`, oldest first."""
        found = await self.redis.zrangebyscore(self.key("open"), "-inf", until)
        return sorted((WindowKey.decode(_text(k) or "") for k in found), key=lambda k: (k.end, k.model, k.version))

    async def close_windows(self, keys: list[WindowKey], build: Any) -> int:
        """Take the windows and their models' counters, queue their outputs, delete them: one
        transaction for all (WATCH, one read script, MULTI/EXEC), however many windows close."""
        names = [self.key("w", k.encode()) for k in keys]
        models = sorted({k.model for k in keys} | {UNATTRIBUTED})
        counter_keys = [self.key("c", m) for m in models]
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*names)
                    replies = await pipe.eval(HGETALL_MANY, len(names) + len(counter_keys), *names, *counter_keys)
                    hashes = [{_text(f) or "": _number(n) for f, n in zip(flat[::2], flat[1::2])} for flat in replies]
                    windows, counters = hashes[: len(names)], dict(zip(models, hashes[len(names) :]))
                    outputs: list[Output] = []
                    closed = 0
                    for key, fields in zip(keys, windows):
                        if not fields:  # another worker closed it first
                            continue
                        counts: dict[str, int] = {}
                        for got in (counters.pop(key.model, {}), counters.pop(UNATTRIBUTED, {})):
                            for f, n in got.items():
                                counts[f] = counts.get(f, 0) + int(n)
                        outputs += build(key, WindowAggregate(self.resolution, fields), counts)
                        closed += 1
                    pipe.multi()
                    pipe.delete(*names)
                    pipe.zrem(self.key("open"), *(k.encode() for k in keys))
                    taken = [
                        (self.key("c", m), {f: -int(n) for f, n in c.items() if int(n)})
                        for m, c in zip(models, hashes[len(names) :])
                        if m not in counters
                    ]
                    taken = [(k, c) for k, c in taken if c]
                    if taken:
                        await self._add_counts(taken, pipe)
                    self._push(pipe, outputs)
                    await pipe.execute()
                    return closed
                except WatchError:
                    continue
        raise TruthstreamError(f"could not close {len(keys)} windows after {MAX_RETRIES} attempts")

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
