"""The store contract: what crosses between the engine and a state store, and what a store must do.

The engine drives; a store keeps. Per batch the engine hands the store `Job`s (one per input
partition) whose pure step the store runs on a view of its state and applies atomically. When
event time passes a window's end (plus the grace), the flow runs one way, with no call back into
the core from the store:

    store.seal(due)            -> SealedWindow[]       (parts of every partition merged, counts)
    store.detectors(models)    -> DetectorStates       (change detectors, and the stamp to check)
    core evaluates             -> Claim[]              (records, judgments, detectors' new states)
    store.claim(claims)        -> ClaimResult          (compare-and-set; conflicts: the engine retries)
    store.finish(due)                                  (sealed parts dropped, windows remembered closed)

Provisional records (`provisional_state`, `claim(..., PROVISIONAL)`, `unlist_provisional`) and
accounting records (`counts`, `take_counts`) follow the same shape. Every type here is a plain
value; the two stores (memory, Redis) implement `StateStore`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from stream.core.aggregate import WindowAggregate
from stream.core.dataquality.parts import QualityPart
from stream.core.records import SEP, Joined
from stream.core.state import Output, StateView, StepResult
from stream.core.windows import WindowKey

# The stage of a window's publication a claim is for.
Stage = Literal["final", "provisional"]
FINAL: Stage = "final"  # a window's closing records: published once, in order per model version
PROVISIONAL: Stage = "provisional"  # its record before every label came: at most once, never after FINAL


class Job(NamedTuple):
    """One partition's part of a batch for `StateStore.transact`: the event ids and input partitions
    its view needs, and the step to run on that view."""

    partition: int
    ids: set[str]
    inputs: set[tuple[str, int]]
    step: Callable[[StateView], StepResult]


@dataclass(frozen=True, slots=True)
class Clock:
    """The stream's clock as a store read it: partition watermarks (`i<p>`, `l<p>`), the idle floor,
    and, when read with a batch's writes, per written partition the end of its earliest expiry slot
    and whether a sweep's work list is left (`expiry`: lets `expiry_candidates` skip partitions with
    nothing due; None when not known).

    >>> clock = Clock({"i0": 100.0}, float("-inf"), expiry={0: (160.0, False)})
    >>> clock.sweep_due(0, 150.0), clock.sweep_due(0, 160.0), clock.sweep_due(1, 0.0)
    (False, True, True)
    """

    watermarks: dict[str, float]
    floor: float
    expiry: dict[int, tuple[float, bool]] | None = None

    def sweep_due(self, partition: int, horizon: float) -> bool:
        """Whether a sweep to `horizon` may find anything in the partition (True when not known)."""
        if self.expiry is None or partition not in self.expiry:
            return True
        first_end, work_left = self.expiry[partition]
        return work_left or first_end <= horizon


@dataclass(slots=True)
class RollingDue:
    """A rolling window due for evaluation: the model version, its sample count so far, and its
    samples as columns (event times, actual and predicted classes, scores or None).

    Each partition keeps the last N samples it joined and its own count; a window is due when a
    partition's count crosses a multiple of M, and is then the N latest samples (by event time)
    of every partition's, its sequence the partitions' counts summed (`merged`). So rolling windows
    need no key outside a partition: they work on a Redis Cluster as on one Redis."""

    model_key: str
    sequence: int
    times: list[float]
    y_true: list[str]
    y_pred: list[str]
    scores: list[float | None]

    @classmethod
    def of(cls, model_key: str, sequence: int, samples: Iterable[Joined]) -> RollingDue:
        """The columns of these samples."""
        rows = list(samples)
        times, y_true = [s.time for s in rows], [s.y_true for s in rows]
        y_pred, scores = [s.y_pred for s in rows], [s.score for s in rows]
        return cls(model_key, sequence, times, y_true, y_pred, scores)

    @classmethod
    def decode(cls, model_key: str, sequence: int, rows: list[bytes]) -> RollingDue:
        """The columns of samples `encode_sample` wrote (split in one go: it runs per batch)."""
        if not rows:
            return cls(model_key, sequence, [], [], [], [])
        fields = SEP.encode().join(rows).decode().split(SEP)
        times, y_true, y_pred, scores = fields[0::4], fields[1::4], fields[2::4], fields[3::4]
        return cls(
            model_key, sequence, list(map(float, times)), y_true, y_pred, [float(x) if x else None for x in scores]
        )

    @classmethod
    def merged(cls, model_key: str, parts: list[tuple[int, RollingDue]], size: int) -> RollingDue:
        """The window over partitions' parts (given as (count, part), in partition order): the `size`
        latest samples by event time (ties: partition order, then arrival), the counts summed."""
        rows = [
            (t, p, i, part.y_true[i], part.y_pred[i], part.scores[i])
            for p, (_, part) in enumerate(parts)
            for i, t in enumerate(part.times)
        ]
        rows.sort(key=lambda row: row[:3])
        rows = rows[-size:] if size > 0 else []
        return cls(
            model_key,
            sum(count for count, _ in parts),
            [r[0] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [r[5] for r in rows],
        )


@dataclass(slots=True)
class Transacted:
    """What `StateStore.transact` did: per job, its step's result and the rolling windows it made
    due; and the clock, when the store read it with the writes (else the engine asks for it)."""

    results: list[tuple[StepResult, list[RollingDue]]]
    clock: Clock | None = None


@dataclass(slots=True)
class SealedWindow:
    """A window's state as the store holds it for evaluation: its parts of every partition merged
    (`merge_parts`), and the late, expired, duplicate and rejected counts it carries."""

    key: WindowKey
    aggregate: WindowAggregate
    counts: dict[str, int] = field(default_factory=dict)
    quality: list[QualityPart] = field(default_factory=list)  # data quality: parts in partition order
    drifted: list[str] | None = None  # data quality: the features its provisional claim found drifted

    @property
    def model_key(self) -> str:
        """The model version the window belongs to."""
        return self.key.model_key


@dataclass(slots=True)
class DetectorStates:
    """A model version's change detectors as stored (state text by detector name), and the stamp a
    claim checks: if it moved since this read, another worker fed them meanwhile."""

    states: dict[str, str] = field(default_factory=dict)
    stamp: str = ""


@dataclass(slots=True)
class WindowRecords:
    """What one window publishes: its records and violations, in order."""

    key: WindowKey
    outputs: list[Output]
    note: str = ""  # a provisional claim's: the drifted features (JSON), kept until the window closes


@dataclass(slots=True)
class Claim:
    """One model version's windows to publish (oldest first) with its detectors' new states, to be
    taken only if the detectors' stamp is still `expect` (compare-and-set)."""

    model_key: str
    expect: str
    windows: list[WindowRecords]
    detectors: dict[str, str]  # the detectors these windows changed, by name

    @property
    def fed_to(self) -> float:
        """The end of the last window the detectors were fed."""
        return self.windows[-1].key.end


