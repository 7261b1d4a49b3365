"""State held in process memory: the store of replays, backtests and unit tests."""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from typing import Any

from stream.core.aggregate import WindowAggregate
from stream.core.records import Joined
from stream.core.state import (
    UNATTRIBUTED,
    JoinEntry,
    Job,
    Output,
    RollingDue,
    StateView,
    StepResult,
    merge_counts,
    rolling_due,
)
from stream.core.segments import admit
from stream.core.windows import WindowKey, model_key


class MemoryStore:
    """A StateStore in dictionaries; same semantics as the Redis store, without durability. Like
    it, it keeps join entries, window parts and counters per input partition."""

    def __init__(self, rolling_size: int = 0, rolling_every: int = 1, segment_cap: int = 20) -> None:
        self.rolling_size, self.rolling_every, self.segment_cap = rolling_size, rolling_every, segment_cap
        self.entries: dict[int, dict[str, JoinEntry]] = {}
        self.index: dict[int, dict[str, float]] = {}
        self.due: dict[int, list[tuple[float, str]]] = {}  # heaps over `index`, stale items skipped
        self.checkpoints: dict[tuple[str, int], int] = {}
        self.watermarks: dict[str, float] = {}
        self.floor = -math.inf
        self.windows: dict[WindowKey, dict[int, WindowAggregate]] = {}  # parts per partition
        # per window, partition and segment key: the values its part admitted (see `segments.admit`)
        self.admitted: dict[tuple[WindowKey, int, str], set[str]] = {}
        self.detectors: dict[str, dict[str, str]] = {}  # per model version, its change detectors' states
        # what inferences add to windows without opening them (label coverage, estimates), and the
        # windows listed for a provisional record
        self.unopened: dict[WindowKey, WindowAggregate] = {}
        self.listed: set[WindowKey] = set()
        self.provisioned: set[WindowKey] = set()  # published provisionally: never again
        self.counters: dict[int, dict[str, Counter[str]]] = {}
        self.rolling: dict[str, deque[Joined]] = {}
        self.rolling_count: Counter[str] = Counter()
        self.outbox: list[Output] = []

    async def transact(self, jobs: list[Job]) -> list[tuple[StepResult, list[RollingDue]]]:
        """Run each job's step on a view of its partition's state and apply its result."""
        return [self.run(*job) for job in jobs]

    def run(
        self, partition: int, ids: set[str], inputs: set[tuple[str, int]], step: Any
    ) -> tuple[StepResult, list[RollingDue]]:
        """Run `step` on a view of one partition's state and apply its result."""
        entries = self.entries.get(partition, {})
        while True:
            view = StateView(
                {i: entries.get(i) for i in ids},
                {k: v for k, v in self.checkpoints.items() if k in inputs},
                dict(self.watermarks),
                self.floor,
            )
            result: StepResult = step(view)
            if not result.missing:
                return result, self.apply(partition, result)
            ids = ids | result.missing

    def apply(self, partition: int, result: StepResult) -> list[RollingDue]:
        """Apply a step's changes to one partition's state."""
        entries = self.entries.setdefault(partition, {})
        index = self.index.setdefault(partition, {})
        for event_id in result.unindex.get(partition, ()):
            index.pop(event_id, None)
        for event_id, entry in result.entries.items():
            if entry is None:
                entries.pop(event_id, None)
                continue
            entries[event_id] = entry
            if math.isfinite(entry.expires):
                index[event_id] = entry.expires
                heapq.heappush(self.due.setdefault(partition, []), (entry.expires, event_id))
        for key, agg in result.windows.items():
            part = self.windows.setdefault(key, {}).setdefault(partition, WindowAggregate(agg.resolution))
            segments, agg.segments = agg.segments, {}
            part.merge(agg)
            for (name, value), counters in segments.items():
                admitted = self.admitted.setdefault((key, partition, name), set())
                part.segment(name, admit(admitted, value, self.segment_cap)).merge(counters)
        for key, part in result.unopened.items():  # kept aside: they do not open the window
            self.unopened.setdefault(key, WindowAggregate(part.resolution)).merge(part)
        self.listed |= result.provisional
        counters = self.counters.setdefault(partition, {})
        for key, counts in result.counters.items():
            counters.setdefault(key, Counter()).update(counts)
        self.watermarks.update(result.watermarks)
        self.checkpoints.update(result.checkpoints)
        self.outbox.extend(result.outputs)
        due = []
        for mk, samples in result.rolling.items():
            window = self.rolling.setdefault(mk, deque(maxlen=self.rolling_size))
            window.extend(samples)
            self.rolling_count[mk] += len(samples)
            if rolling_due(self.rolling_count[mk], len(samples), self.rolling_every):
                due.append(RollingDue.of(mk, self.rolling_count[mk], window))
        return due

    async def rolling_samples(self, due: list[RollingDue]) -> list[RollingDue]:
        """The due windows as `transact` returned them: with their samples."""
        return due

    async def expiry_candidates(self, partitions: set[int], horizon: float) -> dict[int, list[str]]:
        """Indexed entries of these partitions expiring before `horizon` (each returned once: the
        sweep expires them)."""
        out: dict[int, list[str]] = {}
        for p in partitions:
            heap, index = self.due.get(p, []), self.index.get(p, {})
            found = []
            while heap and heap[0][0] < horizon:
                expires, event_id = heapq.heappop(heap)
                if index.get(event_id) == expires:
                    found.append(event_id)
            out[p] = sorted(found)
        return out

    async def oldest_beyond(self, partitions: set[int], limit: int) -> dict[int, list[str]]:
        """The indexed entries of each partition past the `limit` that expire last, first-expiring first."""
        out: dict[int, list[str]] = {}
        for p in partitions:
            index = self.index.get(p, {})
            if len(index) > limit:
                out[p] = [i for i, _ in sorted(index.items(), key=lambda kv: (kv[1], kv[0]))[: len(index) - limit]]
        return out

    async def clock(self) -> tuple[dict[str, float], float]:
        """Partition watermarks and the idle floor."""
        return dict(self.watermarks), self.floor

    async def raise_floor(self, when: float) -> None:
        """Advance the idle floor."""
        self.floor = max(self.floor, when)

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open windows ending at or before `until`, oldest first."""
        return sorted((k for k in self.windows if k.end <= until), key=lambda k: (k.end, k.model, k.version))

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows listed for a provisional record ending at or before `until`, oldest first."""
        return sorted((k for k in self.listed if k.end <= until), key=lambda k: (k.end, k.model, k.version))

    async def publish_provisional(self, keys: list[WindowKey], build: Any) -> int:
        """Build and queue each window's provisional records from its state so far (the window stays
        open) and take it off the list; returns how many records were queued."""
        queued = 0
        for key in sorted(keys, key=lambda k: (k.end, k.start)):
            if key not in self.listed:
                continue
            self.listed.discard(key)
            if key in self.provisioned or key not in self.unopened:  # published already, or closed
                continue
            self.provisioned.add(key)
            agg = WindowAggregate(self.unopened[key].resolution)
            for part in self.windows.get(key, {}).values():
                agg.merge(part)
            agg.merge(self.unopened[key])
            detectors = self.detectors.setdefault(model_key(key.model, key.version), {})
            outputs, changed = build(key, agg, dict(detectors))
            detectors.update(changed)
            self.outbox.extend(outputs)
            queued += len(outputs)
        return queued

    async def close_windows(self, keys: list[WindowKey], build: Any) -> int:
        """Take each window's parts and, per partition, its model's counters; build and queue its outputs."""
        closed = 0
        for key in keys:
            parts = self.windows.pop(key, None)
            if parts is None:
                continue
            agg, counts = WindowAggregate(next(iter(parts.values())).resolution), {}
            for part in parts.values():
                agg.merge(part)
            unopened = self.unopened.pop(key, None)
            if unopened is not None:
                agg.merge(unopened)
            for gone in [k for k in self.admitted if k[0] == key]:
                del self.admitted[gone]
            self.listed.discard(key)
            self.provisioned.add(key)  # closed: no provisional record after the final one
            for counters in self.counters.values():  # a later window of the model finds them gone
                counts = merge_counts(counts, *(counters.pop(m, {}) for m in (key.model, UNATTRIBUTED)))
            detectors = self.detectors.setdefault(model_key(key.model, key.version), {})
            outputs, changed = build(key, agg, counts, dict(detectors))
            detectors.update(changed)
            self.outbox.extend(outputs)
            closed += 1
        return closed

    async def close_counts(self, models: set[str], build: Any) -> int:
        """Per partition, take the counters of the models no window open in it will carry, build and
        queue their outputs."""
        taken = 0
        for partition, counters in sorted(self.counters.items()):
            carried = {k.model for k, parts in self.windows.items() if partition in parts}
            for model in sorted(models):
                if (model == UNATTRIBUTED and carried) or (model != UNATTRIBUTED and model in carried):
                    continue
                counts = merge_counts(counters.pop(model, {}))
                if any(counts.values()):
                    self.outbox.extend(build(model, counts))
                    taken += 1
        return taken

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs."""
        self.outbox.extend(outputs)

    async def pending_outbox(self) -> list[Output]:
        """Queued outputs, oldest first."""
        return list(self.outbox)

    async def confirm_outbox(self, count: int) -> None:
        """Drop published outputs."""
        del self.outbox[:count]
