"""Drives the pure core over a state store: the same engine serves the worker and replay.

Per batch: load the state the batch touches, run the core step, apply the result
atomically (with the input offsets, so a batch seen again after a crash changes
nothing), expire what timed out, then close every window the stream's event
time has passed, evaluating it and queueing its records in the store's outbox.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from stream.aggregate import WindowAggregate
from stream.catalog import Catalog
from stream.core import Output, Step, StepResult, event_ids
from stream.records import REGRESSION, Joined, RawMessage
from stream.reports import evaluate, window_doc
from stream.settings import Settings
from stream.windows import WindowKey, is_due, split_model_key, stream_time


@dataclass(slots=True)
class RollingDue:
    """A rolling window due for evaluation: the model version, its sample count so far, and its
    samples as columns (event times, actual and predicted classes, scores or None)."""

    model_key: str
    sequence: int
    times: list[float]
    y_true: list[str]
    y_pred: list[str]
    scores: list[float | None]

    @classmethod
    def of(cls, model_key: str, sequence: int, samples: Iterable[Joined]) -> "RollingDue":
        """The columns of these samples."""
        rows = [(s.time, s.y_true, s.y_pred, s.score) for s in samples]
        times, y_true, y_pred, scores = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
        return cls(model_key, sequence, times, y_true, y_pred, scores)


@dataclass(slots=True)
class BatchReport:
    """What one batch did, for logs and progress."""

    messages: int = 0
    joined: int = 0
    dead_letters: int = 0
    closed_windows: int = 0


class StateStore(Protocol):
    """Where the state lives (Redis for the worker, memory for replay); every method is atomic."""

    async def transact(
        self, ids: set[str], inputs: set[tuple[str, int]], step: Any
    ) -> tuple[StepResult, list[RollingDue]]:
        """Load a StateView for `ids` and `inputs`, call `step(view)`, apply its result atomically."""

    async def expiry_candidates(self, partitions: set[int], now: float) -> dict[int, list[str]]:
        """Event ids of these partitions' expiry indexes due at or before `now`."""

    async def clock(self) -> tuple[dict[str, float], float]:
        """Partition watermarks and the idle floor."""

    async def raise_floor(self, when: float) -> None:
        """Advance the idle floor (never moves back)."""

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open windows whose end is at or before `until`."""

    async def close_windows(self, keys: list[WindowKey], build: Any) -> int:
        """Atomically take the windows (oldest first) and their models' counters, call
        `build(key, agg, counts)` for each window's outputs (a model's counts, and the
        unattributed ones, go to its first window), queue them in the outbox and delete the
        windows. Returns how many closed (one closed by another worker first is skipped)."""

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs in the outbox."""

    async def pending_outbox(self) -> list[Output]:
        """Outputs queued but not yet confirmed as published."""

    async def confirm_outbox(self, count: int) -> None:
        """Drop the first `count` outbox entries: they are published."""


class Engine:
    """The monitor: feeds batches through the core and closes windows by event time."""

    def __init__(self, settings: Settings, catalog: Catalog, store: StateStore, partitions: int) -> None:
        self.settings, self.catalog, self.store, self.partitions = settings, catalog, store, partitions

    async def process(self, messages: list[RawMessage]) -> BatchReport:
        """Handle one batch; outputs are queued in the store's outbox (see `pending_outbox`)."""
        report = BatchReport(messages=len(messages))
        if not messages:
            report.closed_windows = await self.close_due()
            return report
        ids = event_ids(messages, self.settings)
        inputs = {(m.topic, m.partition) for m in messages}
        result, rolling = await self.store.transact(
            ids, inputs, lambda view: Step(self.settings, self.catalog, view).run(messages)
        )
        report.joined = result.joined
        report.dead_letters = len(result.dead_letters)
        if rolling:
            await self.store.enqueue([out for due in rolling for out in self._rolling(due)])
        # The clock is read after the write, not taken from the batch's own read: of two workers
        # finishing their last batches together, the later reader then sees both watermarks and
        # closes the windows (from their reads, each could miss the other's, and nothing would
        # close until more input came). The expiry sweep moves no watermark: one read serves both.
        now = await self.now()
        await self.expire({m.partition for m in messages}, now)
        report.closed_windows = await self.close_due(now)
        return report

    async def now(self) -> float:
        """The stream's event time (see `stream_time`)."""
        watermarks, floor = await self.store.clock()
        return stream_time(watermarks, self.partitions, floor)

    async def expire(self, partitions: set[int], now: float) -> None:
        """Expire the waiting entries of these partitions that the stream's event time `now` has passed."""
        candidates = await self.store.expiry_candidates(partitions, now)
        if any(candidates.values()):
            await self.store.transact(
                set().union(*candidates.values()),
                set(),
                lambda view: Step(self.settings, self.catalog, view).sweep(candidates, now),
            )

    async def close_due(self, now: float | None = None) -> int:
        """Close every window the stream's event time has passed; returns how many closed."""
        if now is None:
            now = await self.now()
        if now == -math.inf:
            return 0
        due = [
            k
            for k in await self.store.open_windows(now - self.settings.label_grace)
            if is_due(k, now, self.settings.label_grace)
        ]
        return await self.store.close_windows(due, self._evaluate) if due else 0

    async def idle(self, wall_clock: float) -> int:
        """Called when no input came for `idle_close` seconds: event time jumps to the wall clock."""
        await self.store.raise_floor(wall_clock)
        return await self.close_due()

    def _evaluate(self, key: WindowKey, agg: WindowAggregate, counts: dict[str, int]) -> list[Output]:
        window = window_doc("tumbling", key.start, key.end)
        record, violations = evaluate(key.model, key.version, window, agg, counts, self.settings, self.catalog)
        return self._outputs(key.model, record, violations)

    def _rolling(self, due: RollingDue) -> list[Output]:
        model, version = split_model_key(due.model_key)
        agg = WindowAggregate(self.settings.score_resolution)
        scores = due.scores if any(s is not None for s in due.scores) else None
        agg.add_columns(due.y_true, due.y_pred, scores, self.catalog.problem_type(model) == REGRESSION)
        window = window_doc("rolling", min(due.times), max(due.times), size=len(due.times), sequence=due.sequence)
        record, violations = evaluate(model, version, window, agg, {}, self.settings, self.catalog)
        return self._outputs(model, record, violations)

    def _outputs(self, model: str, record: dict[str, Any], violations: list[dict[str, Any]]) -> list[Output]:
        out = [Output(self.settings.metrics_topic, model, record)]
        out.extend(Output(self.settings.violations_topic, model, v) for v in violations)
        return out