@dataclass(slots=True)
class ClaimResult:
    """What a claim took: windows marked closed (FINAL) or published provisionally, records queued,
    and the model versions whose detectors had moved (nothing of theirs was taken)."""

    windows: int = 0
    records: int = 0
    conflicts: set[str] = field(default_factory=set)


@dataclass(slots=True)
class CountsSnapshot:
    """One input partition's counters of the models asked for that no open window there carries,
    and their version (a take succeeds only if it has not moved)."""

    partition: int
    version: str
    counts: dict[str, dict[str, int]]  # model -> counter -> count (models in the order asked)


@dataclass(slots=True)
class CountsTake:
    """Counts to take from one partition, with the accounting records that report them."""

    partition: int
    version: str
    counts: dict[str, dict[str, int]]
    outputs: list[Output]


def merge_parts(resolution: float, parts: Iterable[WindowAggregate]) -> WindowAggregate:
    """One window's aggregate from its parts (one per input partition, plus what inferences added)."""
    merged = WindowAggregate(resolution)
    for part in parts:
        merged.merge(part)
    return merged


def merge_counts(*counters: Mapping[str, float]) -> dict[str, int]:
    """A window's counts when it closes: its model's counters plus the unattributed ones."""
    out: dict[str, int] = {}
    for counts in counters:
        for name, n in counts.items():
            out[name] = out.get(name, 0) + int(n)
    return out


