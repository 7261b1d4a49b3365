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

A batch is two round trips: one script reads what it needs (join entries, the
offsets of its input partitions, the floor, the watermarks); the core step runs;
a second script checks that the offsets and the floor are still what was read and
writes every change plus the new offsets, atomically (a Lua script runs alone).
A batch replayed after a crash finds its offsets applied and changes nothing; a
zombie worker that lost its partitions finds them moved and writes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from stream.core.aggregate import WindowAggregate
from stream.core.state import (
    UNATTRIBUTED,
    Output,
    RollingDue,
    StateView,
    StepResult,
    decode_entry,
    encode_entry,
    encode_sample,
    merge_counts,
)
from stream.core.windows import WindowKey
from stream.errors import StateError

# Redis forgets an entry this long after its last write even if event time stalls, so a
# stopped stream cannot grow Redis without bound. Event-time expiry normally comes first.
SAFETY_TTL_FACTOR = 2
OUTBOX_PAGE = 1000  # outbox entries published per round
EXPIRY_PAGE = 10000  # expired entries handled per partition per batch
MAX_RETRIES = 50  # optimistic-transaction retries before giving up on a batch


# The batch scripts take their keys and values packed in one JSON argument: redis-py spends
# about a microsecond per argument, Redis's cjson far less. They name keys they do not declare
# in KEYS, which a single Redis (all truthstream supports) allows. They are sent with EVAL:
# a registered Script makes every transaction ask SCRIPT EXISTS first, a round trip per batch.

# Lua adding a list [[hash, [field, increment, ...]], ...] (the expression put in for %s) to the
# hashes; an increment with a point or exponent (a regression sum) is a float.
HINCR = """
for _, h in ipairs(%s) do
  local f = h[2]
  for i = 1, #f, 2 do
    if string.find(f[i + 1], '[.eEn]') then
      redis.call('HINCRBYFLOAT', h[1], f[i], f[i + 1])
    else
      redis.call('HINCRBY', h[1], f[i], f[i + 1])
    end
  end
end
"""
# ARGV[1]: JSON [key, ...]. Returns the MGET of the keys (in pages: unpack() is bounded by
# Lua's stack) and the HGETALL of ARGV[2].
READ = """
local keys, values = cjson.decode(ARGV[1]), {}
for j = 1, #keys, 1000 do
  local page = redis.call('MGET', unpack(keys, j, math.min(j + 999, #keys)))
  for _, v in ipairs(page) do values[#values + 1] = v end
end
return {values, redis.call('HGETALL', ARGV[2])}
"""
# ARGV[1]: JSON of a batch's writes (see RedisStore._write). First a compare-and-set guard:
# when an input partition's offset or the floor is not what the batch read, another worker
# moved them, and the script writes nothing and returns 0. Otherwise it applies everything
# and returns the rolling windows that came due: {{field, total, {sample, ...}}, ...}.
APPLY = (
    """
local a = cjson.decode(ARGV[1])
for i = 1, #a.expect, 2 do
  if (redis.call('GET', a.expect[i]) or '') ~= a.expect[i + 1] then return 0 end
end
for _, z in ipairs(a.zrem) do for _, m in ipairs(z[2]) do redis.call('ZREM', z[1], m) end end
for _, k in ipairs(a.del) do redis.call('DEL', k) end
for i = 1, #a.set, 2 do redis.call('SET', a.set[i], a.set[i + 1], 'EX', a.ttl) end
for _, z in ipairs(a.zadd) do
  local m = z[2]
  for i = 1, #m, 2 do redis.call('ZADD', z[1], m[i], m[i + 1]) end
end
"""
    + HINCR % "a.hincr"
    + """
for i = 1, #a.hset, 3 do redis.call('HSET', a.hset[i], a.hset[i + 1], a.hset[i + 2]) end
for i = 1, #a.put, 2 do redis.call('SET', a.put[i], a.put[i + 1]) end
for _, l in ipairs(a.rpush) do
  for j = 1, #l[2], 1000 do redis.call('RPUSH', l[1], unpack(l[2], j, math.min(j + 999, #l[2]))) end
end
local due = {}
for _, l in ipairs(a.rolling) do  -- {list, field in the counts hash, {sample, ...}}
  for j = 1, #l[3], 1000 do redis.call('RPUSH', l[1], unpack(l[3], j, math.min(j + 999, #l[3]))) end
  redis.call('LTRIM', l[1], -a.rolling_size, -1)
  local total = redis.call('HINCRBY', a.rolling_counts, l[2], #l[3])
  if math.floor(total / a.rolling_every) > math.floor((total - #l[3]) / a.rolling_every) then
    due[#due + 1] = {l[2], total, redis.call('LRANGE', l[1], 0, -1)}
  end
end
return {1, due}
"""
)
# ARGV[1]: JSON [[hash, [field, increment, ...]], ...].
HINCR_MANY = HINCR % "cjson.decode(ARGV[1])" + "return 1"
# KEYS[1]: the outbox; ARGV[1]: JSON [row, ...] published. Trims them only if they still head it.
CONFIRM = """
local rows = cjson.decode(ARGV[1])
local head = redis.call('LRANGE', KEYS[1], 0, #rows - 1)
for i = 1, #rows do if head[i] ~= rows[i] then return 0 end end
redis.call('LTRIM', KEYS[1], #rows, -1)
return #rows
"""
# HGETALL of every key, in one round trip (reads under WATCH cannot be pipelined).
HGETALL_MANY = """
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HGETALL', KEYS[k]) end
return out
"""


