"""State held in process memory: the store of replays, backtests and unit tests."""

from __future__ import annotations

import heapq
import json
import math
import sys
from collections import Counter, deque
from typing import Any, TypeVar

from stream.core.aggregate import WindowAggregate
from stream.core.contract import (
    FINAL,
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
    merge_counts,
    merge_parts,
    rolling_due,
    window_order,
)
from stream.core.dataquality.parts import QualityPart
from stream.core.records import Joined
from stream.core.segments import admit
from stream.core.state import UNATTRIBUTED, JoinEntry, Output, StateView, StepResult
from stream.core.windows import WindowKey

Part = TypeVar("Part")


class MemoryStore:
    """A StateStore in dictionaries; same semantics as the Redis store, without durability. Like
    it, it keeps join entries, window parts and counters per input partition."""

    outbox_page = sys.maxsize  # the whole outbox is one page

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
        self.detectors_by_model: dict[str, dict[str, str]] = {}  # per model version, its detectors' states
        # what inferences add to windows without opening them (label coverage, estimates), and the
        # windows listed for a provisional record
        self.unopened: dict[WindowKey, dict[int, WindowAggregate]] = {}  # per partition, as window parts
        self.unopened_of: dict[str, set[WindowKey]] = {}  # per model version, the windows in `unopened`
        self.listed: set[WindowKey] = set()
        self.quality: dict[WindowKey, dict[int, QualityPart]] = {}  # data quality: parts per partition
        self.provisioned: set[WindowKey] = set()  # published provisionally: never again, until sealed
        self.notes: dict[WindowKey, str] = {}  # their claims' notes (drifted features), until closed
        self.sealed: dict[WindowKey, SealedWindow] = {}  # sealed, until `finish`
        # per model version, the end of the last window sealed (a pair for a window ending by then
        # is late) and published: one number each, whatever the number of windows (as in Redis)
        self.sealed_through: dict[str, float] = {}
        self.published_through: dict[str, float] = {}
        self.counters: dict[int, dict[str, Counter[str]]] = {}
        # per partition and model version, its part of the rolling window and its count (see RollingDue)
        self.rolling: dict[tuple[int, str], deque[Joined]] = {}
        self.rolling_count: Counter[tuple[int, str]] = Counter()
        self.outbox: list[Output] = []

    async def transact(self, jobs: list[Job]) -> Transacted:
        """Run each job's step on a view of its partition's state and apply its result."""
        return Transacted([self.run(*job) for job in jobs])

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
        self.apply_joins(partition, result)
        return self._apply_windows(partition, result)

    def apply_joins(self, partition: int, result: StepResult) -> None:
        """Apply a step's changes to one partition's join state: its entries, their expiry index, the
        partition's watermarks and applied offsets (what the next step's view reads)."""
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
        self.watermarks.update(result.watermarks)
        self.checkpoints.update(result.checkpoints)

    def _apply_windows(self, partition: int, result: StepResult) -> list[RollingDue]:
        """Apply the rest of a step's changes: window parts, counters, the outbox (a split replay's
        processes apply only the joins of their partitions; its parent applies their results whole,
        without entries)."""
        late = [key for key in result.windows if self._past(key, self.sealed_through)]
        if late:  # their windows closed: the pairs are counted late, never lost (as the Redis store does)
            result.closed_late(late)
        for key, aggregate in result.windows.items():
            if self._past(key, self.sealed_through):
                continue
            part = self.windows.setdefault(key, {}).setdefault(partition, WindowAggregate(aggregate.resolution))
            segments, aggregate.segments = aggregate.segments, {}
            part.merge(aggregate)
            for (name, value), segment in segments.items():
                admitted = self.admitted.setdefault((key, partition, name), set())
                part.segment(name, admit(admitted, value, self.segment_cap)).merge(segment)
        for window, unopened in result.unopened.items():  # kept aside: they do not open the window
            if not self._past(window, self.sealed_through):
                parts = self.unopened.setdefault(window, {})
                parts.setdefault(partition, WindowAggregate(unopened.resolution)).merge(unopened)
                self.unopened_of.setdefault(window.model_key, set()).add(window)
        self.listed |= result.provisional
        for window, rows in result.quality.items():
            if window in self.provisioned or self._past(window, self.sealed_through):
                result.count(window.model, "late_features", len(rows))  # its record is out: counted, not lost
            else:
                held = self.quality.setdefault(window, {})
                quality = held.get(partition) or QualityPart()
                quality.rows.extend(rows)
                held[partition] = quality.folded(self.segment_cap)
        counters = self.counters.setdefault(partition, {})
        for model, counts in result.counters.items():
            counters.setdefault(model, Counter()).update(counts)
        self.outbox.extend(result.outputs)
        due = []
        for model_version, samples in result.rolling.items():
            mine = (partition, model_version)
            self.rolling.setdefault(mine, deque(maxlen=self.rolling_size)).extend(samples)
            self.rolling_count[mine] += len(samples)
            if rolling_due(self.rolling_count[mine], len(samples), self.rolling_every):
                due.append(RollingDue.of(model_version, self.rolling_count[mine], []))
        return due

    async def rolling_samples(self, due: list[RollingDue]) -> list[RollingDue]:
        """The due windows, each merged from every partition's part (see `RollingDue`)."""
        partitions = sorted({p for p, _ in self.rolling})  # in partition order, as `merged` wants
        return [
            RollingDue.merged(
                d.model_key,
                [
                    (
                        self.rolling_count[p, d.model_key],
                        RollingDue.of(d.model_key, 0, self.rolling.get((p, d.model_key), ())),
                    )
                    for p in partitions
                ],
                self.rolling_size,
            )
            for d in due
        ]

    async def expiry_candidates(
        self, partitions: set[int], horizon: float, clock: Clock | None = None
    ) -> dict[int, list[str]]:
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

    async def clock(self) -> Clock:
        """Partition watermarks and the idle floor."""
        return Clock(dict(self.watermarks), self.floor)

    async def raise_floor(self, when: float) -> None:
        """Advance the idle floor."""
        self.floor = max(self.floor, when)

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open windows ending at or before `until`, oldest first."""
        return sorted((k for k in self.windows if k.end <= until), key=window_order)

    async def seal(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """Take each window's parts and, of every partition, its model's counters (and the
        unattributed ones) into a sealed window."""
        out = []
        for key in keys:
            if self._past(key, self.published_through):
                continue
            if key not in self.sealed:
                if self._past(key, self.sealed_through):
                    continue
                self.sealed_through[key.model_key] = key.end  # `keys` come oldest first
                listed = self.unopened_of.get(key.model_key, set())
                for past in [k for k in listed if k != key and self._past(k, self.sealed_through)]:
                    listed.discard(past)  # windows of the model only inferences reached: past too
                    del self.unopened[past]
                parts = self.windows.pop(key, None)
                if parts is None:
                    continue
                resolution = next(iter(parts.values())).resolution
                unopened = self.unopened.pop(key, {})
                self.unopened_of.get(key.model_key, set()).discard(key)
                # in partition order, whatever order the partitions came in: float sums add up alike
                aggregate = merge_parts(resolution, [*_in_order(parts), *_in_order(unopened)])
                for gone in [k for k in self.admitted if k[0] == key]:
                    del self.admitted[gone]
                self.listed.discard(key)
                counts: dict[str, int] = {}
                for counters in self.counters.values():  # a later window of the model finds them gone
                    counts = merge_counts(counts, counters.pop(key.model, {}))
                note = self.notes.pop(key, "")
                self.sealed[key] = SealedWindow(key, aggregate, counts, drifted=json.loads(note) if note else None)
            out.append(self.sealed[key])
        return out

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows listed for a provisional record ending at or before `until`, oldest first."""
        return sorted((k for k in self.listed if k.end <= until), key=window_order)

    async def provisional_state(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """The state so far of the listed windows neither published provisionally nor closed."""
        out = []
        for key in sorted(keys, key=lambda k: (k.end, k.start)):
            fresh = key not in self.provisioned and not self._past(key, self.sealed_through)
            if key in self.listed and fresh and key in self.unopened:
                unopened = _in_order(self.unopened[key])
                parts = [*_in_order(self.windows.get(key, {})), *unopened]
                quality = _in_order(self.quality.get(key, {}))
                out.append(SealedWindow(key, merge_parts(unopened[0].resolution, parts), quality=quality))
        return out

    async def unlist_provisional(self, keys: list[WindowKey]) -> None:
        """Take the windows off the list (with their data-quality parts)."""
        self.listed.difference_update(keys)
        for key in keys:
            self.quality.pop(key, None)

    async def detectors(self, models: list[str], stage: Stage) -> dict[str, DetectorStates]:
        """Each model version's change detectors (no other writer: no stamp)."""
        return {
            model_version: DetectorStates(dict(self.detectors_by_model.get(model_version, {})))
            for model_version in models
        }

    async def claim(self, claims: list[Claim], stage: Stage) -> ClaimResult:
        """Queue the windows' records (in window order across model versions) and store the detectors."""
        result = ClaimResult()
        taken = []
        for claim in claims:
            published = self.published_through.get(claim.model_key, -math.inf)
            for window in claim.windows:
                if stage == FINAL:
                    if window.key.end <= published:
                        continue
                    end = self.published_through.get(claim.model_key, -math.inf)
                    self.published_through[claim.model_key] = max(end, window.key.end)
                else:
                    if window.key in self.provisioned or self._past(window.key, self.sealed_through):
                        continue
                    self.provisioned.add(window.key)
                    if window.note:
                        self.notes[window.key] = window.note
                taken.append(window)
            self.detectors_by_model.setdefault(claim.model_key, {}).update(claim.detectors)
        for window in sorted(taken, key=lambda w: window_order(w.key)):
            self.outbox.extend(window.outputs)
            result.windows += 1
            result.records += len(window.outputs)
        return result

    async def finish(self, keys: list[WindowKey]) -> None:
        """Drop the sealed windows (and, of the windows past, the marks of their provisional records)."""
        for key in keys:
            self.sealed.pop(key, None)
        self.provisioned = {key for key in self.provisioned if not self._past(key, self.sealed_through)}
        self.notes = {key: note for key, note in self.notes.items() if not self._past(key, self.sealed_through)}

    @staticmethod
    def _past(key: WindowKey, through: dict[str, float]) -> bool:
        """Whether the window ends by its model version's mark in `through`."""
        return key.end <= through.get(key.model_key, -math.inf)

    async def counts(self, models: list[str]) -> list[CountsSnapshot]:
        """Per partition, the counters of the models no window open in it will carry."""
        out = []
        for partition, counters in sorted(self.counters.items()):
            carried = {k.model for k, parts in self.windows.items() if partition in parts}
            counts = {
                model: dict(counters.get(model, {}))
                for model in sorted(models)
                if model == UNATTRIBUTED or model not in carried
            }
            out.append(CountsSnapshot(partition, "", counts))
        return out

    async def take_counts(self, takes: list[CountsTake]) -> set[int]:
        """Subtract the counts taken and queue their records (no other writer: always taken)."""
        for take in takes:
            counters = self.counters.setdefault(take.partition, {})
            for model, counts in take.counts.items():
                left = counters.get(model, Counter())
                left.subtract(counts)
                counters[model] = Counter({k: n for k, n in left.items() if n})
            self.outbox.extend(take.outputs)
        return {take.partition for take in takes}

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs."""
        self.outbox.extend(outputs)

    async def pending_outbox(self) -> list[Output]:
        """Queued outputs, oldest first."""
        return list(self.outbox)

    async def confirm_outbox(self, count: int) -> None:
        """Drop published outputs."""
        del self.outbox[:count]


def _in_order(parts: dict[int, Part]) -> list[Part]:
    """A window's parts (counters, data-quality parts) in partition order."""
    return [part for _, part in sorted(parts.items())]