def window_order(key: WindowKey) -> tuple[float, str, str]:
    """The order windows are closed and published in: by end, then model and version."""
    return (key.end, key.model, key.version)


class StateStore(Protocol):
    """Where the state lives (Redis for the worker, memory for replay); every method is atomic."""

    outbox_page: int  # `pending_outbox` returns at most this many outputs: fewer means it was the last page

    async def transact(self, jobs: list[Job]) -> Transacted:
        """For each job, load a StateView of its input partition for its ids and inputs (join entries
        live with the partition their records came from), call its `step(view)` and apply the result
        atomically; the jobs' partitions differ, and each job is a transaction of its own."""

    async def rolling_samples(self, due: list[RollingDue]) -> list[RollingDue]:
        """The rolling windows `transact` found due, with their samples (a store may return them
        from `transact` without, to read the samples once per batch, after all its partitions)."""

    async def expiry_candidates(
        self, partitions: set[int], horizon: float, clock: Clock | None = None
    ) -> dict[int, list[str]]:
        """Ids (or the store's handles for them) of these partitions' entries expiring before
        `horizon` (see `sweep_horizon`), a page at most; stale ones are skipped by the sweep.
        Partitions the clock says have nothing due are skipped (see `Clock.sweep_due`)."""

    async def oldest_beyond(self, partitions: set[int], limit: int) -> dict[int, list[str]]:
        """Per partition, ids (or handles) of the indexed entries that expire first, beyond the `limit`
        that expire last (what to evict when the pending state is over its bound; a page at most)."""

    async def clock(self) -> Clock:
        """Partition watermarks and the idle floor, read now."""

    async def raise_floor(self, when: float) -> None:
        """Advance the idle floor (never moves back)."""

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open (or sealed, not finished) windows whose end is at or before `until`, in `window_order`."""

    async def seal(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """Seal the windows (oldest first) in every partition and return each one not closed yet, its
        parts merged; of each partition, a model's counters go to the first of these windows of that
        model (counts that name no model never do: see `counts`). Repeatable: a window sealed already is returned as it
        was sealed."""

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows listed for a provisional record (see `StepResult.provisional`) ending at or before
        `until` whose record may not be published yet, in `window_order`."""

    async def provisional_state(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """The state so far of those windows that may still get a provisional record (their parts of
        every partition and what their inferences added, merged; the windows stay open)."""

    async def unlist_provisional(self, keys: list[WindowKey]) -> None:
        """Take the windows off the list of those waiting for a provisional record."""

    async def detectors(self, models: list[str], stage: Stage) -> dict[str, DetectorStates]:
        """Each model version's change detectors, with the stamp a claim of `stage` checks."""

    async def claim(self, claims: list[Claim], stage: Stage) -> ClaimResult:
        """For each claim whose detectors' stamp is still what was read: queue the records of each of
        its windows not closed (FINAL) or not closed nor published provisionally yet (PROVISIONAL),
        mark them so, and store the detectors' new states; the others are conflicts, left as they are."""

    async def finish(self, keys: list[WindowKey]) -> None:
        """Drop the sealed windows' state and remember them as closed (safe to repeat)."""

    async def counts(self, models: list[str]) -> list[CountsSnapshot]:
        """Per input partition, the counters of those of `models` that no window open in it will carry
        (the counts that name no model, `UNATTRIBUTED`, always)."""

    async def take_counts(self, takes: list[CountsTake]) -> set[int]:
        """Take each partition's counts and queue their records, unless its counters moved since they
        were read; returns the partitions taken."""

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs in the outbox (not atomically with any batch: rolling-window records)."""

    async def pending_outbox(self) -> list[Output]:
        """Outputs queued but not yet confirmed as published (the oldest first; possibly a page)."""

    async def confirm_outbox(self, count: int) -> None:
        """Drop the first `count` outbox entries of the last `pending_outbox`: they are published."""


def rolling_due(total: int, added: int, every: int) -> bool:
    """Whether a rolling window that just grew by `added` samples to `total` crossed a multiple of
    `every` (it is evaluated once per `every` samples, however they were batched)."""
    return total // every > (total - added) // every
