"""State held in Redis: the worker's store. Every batch of an input partition is one optimistic
transaction on keys of that partition alone, so the store runs on one Redis or on a Redis Cluster.

Key layout (key layout 2; `B` is a partition's base `<prefix>:{<prefix>:<partition>}`, whose hash
tag puts all of the partition's keys in one cluster slot):
  B:meta            hash: linear-hashing level L and split s, entry count n, version v, layout "2"
  B:e:<bucket>      hash: 12-byte id digest -> packed join entry (see `_encode`), ~40 per bucket
  B:L:<digest>      a pending label too long to keep in its bucket (the bucket holds 'P')
  B:m               hash: model reference -> model and version (entries name models by number)
  B:x:<slot end>    list of digests expiring in that slot; B:xs the slots (sorted set by end)
  B:xw, B:xv        digests taken from the index for the running expiry sweep or eviction
  B:ck              hash: input topic -> last offset applied (the exactly-once guard)
  B:wm              hash: i / l -> latest inference / label time seen, f -> the idle floor
  B:w:<window>      hash: the partition's part of a tumbling window (a WindowAggregate)
  B:open            sorted set: window -> end, of the parts above
  B:s:<window>      a sealed part (closing); B:sealed their set; B:closed windows closed lately
  B:c:<model>       hash: late/expired/duplicates/rejected counts since the last report; B:cv
  B:o               list: records to publish, removed once Kafka acknowledged them
  <prefix>:r:<model version>, <prefix>:rn   rolling windows (one Redis only)

A batch of a partition is two round trips: one script reads what it needs (join entries, applied
offsets, watermarks, the partition's version); the core step runs; a second script checks that
the version and the floor are still what was read and writes every change, atomically. A batch
replayed after a crash finds its offsets applied and changes nothing; a zombie worker that lost
its partitions finds their version moved and writes nothing. A window closes in three steps, each
safe to repeat: every partition seals its part (with its counters), the sealed parts are merged
and the window's records queued in one partition's outbox by a script that marks it closed there
(so only once), and the sealed parts are dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stream.core.aggregate import WindowAggregate
from stream.core.records import SEP
from stream.core.state import (
    JOINED,
    PENDING_INFERENCE,
    PENDING_LABEL,
    JoinEntry,
    Job,
    Output,
    RollingDue,
    StateView,
    StepResult,
    decode_entry,
    encode_entry,
    encode_sample,
    expiry_slot_end,
    merge_counts,
)
from stream.core.windows import WindowKey, model_key, split_model_key
from stream.errors import StateError
from stream.stores import redis_scripts as lua

LAYOUT = "2"
OLD_LAYOUT_KEYS = ("open", "outbox", "wm", "floor")  # keys only truthstream's first key layout wrote
# Redis forgets a bucket, index list or long label this long after its last write even if event
# time stalls, so an abandoned prefix cannot hold memory for ever. Event-time expiry comes first.
SAFETY_TTL_FACTOR = 2
OUTBOX_PAGE = 1000  # outbox entries published per round and partition
EXPIRY_PAGE = 10000  # expired entries handled per partition per batch
MAX_RETRIES = 50  # optimistic-transaction retries before giving up on a batch
INLINE_BYTES = 60  # longer entries (pending labels) get a key of their own: buckets stay listpacks
MODEL_INLINE = 0xFFFF  # the reference that says the model is written out: the partition's table is full
_KEY_LENGTH = struct.Struct("<H")
_SCORED = struct.Struct("<ddH")  # a pending inference: time, score, model reference
_PLAIN = struct.Struct("<dH")  # one without a score: time, model reference; a join tombstone: expiry, reference
_LENGTH = struct.Struct(">I")


def digest(event_id: str) -> bytes:
    """The 12 bytes an event id is stored under (a sweep's handle carries them in hex)."""
    if event_id.startswith(SEP):
        return bytes.fromhex(event_id[2:])
    return hashlib.blake2b(event_id.encode(), digest_size=lua.DIGEST).digest()


def _handle(work: str, d: bytes) -> str:
    """A sweep's name for an entry it found by digest (event ids cannot contain SEP)."""
    return f"{SEP}{work[1]}{d.hex()}"


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


@dataclass(slots=True)
class _Glance:
    """What a batch's write round trip saw besides the clock, enough to skip reads that would find
    nothing: the earliest end of a window part open in any partition, whether any holds sealed
    parts, and per written partition the end of its earliest expiry slot and whether a sweep's work
    list is left. Valid until the next script runs (any `_each` call forgets it)."""

    first_end: float
    sealed: bool
    expiry: dict[int, tuple[float, bool]]
    first_provisional: float  # the earliest end of a window waiting for its provisional record, in any partition


def _sweep_due(expiry: tuple[float, bool], horizon: float) -> bool:
    first_end, work_left = expiry
    return work_left or first_end <= horizon


class _Txn:
    """A job's transaction while it runs: what to read, and what its step made of the view."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.ids = sorted(job.ids)
        self.topics = sorted({t for t, p in job.inputs if p == job.partition})
        self.sweep = next(("x" + i[1] for i in self.ids if i.startswith(SEP)), "")  # its work list, if a sweep
        self.digests: dict[str, bytes] = {}
        self.known = 0  # model references known when it read
        self.result = StepResult()
        self.write: tuple[Any, ...] = ()
        self.new_models: list[str] = []
        self.done: tuple[StepResult, list[RollingDue]] | None = None


class RedisStore:
    """A StateStore over redis-py's asyncio client, or its cluster client."""

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
        self.redis, self.prefix, self.label_ttl, self.partitions = client, prefix, label_ttl, partitions
        self.segment_cap = segment_cap
        self.safety_ttl = int(label_ttl * SAFETY_TTL_FACTOR) + 86400
        self.rolling_size, self.rolling_every, self.resolution = rolling_size, rolling_every, resolution
        self._models: dict[int, list[str]] = {}  # per partition, model reference -> model key
        self._model_refs: dict[int, dict[str, int]] = {}
        self._outbox_pages: list[tuple[int, list[bytes]]] = []
        self._clock: tuple[dict[str, float], float] | None = None  # read with a batch's writes
        self._glance: _Glance | None = None  # likewise, until the next script runs

    # -- keys ----------------------------------------------------------------------------------
    def key(self, *parts: object) -> str:
        """A key under this store's prefix, outside every partition."""
        return ":".join([self.prefix, *map(str, parts)])

    def base(self, partition: int) -> str:
        """The start of every key of a partition: the hash tag keeps them in one cluster slot."""
        return f"{self.prefix}:{{{self.prefix}:{partition}}}"

    def _eval(self, runner: Any, script: str, partition: int, *args: Any) -> Any:
        """Run a partition's script (on a client or a pipeline): KEYS[1] its meta hash, ARGV[1] its base."""
        base = self.base(partition)
        return runner.eval(script, 1, f"{base}:meta", base, *args)

    async def _each(self, calls: list[tuple[str, int, tuple[Any, ...]]], clock: bool = False) -> list[Any]:
        """Run scripts of several partitions in one pipeline (each still atomic on its own); with
        `clock`, read the clock after them in the same round trip, for the next `clock()` call, and
        glance at what `expiry_candidates` and `open_windows` would find (see `_Glance`)."""
        self._clock = self._glance = None
        if not calls:
            return []
        written = sorted({partition for _, partition, _ in calls})
        async with self.redis.pipeline(transaction=False) as pipe:
            for script, partition, args in calls:
                self._eval(pipe, script, partition, *args)
            if clock:
                self._read_clock(pipe)
                self._read_glance(pipe, written)
            replies = await pipe.execute()
        if clock:
            self._clock = self._clock_of(replies[len(calls) : len(calls) + self.partitions])
            self._glance = self._glance_of(replies[len(calls) + self.partitions :], written)
        return replies[: len(calls)]

    def _read_glance(self, pipe: Any, written: list[int]) -> None:
        for p in range(self.partitions):
            pipe.zrange(f"{self.base(p)}:open", 0, 0, withscores=True)
            pipe.exists(f"{self.base(p)}:sealed")
            pipe.zrange(f"{self.base(p)}:pv", 0, 0, withscores=True)
        for p in written:
            pipe.zrange(f"{self.base(p)}:xs", 0, 0, withscores=True)
            pipe.exists(f"{self.base(p)}:xw")

    def _glance_of(self, replies: list[Any], written: list[int]) -> "_Glance":
        windows, expiry = replies[: 3 * self.partitions], replies[3 * self.partitions :]
        ends = [first[0][1] for first in windows[::3] if first]
        estimates = [first[0][1] for first in windows[2::3] if first]
        return _Glance(
            min(ends, default=math.inf),
            any(windows[1::3]),
            {
                p: (first[0][1] if first else math.inf, bool(work))
                for p, first, work in zip(written, expiry[::2], expiry[1::2])
            },
            min(estimates, default=math.inf),
        )

    async def check_layout(self) -> None:
        """Refuse a Redis holding truthstream's first key layout under this prefix (its state would be
        ignored: counted nowhere). Reads only: a full Redis must not stop the worker from starting."""
        for name in OLD_LAYOUT_KEYS:
            if await self.redis.exists(self.key(name)):
                raise StateError(
                    f"Redis holds state of truthstream's first key layout under prefix {self.prefix!r} "
                    f"(key {self.key(name)!r}): run the previous version until its windows closed and its "
                    "outbox is empty, then delete its keys (or choose another TRUTHSTREAM_REDIS_PREFIX); "
                    "see 'Upgrading' in the README"
                )

    # -- entries -------------------------------------------------------------------------------
    def _encode(self, partition: int, entry: JoinEntry, new_models: dict[str, int]) -> bytes:
        """An entry's bytes: a pending inference in 19 bytes and its class, a tombstone in 11 (its
        expiry is its time plus the label TTL, not stored); a pending label as text. A model the
        partition's full reference table cannot number is written out after the reference."""
        if entry.kind == PENDING_INFERENCE:
            if entry.expires != entry.time + self.label_ttl:
                raise StateError(f"a pending inference expires at {entry.expires!r}, not its time plus the label TTL")
            model = self._model(partition, model_key(entry.model, entry.version), new_models)
            tail = (f"{entry.prediction}{SEP}{entry.segments}" if entry.segments else entry.prediction).encode()
            if entry.score is None:
                return b"i" + _PLAIN.pack(entry.time, model[0]) + model[1] + tail
            return b"I" + _SCORED.pack(entry.time, entry.score, model[0]) + model[1] + tail
        if entry.kind == JOINED:
            model = self._model(partition, model_key(entry.model, ""), new_models)
            return b"J" + _PLAIN.pack(entry.expires, model[0]) + model[1]
        return b"L" + encode_entry(entry).encode()

    def _decode(self, partition: int, value: bytes) -> JoinEntry:
        """Inverse of `_encode`."""
        kind = value[:1]
        if kind == b"I":
            time, score, ref = _SCORED.unpack_from(value, 1)
            key, rest = self._model_at(partition, ref, value, 1 + _SCORED.size)
        elif kind in (b"i", b"J"):
            (time, ref), score = _PLAIN.unpack_from(value, 1), None
            key, rest = self._model_at(partition, ref, value, 1 + _PLAIN.size)
        else:
            entry = decode_entry(value[1:])
            entry.partition = partition
            return entry
        model, version = split_model_key(key)
        if kind == b"J":
            return JoinEntry(JOINED, time, partition, model)  # a tombstone's double is its expiry
        prediction, _, segments = rest.decode().partition(SEP)  # the segments, if any, follow the class
        return JoinEntry(
            PENDING_INFERENCE,
            time + self.label_ttl,
            partition,
            model,
            version,
            time,
            prediction,
            score,
            segments=segments,
        )

    def _model(self, partition: int, key: str, new_models: dict[str, int]) -> tuple[int, bytes]:
        """A model's reference in a partition and what follows it: nothing, or, once the table is
        full (MODEL_INLINE references), the model written out. One the table lacks is numbered in
        `new_models`, written with the batch."""
        ref = self._model_refs[partition].get(key, new_models.get(key))
        if ref is None:
            ref = len(self._models[partition]) + len(new_models)
            if ref >= MODEL_INLINE:
                text = key.encode()
                return MODEL_INLINE, _KEY_LENGTH.pack(len(text)) + text
            new_models[key] = ref
        return ref, b""

    def _model_at(self, partition: int, ref: int, value: bytes, at: int) -> tuple[str, bytes]:
        """The model key of reference `ref` (read at `at` when written out) and the bytes after it."""
        if ref != MODEL_INLINE:
            return self._models[partition][ref], value[at:]
        (length,) = _KEY_LENGTH.unpack_from(value, at)
        start = at + _KEY_LENGTH.size
        return value[start : start + length].decode(), value[start + length :]

    def _learn_models(self, partition: int, known: int, count: int, found: list[bytes]) -> bool:
        """Add the model references a read returned; False when Redis holds fewer than this process
        knows (its state was reset), after forgetting them: read again."""
        models = self._models.setdefault(partition, [])
        refs = self._model_refs.setdefault(partition, {})
        if count < known:
            models.clear()
            refs.clear()
            return False
        for ref, key in enumerate(found, start=known):
            models.append(_text(key) or "")
            refs[models[-1]] = ref
        return True

    # -- batches -------------------------------------------------------------------------------
    async def transact(self, jobs: list[Job]) -> list[tuple[StepResult, list[RollingDue]]]:
        """Run the jobs (one per partition) as optimistic transactions, all in one pipeline: read
        each partition's view, run its step, then write its result and new offsets in one script that
        first checks the partition's version and floor are still what was read (else: read again)."""
        txns = [_Txn(job) for job in jobs]
        pending = list(txns)
        for _ in range(MAX_RETRIES):
            calls = []
            for txn in pending:
                txn.known = len(self._models.get(txn.job.partition, ()))
                for i in txn.ids:
                    if i not in txn.digests:
                        txn.digests[i] = digest(i)
                digests = b"".join(txn.digests[i] for i in txn.ids)
                calls.append((lua.READ, txn.job.partition, (digests, txn.known, *txn.topics)))
            writes = []
            for txn, reply in zip(pending, await self._each(calls)):
                if self._view(txn, reply):
                    writes.append(txn)
            replies = await self._each(
                [(lua.APPLY, t.job.partition, t.write) for t in writes], clock=any(t.topics for t in writes)
            )
            for txn, reply in zip(writes, replies):
                if reply == 2:  # another worker did this sweep
                    txn.done = (StepResult(), [])
                elif reply != 0:
                    self._learn_models(txn.job.partition, txn.known, txn.known, txn.new_models)
                    txn.done = (txn.result, [RollingDue.of(_text(mk) or "", int(n), []) for mk, n in reply[1]])
            pending = [t for t in pending if t.done is None]
            if not pending:
                return [t.done for t in txns if t.done is not None]
        raise StateError(
            f"Redis transactions of partitions {sorted(t.job.partition for t in pending)} kept conflicting "
            f"{MAX_RETRIES} times; is another worker consuming the same partitions?"
        )

    def _view(self, txn: "_Txn", reply: list[Any]) -> bool:
        """Run a job's step on the view READ returned and prepare its write; False when it must read
        again (ids to load that the step found missing, or model references to learn afresh)."""
        partition = txn.job.partition
        values, found, offsets, flat, version, count = reply
        if not self._learn_models(partition, txn.known, count, found):
            return False
        entries = {i: self._decode(partition, v) if v is not None else None for i, v in zip(txn.ids, values)}
        marks = {_text(k) or "": _text(v) or "" for k, v in zip(flat[::2], flat[1::2])}
        view = StateView(
            entries,
            {(t, partition): int(o) for t, o in zip(txn.topics, offsets) if o is not None},
            {f"{side}{partition}": float(marks[side]) for side in ("i", "l") if side in marks},
            float(marks["f"]) if "f" in marks else -math.inf,
        )
        result = txn.result = txn.job.step(view)
        if result.missing:  # messages keyed otherwise than by event id: load those too
            txn.ids = sorted(set(txn.ids) | result.missing)
            return False
        new_models: dict[str, int] = {}
        control, dels, sets, sides = self._write(partition, result, view, new_models, txn.digests)
        control.update(version=_text(version) or "", floor=marks.get("f", ""), sweep=txn.sweep)
        txn.write = (json.dumps(control), dels, sets, sides)
        txn.new_models = sorted(new_models, key=new_models.__getitem__)
        return True

    def _write(
        self,
        partition: int,
        result: StepResult,
        view: StateView,
        new_models: dict[str, int],
        digests: dict[str, bytes],
    ) -> tuple[dict[str, Any], bytes, bytes, bytes]:
        """The APPLY script's arguments: every change of a batch, as a JSON text and three strings of
        digests and entries (redis-py spends more time packing commands than Redis running them)."""
        dels, sets, sides = [], [], []
        index: dict[str, list[int]] = {}
        waiting = {PENDING_INFERENCE: 0, PENDING_LABEL: 0}  # change in waiting entries by side
        for event_id, entry in result.entries.items():
            d = digests[event_id]
            old = view.entries.get(event_id)
            if old is not None and old.kind in waiting:
                waiting[old.kind] -= 1
            if entry is not None and entry.kind in waiting:
                waiting[entry.kind] += 1
            if old is not None and old.kind == PENDING_LABEL:
                sides.append(d)  # its text may be in a key of its own
            if entry is None:
                dels.append(d)
                continue
            value = self._encode(partition, entry, new_models)
            sets.append(d + _LENGTH.pack(len(value)) + value)
            if entry.expires != math.inf:
                end = expiry_slot_end(entry.expires, self.label_ttl)
                # an entry replacing one of the same slot (a join tombstone its inference) is indexed already
                if old is None or old.expires == math.inf or expiry_slot_end(old.expires, self.label_ttl) != end:
                    index.setdefault(repr(end), []).append(len(sets))
        base = self.base(partition)
        hashes = [(f"{base}:w:{w.encode()}", agg.fields(segments=False)) for w, agg in result.windows.items()]
        # segments' counters go in the same hash, under a value the part admits (see `segments`)
        segments = [
            [f"{base}:w:{w.encode()}", name, value, _counter_pairs(counters.fields())]
            for w, agg in result.windows.items()
            for (name, value), counters in agg.segments.items()
        ]
        # what inferences add goes into the window's part without opening it (no `open` entry)
        hashes += [(f"{base}:w:{w.encode()}", part.fields()) for w, part in result.unopened.items()]
        hashes += [(f"{base}:c:{model}", counts) for model, counts in result.counters.items()]
        control = {
            "ttl": self.safety_ttl,
            "inline": INLINE_BYTES,
            "fill": lua.FILL,
            "layout": LAYOUT,
            "pending": [waiting[PENDING_INFERENCE], waiting[PENDING_LABEL]],
            "models": [x for key, ref in new_models.items() for x in (str(ref), key)],
            "index": [[end, positions] for end, positions in index.items()],
            "hincr": [[key, _counter_pairs(counts)] for key, counts in hashes],
            "seg": segments,
            "segcap": self.segment_cap,
            "open": [x for w in result.windows for x in (repr(w.end), w.encode())],
            "pv": [x for w in result.provisional for x in (repr(w.end), w.encode())],
            "unopened": [f"{base}:w:{w.encode()}" for w in result.unopened if w not in result.windows],
            "wm": [x for k, t in result.watermarks.items() for x in (k[0], repr(t))],
            "ck": [x for (topic, _), offset in result.checkpoints.items() for x in (topic, str(offset))],
            "outbox": self._outbox_rows(result.outputs),
            "rolling": [
                [self.key("r", mk), mk, [encode_sample(s) for s in samples]] for mk, samples in result.rolling.items()
            ],
            "rolling_size": self.rolling_size,
            "rolling_every": self.rolling_every,
            "rolling_counts": self.key("rn"),
        }
        return control, b"".join(dels), b"".join(sets), b"".join(sides)

    @staticmethod
    def _outbox_rows(outputs: Iterable[Output]) -> list[str]:
        return [json.dumps({"kind": o.kind, "key": o.key, "value": o.value}) for o in outputs]

    async def rolling_samples(self, due: list[RollingDue]) -> list[RollingDue]:
        """The samples of rolling windows `transact` found due (read once per batch, after it)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for d in due:
                pipe.lrange(self.key("r", d.model_key), 0, -1)
            return [RollingDue.decode(d.model_key, d.sequence, rows) for d, rows in zip(due, await pipe.execute())]

    # -- expiry and clock ----------------------------------------------------------------------
    async def clock(self) -> tuple[dict[str, float], float]:
        """Partition watermarks and the idle floor (the lowest partition's: raising it is not atomic).
        Read right after a batch's writes, in their round trip, if nothing else ran since."""
        if self._clock is not None:
            clock, self._clock = self._clock, None
            return clock
        async with self.redis.pipeline(transaction=False) as pipe:
            self._read_clock(pipe)
            return self._clock_of(await pipe.execute())

    def _read_clock(self, pipe: Any) -> None:
        for p in range(self.partitions):
            pipe.hgetall(f"{self.base(p)}:wm")

    def _clock_of(self, replies: list[dict[bytes, bytes]]) -> tuple[dict[str, float], float]:
        watermarks, floors = {}, []
        for p, marks in enumerate(replies):
            marks = {_text(k) or "": float(v) for k, v in marks.items()}
            watermarks.update((f"{side}{p}", marks[side]) for side in ("i", "l") if side in marks)
            floors.append(marks.get("f", -math.inf))
        return watermarks, min(floors, default=-math.inf)

    async def _work(self, partitions: set[int], work: str, mode: str, bound: str) -> dict[int, list[str]]:
        ordered = sorted(partitions)
        replies = await self._each([(lua.CANDIDATES, p, (work, mode, bound, EXPIRY_PAGE)) for p in ordered])
        return {p: [_handle(work, d) for d in found] for p, found in zip(ordered, replies) if found}

    async def expiry_candidates(self, partitions: set[int], horizon: float) -> dict[int, list[str]]:
        """Handles of these partitions' entries indexed in expiry slots ending by `horizon` (a page)."""
        glance = self._glance
        if glance is not None:  # partitions with no slot ended and no sweep left over have nothing
            partitions = {p for p in partitions if p not in glance.expiry or _sweep_due(glance.expiry[p], horizon)}
        return await self._work(partitions, "xw", "due", repr(horizon)) if partitions else {}

    async def oldest_beyond(self, partitions: set[int], limit: int) -> dict[int, list[str]]:
        """Handles of the entries of each partition past the `limit` that expire last (a page)."""
        return await self._work(partitions, "xv", "over", str(limit))

    async def raise_floor(self, when: float) -> None:
        """Advance every partition's idle floor (a Lua max keeps each monotonic under concurrent writers)."""
        self._clock = self._glance = None
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.eval(lua.RAISE_FLOOR, 1, f"{self.base(p)}:wm", repr(when))
            await pipe.execute()

    async def waiting(self) -> dict[str, int]:
        """Inferences and labels waiting for their other side, over all partitions (counted by the
        writes of this version: entries written before it are not in the count)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.hmget(f"{self.base(p)}:meta", "pi", "pl")
            counts = await pipe.execute()
        return {
            "inference": sum(int(i or 0) for i, _ in counts),
            "label": sum(int(lab or 0) for _, lab in counts),
        }

    # -- windows -------------------------------------------------------------------------------
    async def open_windows(self, until: float) -> list[WindowKey]:
        """Windows with a part ending at or before `until` in some partition, or sealed, oldest first."""
        glance = self._glance
        if glance is not None and not glance.sealed and glance.first_end > until:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrangebyscore(f"{self.base(p)}:open", "-inf", until)
                pipe.zrange(f"{self.base(p)}:sealed", 0, -1)
            found = {_text(k) or "" for names in await pipe.execute() for k in names}
        return sorted(map(WindowKey.decode, found), key=lambda k: (k.end, k.model, k.version))

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows listed for a provisional record in some partition, ending at or before `until`, oldest first."""
        glance = self._glance
        if glance is not None and glance.first_provisional > until:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.zrangebyscore(f"{self.base(p)}:pv", "-inf", until)
            found = {_text(k) or "" for names in await pipe.execute() for k in names}
        return sorted(map(WindowKey.decode, found), key=lambda k: (k.end, k.model, k.version))

    async def publish_provisional(self, keys: list[WindowKey], build: Any) -> int:
        """Read the windows' parts in every partition (the windows stay open), build each one's
        records with its model version's detectors and queue them in the model's owner partition
        unless published provisionally or closed there already (the detectors stored only if no
        other worker moved them meanwhile, else rebuilt); then take the windows off every
        partition's list."""
        if not keys:
            return 0
        keys = sorted(keys, key=lambda k: (k.end, k.start))
        names = [k.encode() for k in keys]
        parts = await self._hashes({p: [f"w:{name}" for name in names] for p in range(self.partitions)})
        merged = {}
        for i in range(len(keys)):
            agg = WindowAggregate(self.resolution)
            for p in range(self.partitions):
                agg.merge(WindowAggregate(self.resolution, _counters(parts[p][i])))
            merged[i] = agg
        by_model: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            by_model.setdefault(model_key(key.model, key.version), []).append(i)
        queued = 0
        for _ in range(MAX_RETRIES):
            detectors = await self._detectors(list(by_model))
            groups = self._claim_groups(
                keys, by_model, detectors, "#pend", lambda i, state: build(keys[i], merged[i], state)
            )
            calls = [
                (lua.PROVISIONAL, p, (json.dumps({"groups": g, "ttl": self.safety_ttl}),)) for p, g in groups.items()
            ]
            replies = await self._each(calls)
            queued += sum(int(n) for n, _ in replies)
            conflicts = {_text(m) for _, found in replies for m in found}
            by_model = {mk: indexes for mk, indexes in by_model.items() if mk in conflicts}
            if not by_model:
                break
        else:
            raise StateError(f"could not publish {len(keys)} provisional records after {MAX_RETRIES} attempts")
        await self._each([(lua.UNLIST_PROVISIONAL, p, (json.dumps(names),)) for p in range(self.partitions)])
        return queued

    async def close_windows(self, keys: list[WindowKey], build: Any) -> int:
        """Seal the windows' parts in every partition, merge them, and queue each window's records in
        its model version's owner partition's outbox (only if not closed there yet) together with its
        change detectors, read before and written only if no other worker moved them meanwhile (else
        the model's windows are sealed again and rebuilt); then drop the sealed parts."""
        names = [k.encode() for k in keys]
        merged = await self._seal(keys)
        closed = 0
        for _ in range(MAX_RETRIES):
            by_model: dict[str, list[int]] = {}
            for i in sorted(merged, key=lambda i: (keys[i].end, keys[i].start)):
                by_model.setdefault(model_key(keys[i].model, keys[i].version), []).append(i)
            if not by_model:
                break
            detectors = await self._detectors(list(by_model))
            groups = self._claim_groups(
                keys, by_model, detectors, "#end", lambda i, state, built=merged: build(keys[i], *built[i], state)
            )
            calls = [(lua.CLAIM, p, (json.dumps({"groups": g, "ttl": self.safety_ttl}),)) for p, g in groups.items()]
            replies = await self._each(calls)
            closed += sum(int(claimed) for claimed, _ in replies)
            conflicts = {_text(m) for _, found in replies for m in found}
            if not conflicts:
                break
            again = [i for mk, indexes in by_model.items() if mk in conflicts for i in indexes]
            resealed = await self._seal([keys[i] for i in again])
            merged = {again[j]: built for j, built in resealed.items()}
        else:
            raise StateError(f"could not close {len(keys)} windows after {MAX_RETRIES} attempts")
        forget = repr(max(k.end for k in keys) - 2 * self.label_ttl - 86400) if keys else "0"
        cleanup = json.dumps({"windows": names, "ends": [repr(k.end) for k in keys], "forget": forget})
        await self._each([(lua.CLEANUP, p, (cleanup,)) for p in range(self.partitions)])
        return closed

    async def _seal(self, keys: list[WindowKey]) -> dict[int, tuple[WindowAggregate, dict[str, int]]]:
        """Seal the windows in every partition; by index, each one not closed yet, its parts merged
        with its counters."""
        seal = json.dumps(
            {
                "windows": [k.encode() for k in keys],
                "models": [k.model for k in keys],
                "ends": [repr(k.end) for k in keys],
            }
        )
        sealed = await self._each([(lua.SEAL, p, (seal,)) for p in range(self.partitions)])
        out = {}
        for i in range(len(keys)):
            parts = [replies[i] for replies in sealed]
            if any(part is None for part in parts):  # closed already: only the cleanup is left
                continue
            agg, counts = WindowAggregate(self.resolution), {}
            for part in parts:
                fields = _counters(part)
                counts = merge_counts(counts, {f[1:]: n for f, n in fields.items() if f.startswith("#") and f != "#"})
                agg.merge(WindowAggregate(self.resolution, {f: n for f, n in fields.items() if not f.startswith("#")}))
            out[i] = (agg, counts)
        return out

    def _claim_groups(
        self,
        keys: list[WindowKey],
        by_model: dict[str, list[int]],
        detectors: dict[str, dict[str, str]],
        marker: str,
        build: Any,
    ) -> dict[int, list[dict[str, Any]]]:
        """Per owner partition, what a claim script takes: each model version's windows (indexes into
        `keys`, in order) built by `build(i, detectors)` on its detectors as read, which the script
        stores only if their `marker` field still holds what was read."""
        groups: dict[int, list[dict[str, Any]]] = {}
        for mk, indexes in by_model.items():
            state = {name: text for name, text in detectors[mk].items() if not name.startswith("#")}
            changed: dict[str, str] = {}
            rows = []
            for i in indexes:
                outputs, new = build(i, state)
                state.update(new)
                changed.update(new)
                rows.append(self._outbox_rows(outputs))
            groups.setdefault(self._owner(mk), []).append(
                {
                    "model": mk,
                    "expect": detectors[mk].get(marker, ""),
                    "windows": [keys[i].encode() for i in indexes],
                    "ends": [repr(keys[i].end) for i in indexes],
                    "rows": rows,
                    "detectors": [x for item in changed.items() for x in item],
                    "fed_to": repr(keys[indexes[-1]].end),
                }
            )
        return groups

    def _owner(self, model: str) -> int:
        """The partition whose outbox and change detectors serve a model version's windows."""
        return zlib.crc32(model.encode()) % self.partitions

    async def _detectors(self, models: list[str]) -> dict[str, dict[str, str]]:
        """Each model version's change detectors (and '#end', the end of the last window they were fed)."""
        owned: dict[int, list[str]] = {}
        for mk in models:
            owned.setdefault(self._owner(mk), []).append(mk)
        found = await self._hashes({p: [f"cd:{mk}" for mk in mks] for p, mks in owned.items()})
        return {
            mk: {_text(f) or "": _text(v) or "" for f, v in zip(flat[::2], flat[1::2])}
            for p, mks in owned.items()
            for mk, flat in zip(mks, found[p])
        }

    async def _hashes(self, names: dict[int, list[str]]) -> dict[int, list[list[bytes]]]:
        """Per partition, the hashes of these names under its base, as flat HGETALL replies (one
        script call per partition instead of a command per hash)."""
        ordered = sorted(p for p, n in names.items() if n)
        replies = await self._each([(lua.HASHES, p, (json.dumps(names[p]),)) for p in ordered])
        return {p: reply for p, reply in zip(ordered, replies)}

    async def close_counts(self, models: set[str], build: Any) -> int:
        """Per partition, take the counters of the models no window open in it carries and queue
        their records, in a script that first checks no other writer took counters meanwhile."""
        ordered = sorted(models)
        pending, taken = set(range(self.partitions)), 0
        for _ in range(MAX_RETRIES):
            partitions = sorted(pending)
            replies = await self._each([(lua.COUNTS, p, (json.dumps(ordered),)) for p in partitions])
            calls, sizes = [], []
            for p, (version, hashes) in zip(partitions, replies):
                outputs, take = [], []
                for model, flat in zip(ordered, hashes):
                    counts = merge_counts(_counters(flat))
                    if any(counts.values()):
                        outputs += build(model, counts)
                        take.append([model, _counter_pairs({f: -n for f, n in counts.items() if n})])
                if take:
                    control = {"version": _text(version) or "", "take": take, "rows": self._outbox_rows(outputs)}
                    calls.append((lua.TAKE, p, (json.dumps(control),)))
                    sizes.append(len(take))
                else:
                    pending.discard(p)
            for (_, p, _), size, reply in zip(calls, sizes, await self._each(calls)):
                if reply == 1:
                    pending.discard(p)
                    taken += size
            if not pending:
                return taken
        raise StateError(f"could not take the counts of {len(models)} models after {MAX_RETRIES} attempts")

    # -- outbox --------------------------------------------------------------------------------
    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs (in the first partition's outbox)."""
        rows = self._outbox_rows(outputs)
        if rows:
            await self.redis.rpush(f"{self.base(0)}:o", *rows)

    async def pending_outbox(self) -> list[Output]:
        """Queued outputs not yet confirmed (the first page of every partition's outbox)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.lrange(f"{self.base(p)}:o", 0, OUTBOX_PAGE - 1)
            pages = await pipe.execute()
        self._outbox_pages = [(p, page) for p, page in enumerate(pages) if page]
        return [
            Output(d["kind"], d["key"], d["value"]) for _, page in self._outbox_pages for d in map(json.loads, page)
        ]

    async def confirm_outbox(self, count: int) -> None:
        """Drop the first `count` entries of the pages last read: Kafka has them. Workers share
        outboxes, so entries are dropped only if they still head theirs; if another worker published
        and dropped them meanwhile, nothing is dropped (its copies were byte-identical)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p, page in self._outbox_pages:
                if count <= 0:
                    break
                rows = [_text(row) for row in page[:count]]
                count -= len(rows)
                pipe.eval(lua.CONFIRM, 1, f"{self.base(p)}:o", json.dumps(rows))
            await pipe.execute()