def _counter_pairs(counts: Mapping[str, float]) -> list[str]:
    """[field, increment, ...] with increments as text (a float keeps its point)."""
    return [x for f, n in counts.items() for x in (f, repr(n) if isinstance(n, float) else str(n))]


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _counter(value: bytes) -> float:
    """A counter as Redis returns it: an integer, or a float written by HINCRBYFLOAT."""
    try:
        return int(value)
    except ValueError:
        return float(value)


def _counters(flat: list[bytes]) -> dict[str, float]:
    """A hash of counters as HGETALL returns it inside a script ([field, value, ...])."""
    return {_text(f) or "": _counter(n) for f, n in zip(flat[::2], flat[1::2])}


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
        self.entry_prefix = self.key("j", "")  # join entry keys are built per event: by concatenation
        self.safety_ttl = int(label_ttl * SAFETY_TTL_FACTOR) + 86400
        self.rolling_size, self.rolling_every, self.resolution = rolling_size, rolling_every, resolution
        self._outbox_page: list[bytes] = []

    # -- keys ----------------------------------------------------------------------------------
    def key(self, *parts: object) -> str:
        """A key under this store's prefix."""
        return ":".join([self.prefix, *map(str, parts)])

    # -- batches -------------------------------------------------------------------------------
    async def transact(
        self, ids: set[str], inputs: set[tuple[str, int]], step: Any
    ) -> tuple[StepResult, list[RollingDue]]:
        """Read the view, run `step`, then write its result and the new offsets in one script that
        first checks the offsets and floor are still what was read (else: read and run again)."""
        id_list = sorted(ids)
        input_list = sorted(inputs)
        guarded = [self.key("ck", t, p) for t, p in input_list] + [self.key("floor")]
        for _ in range(MAX_RETRIES):
            keys = [self.entry_prefix + i for i in id_list] + guarded
            raw, flat = await self.redis.eval(READ, 0, json.dumps(keys), self.key("wm"))
            entries = {i: decode_entry(v) if v is not None else None for i, v in zip(id_list, raw)}
            tail = raw[len(id_list) :]
            floor = tail[-1]
            view = StateView(
                entries,
                {inp: int(v) for inp, v in zip(input_list, tail) if v is not None},
                {_text(k) or "": float(t) for k, t in zip(flat[::2], flat[1::2])},
                float(floor) if floor is not None else -math.inf,
            )
            result: StepResult = step(view)
            if result.missing:  # messages keyed otherwise than by event id: load those too
                id_list = sorted(set(id_list) | result.missing)
                continue
            expect = [x for k, v in zip(guarded, tail) for x in (k, _text(v) or "")]
            reply = await self.redis.eval(APPLY, 0, self._write(result, expect))
            if reply != 0:
                return result, [RollingDue.decode(_text(mk) or "", int(n), rows) for mk, n, rows in reply[1]]
        raise StateError(
            f"Redis transaction kept conflicting {MAX_RETRIES} times; is another worker consuming the same partitions?"
        )

    def _write(self, result: StepResult, expect: list[str]) -> str:
        """The APPLY script's argument: every change of a batch, a handful of lists in one JSON text
        (redis-py spends more time packing commands than Redis spends running them)."""
        index: dict[int, list[Any]] = {}
        deleted, written = [], []
        for event_id, entry in result.entries.items():
            if entry is None:
                deleted.append(self.entry_prefix + event_id)
                continue
            written += (self.entry_prefix + event_id, encode_entry(entry))
            if math.isfinite(entry.expires):
                index.setdefault(entry.partition, []).extend((repr(entry.expires), event_id))
        hashes = [(self.key("w", w.encode()), agg.fields()) for w, agg in result.windows.items()]
        hashes += [(self.key("c", model), counts) for model, counts in result.counters.items()]
        wm = self.key("wm")
        writes = {
            "expect": expect,
            "ttl": str(self.safety_ttl),
            "zrem": [[self.key("x", p), sorted(ids)] for p, ids in result.unindex.items()],
            "del": deleted,
            "set": written,
            "zadd": [[self.key("x", p), members] for p, members in index.items()]
            + [[self.key("open"), [x for w in result.windows for x in (repr(w.end), w.encode())]]],
            "hincr": [[key, _counter_pairs(counts)] for key, counts in hashes],
            "hset": [x for k, t in result.watermarks.items() for x in (wm, k, repr(t))],
            "put": [x for (t, p), offset in result.checkpoints.items() for x in (self.key("ck", t, p), str(offset))],
            "rpush": [[self.key("outbox"), self._outbox_rows(result.outputs)]],
            "rolling": [
                [self.key("r", mk), mk, [encode_sample(s) for s in samples]] for mk, samples in result.rolling.items()
            ],
            "rolling_size": self.rolling_size,
            "rolling_every": self.rolling_every,
            "rolling_counts": self.key("rn"),
        }
        return json.dumps(writes)

    async def _add_counts(self, hashes: list[tuple[str, Mapping[str, float]]], pipe: Any) -> None:
        """Queue HINCRBY(FLOAT)s of many hashes as one script call (the await only queues it)."""
        packed = [[key, _counter_pairs(counts)] for key, counts in hashes]
        await pipe.eval(HINCR_MANY, 0, json.dumps(packed))

    @staticmethod
    def _outbox_rows(outputs: Iterable[Output]) -> list[str]:
        return [json.dumps({"kind": o.kind, "key": o.key, "value": o.value}) for o in outputs]

    def _push(self, pipe: Any, outputs: Iterable[Output]) -> None:
        values = self._outbox_rows(outputs)
        if values:
            pipe.rpush(self.key("outbox"), *values)

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

    async def oldest_beyond(self, partitions: set[int], limit: int) -> dict[int, list[str]]:
        """The indexed entries of each partition past the `limit` that expire last (a page per call)."""
        ordered = sorted(partitions)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in ordered:
                pipe.zcard(self.key("x", p))
            sizes = await pipe.execute()
        over = {p: min(n - limit, EXPIRY_PAGE) for p, n in zip(ordered, sizes) if n > limit}
        if not over:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for p, n in over.items():
                pipe.zrange(self.key("x", p), 0, n - 1)
            return {p: [_text(i) or "" for i in found] for p, found in zip(over, await pipe.execute())}

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
                    hashes = [_counters(flat) for flat in replies]
                    windows, counters = hashes[: len(names)], dict(zip(models, hashes[len(names) :]))
                    outputs: list[Output] = []
                    closed = 0
                    for key, fields in zip(keys, windows):
                        if not fields:  # another worker closed it first
                            continue
                        counts = merge_counts(counters.pop(key.model, {}), counters.pop(UNATTRIBUTED, {}))
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
        raise StateError(f"could not close {len(keys)} windows after {MAX_RETRIES} attempts")

    async def close_counts(self, models: set[str], build: Any) -> int:
        """Take the counters of the models no open window will carry and queue their outputs: one
        transaction (WATCH the open windows and the counters, read, MULTI/EXEC)."""
        ordered = sorted(models)
        keys = [self.key("c", m) for m in ordered]
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(self.key("open"), *keys)
                    open_windows = [
                        WindowKey.decode(_text(k) or "") for k in await pipe.zrange(self.key("open"), 0, -1)
                    ]
                    carried = {k.model for k in open_windows}
                    replies = await pipe.eval(HGETALL_MANY, len(keys), *keys)
                    outputs: list[Output] = []
                    taken: list[tuple[str, Mapping[str, float]]] = []
                    for model, key, flat in zip(ordered, keys, replies):
                        if (model == UNATTRIBUTED and open_windows) or (model != UNATTRIBUTED and model in carried):
                            continue
                        counts = merge_counts(_counters(flat))
                        if any(counts.values()):
                            outputs += build(model, counts)
                            taken.append((key, {f: -n for f, n in counts.items() if n}))
                    if not taken:
                        return 0
                    pipe.multi()
                    await self._add_counts(taken, pipe)
                    self._push(pipe, outputs)
                    await pipe.execute()
                    return len(taken)
                except WatchError:
                    continue
        raise StateError(f"could not take the counts of {len(models)} models after {MAX_RETRIES} attempts")

    # -- outbox --------------------------------------------------------------------------------
    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs."""
        async with self.redis.pipeline(transaction=True) as pipe:
            self._push(pipe, outputs)
            await pipe.execute()

    async def pending_outbox(self) -> list[Output]:
        """Queued outputs not yet confirmed (the first page)."""
        self._outbox_page = await self.redis.lrange(self.key("outbox"), 0, OUTBOX_PAGE - 1)
        # Rows queued by truthstream 0.1 name their topic instead of their kind: the worker
        # publishes an unknown kind to the topic of that name.
        return [Output(d.get("kind") or d["topic"], d["key"], d["value"]) for d in map(json.loads, self._outbox_page)]

    async def confirm_outbox(self, count: int) -> None:
        """Drop the first `count` entries of the page last read: Kafka has them. Workers share the
        outbox, so they are dropped only if they still head it; if another worker published and
        dropped them meanwhile, nothing is dropped (its copies were byte-identical)."""
        if count:
            page = [row.decode() if isinstance(row, bytes) else row for row in self._outbox_page[:count]]
            await self.redis.eval(CONFIRM, 1, self.key("outbox"), json.dumps(page))
