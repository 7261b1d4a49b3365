"""A batch of one input partition as an optimistic transaction: read, run the step, write if unmoved.

A batch of a partition is two round trips: READ returns what the step needs (join entries, applied
offsets, watermarks, the partition's version); the core step runs; APPLY checks that the version
and the idle floor are still what was read and writes every change, atomically. A batch replayed
after a crash finds its offsets applied and changes nothing; a zombie worker that lost its
partitions finds their version moved and writes nothing.

The applied offsets are the input positions the state belongs to: they only ever move forward.
One that Redis returns lower than this process saw (or missing) means Redis lost writes, and
`StateLost` is raised before anything is computed from the older state.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from stream.core.contract import Job, RollingDue, Transacted
from stream.core.dataquality.parts import FOLD_ROWS
from stream.core.records import SEP
from stream.core.state import PENDING_INFERENCE, PENDING_LABEL, StateView, StepResult, encode_sample, expiry_slot_end
from stream.core.windows import WindowKey
from stream.errors import StateError, StateLost
from stream.stores.redis import scripts
from stream.stores.redis.codec import EntryCodec, ModelTable, counter_pairs, digest, text
from stream.stores.redis.keys import LAYOUT
from stream.stores.redis.outbox import rows
from stream.stores.redis.partitions import Partitions

MAX_RETRIES = 50  # optimistic-transaction retries before giving up on a batch
INLINE_BYTES = 60  # longer entries (pending labels) get a key of their own: buckets stay listpacks
LENGTH = struct.Struct(">I")


class Txn:
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


class Transactions:
    """Runs jobs as optimistic transactions over the partitions."""

    def __init__(
        self,
        partitions: Partitions,
        models: ModelTable,
        codec: EntryCodec,
        label_ttl: float,
        safety_ttl: int,
        rolling: tuple[int, int],
        segment_cap: int,
    ) -> None:
        self.partitions, self.models, self.codec = partitions, models, codec
        self.label_ttl, self.safety_ttl, self.segment_cap = label_ttl, safety_ttl, segment_cap
        self.rolling_size, self.rolling_every = rolling
        self.seen: dict[tuple[str, int], int] = {}  # the highest applied offset seen, per input partition
        self.fold_due: list[tuple[int, WindowKey]] = []  # data-quality lists holding a whole fold

    async def transact(self, jobs: list[Job]) -> Transacted:
        """Run the jobs (one per partition), all in one pipeline: read each partition's view, run its
        step, then write its result and new offsets in one script that first checks the partition's
        version and floor are still what was read (else: read again). With the writes of a batch of
        input, the clock is read in the same round trip (and what an expiry sweep would find)."""
        txns = [Txn(job) for job in jobs]
        pending = list(txns)
        clock = None
        for _ in range(MAX_RETRIES):
            calls = []
            for txn in pending:
                txn.known = self.models.known(txn.job.partition)
                for i in txn.ids:
                    if i not in txn.digests:
                        txn.digests[i] = digest(i)
                digests = b"".join(txn.digests[i] for i in txn.ids)
                calls.append(self.partitions.call(scripts.READ, txn.job.partition, digests, txn.known, *txn.topics))
            writes = [txn for txn, reply in zip(pending, await self.partitions.run(calls)) if self._view(txn, reply)]
            written = sorted({t.job.partition for t in writes})
            reads = []
            if any(t.topics for t in writes):
                reads = self.partitions.clock_reads() + self.partitions.expiry_reads(written)
            replies = await self.partitions.run(
                [self.partitions.call(scripts.APPLY, t.job.partition, *t.write) for t in writes], reads
            )
            if reads:
                marks = replies[len(writes) : len(writes) + self.partitions.count]
                expiry = self.partitions.expiry_of(written, replies[len(writes) + self.partitions.count :])
                clock = self.partitions.clock_of(marks, expiry)
            for txn, reply in zip(writes, replies):
                if reply == 2:  # another worker did this sweep
                    txn.done = (StepResult(), [])
                elif reply != 0:
                    self.saw(txn.result.checkpoints)
                    windows = list(txn.result.windows)
                    txn.result.closed_late([windows[int(i)] for i in reply[2]])
                    self.fold_due += [(txn.job.partition, WindowKey.decode(text(w) or "")) for w in reply[3]]
                    self.models.learn(txn.job.partition, txn.known, txn.known, txn.new_models)
                    txn.done = (
                        txn.result,
                        [RollingDue.of(text(model_version) or "", int(n), []) for model_version, n in reply[1]],
                    )
            pending = [t for t in pending if t.done is None]
            if not pending:
                return Transacted([t.done for t in txns if t.done is not None], clock)
        raise StateError(
            f"Redis transactions of partitions {sorted(t.job.partition for t in pending)} kept conflicting "
            f"{MAX_RETRIES} times; is another worker consuming the same partitions?"
        )

    def _view(self, txn: Txn, reply: list[Any]) -> bool:
        """Run a job's step on the view READ returned and prepare its write; False when it must read
        again (ids to load that the step found missing, or model references to learn afresh)."""
        partition = txn.job.partition
        values, found, offsets, flat, version, count = reply
        self.check(partition, dict(zip(txn.topics, offsets)))
        if not self.models.learn(partition, txn.known, count, found):
            return False
        entries = {i: self.codec.decode(partition, v) if v is not None else None for i, v in zip(txn.ids, values)}
        marks = {text(k) or "": text(v) or "" for k, v in zip(flat[::2], flat[1::2])}
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
        control.update(version=text(version) or "", floor=marks.get("f", ""), sweep=txn.sweep)
        txn.write = (json.dumps(control), dels, sets, sides)
        txn.new_models = sorted(new_models, key=new_models.__getitem__)
        return True

    def saw(self, applied: Mapping[tuple[str, int], int]) -> None:
        """Remember applied offsets (written by this process, or read from Redis)."""
        seen = self.seen
        for key, offset in applied.items():
            if offset > seen.get(key, -1):
                seen[key] = offset

    def check(self, partition: int, stored: Mapping[str, Any]) -> None:
        """Raise `StateLost` when Redis holds a lower applied offset of an input partition than was
        seen (or none): it went back in time. Otherwise remember what it holds."""
        for topic, offset in stored.items():
            known = self.seen.get((topic, partition))
            held = int(offset) if offset is not None else None
            if known is not None and (held is None or held < known):
                raise StateLost(
                    f"Redis went back in time: it holds {topic}[{partition}] applied up to "
                    f"{'no offset' if held is None else f'offset {held}'}, but offset {known} was applied "
                    "(Redis restarted without its data, lost its last writes, or failed over to a lagging "
                    "replica); the input must be read again from the positions Redis holds"
                )
            if held is not None:
                self.saw({(topic, partition): held})

    def position_reads(self) -> tuple[list[int], list[Any]]:
        """The partitions whose offsets were seen, and reads of their applied offsets (see `check`)."""
        ordered = sorted({p for _, p in self.seen})
        return ordered, self.partitions.hash_reads("ck", ordered)

    def check_all(self, partitions: list[int], replies: list[dict[bytes, bytes]]) -> None:
        """`check` every partition of `position_reads` against its reply (topics this process saw)."""
        for p, reply in zip(partitions, replies):
            held = {text(k) or "": v for k, v in reply.items()}
            self.check(p, {t: held.get(t) for t, q in self.seen if q == p})

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
            if old is not None and old.state in waiting:
                waiting[old.state] -= 1
            if entry is not None and entry.state in waiting:
                waiting[entry.state] += 1
            if old is not None and old.state == PENDING_LABEL:
                sides.append(d)  # its text may be in a key of its own
            if entry is None:
                dels.append(d)
                continue
            value = self.codec.encode(partition, entry, new_models)
            sets.append(d + LENGTH.pack(len(value)) + value)
            if entry.expires != math.inf:
                end = expiry_slot_end(entry.expires, self.label_ttl)
                # an entry replacing one of the same slot (a join tombstone its inference) is indexed already
                if old is None or old.expires == math.inf or expiry_slot_end(old.expires, self.label_ttl) != end:
                    index.setdefault(repr(end), []).append(len(sets))
        keys = self.partitions.keys
        part = {w: keys.of(partition, f"w:{w.encode()}") for w in (*result.windows, *result.unopened, *result.quality)}
        hashes: list[tuple[str, Mapping[str, float]]] = [
            (part[w], aggregate.fields(segments=False)) for w, aggregate in result.windows.items()
        ]
        # segments' counters go in the same hash, under a value the part admits (see `segments`)
        segments = [
            [part[w], name, value, counter_pairs(counters.fields())]
            for w, aggregate in result.windows.items()
            for (name, value), counters in aggregate.segments.items()
        ]
        # what inferences add goes into the window's part without opening it (no `open` entry)
        hashes += [(part[w], unopened.fields()) for w, unopened in result.unopened.items()]
        hashes += [(keys.of(partition, f"c:{model}"), counts) for model, counts in result.counters.items()]
        control = {
            "ttl": self.safety_ttl,
            "inline": INLINE_BYTES,
            "fill": scripts.FILL,
            "layout": LAYOUT,
            "pending": [waiting[PENDING_INFERENCE], waiting[PENDING_LABEL]],
            "models": [x for key, ref in new_models.items() for x in (str(ref), key)],
            "index": [[end, positions] for end, positions in index.items()],
            "hincr": [[key, counter_pairs(counts)] for key, counts in hashes],
            "seg": segments,
            "segcap": self.segment_cap,
            "open": [x for w in result.windows for x in (repr(w.end), w.encode())],
            "windows": [
                [
                    w.encode(),
                    part[w],
                    keys.of(partition, f"c:{w.model}"),
                    aggregate.sample_count,
                    w.model_key,
                    repr(w.end),
                ]
                for w, aggregate in result.windows.items()
            ],
            "pv": [x for w in result.provisional for x in (repr(w.end), w.encode())],
            "unopened": [part[w] for w in result.unopened if w not in result.windows],
            "uwin": [[w.encode(), part[w], w.model_key, repr(w.end)] for w in result.unopened],
            "wm": [x for k, t in result.watermarks.items() for x in (k[0], repr(t))],
            "ck": [x for (topic, _), offset in result.checkpoints.items() for x in (topic, str(offset))],
            "outbox": rows(result.outputs),
            "rolling": [
                [model_version, [encode_sample(s) for s in samples]]
                for model_version, samples in result.rolling.items()
            ],
            "q": [
                [w.encode(), part[w], rows, keys.of(partition, f"c:{w.model}"), w.model_key, repr(w.end)]
                for w, rows in result.quality.items()
            ],
            "fold": FOLD_ROWS,
            "rolling_size": self.rolling_size,
            "rolling_every": self.rolling_every,
        }
        return control, b"".join(dels), b"".join(sets), b"".join(sides)
