"""Drives the pure core over a state store: the same engine serves the worker and replay.

Per batch: load the state the batch touches, run the core step, apply the result atomically (with
the input offsets, so a batch seen again after a crash changes nothing), expire what timed out,
then close every window the stream's event time has passed: the store seals it, the core evaluates
it, the store claims its records for the outbox (see `contract`). The store never calls back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from stream.core.aggregate import WindowAggregate
from stream.core.catalog import Catalog
from stream.core.change_events import SCORE_METRIC, change_event, outcomes
from stream.core.changes import SCORE_DETECTOR, Detector
from stream.core.config import CoreConfig
from stream.core.contract import (
    FINAL,
    PROVISIONAL,
    Claim,
    Clock,
    CountsTake,
    DetectorStates,
    Job,
    RollingDue,
    SealedWindow,
    Stage,
    StateStore,
    WindowRecords,
    merge_counts,
)
from stream.core.dataquality.window import drifted_note, name_drifted, window_quality
from stream.core.outputs import PROVISIONAL_KIND, accounting_record, evaluate, provisional_record, window_doc
from stream.core.reading import Read, Reader, event_ids
from stream.core.records import REGRESSION, SEP, RawMessage
from stream.core.state import METRICS, VIOLATION, Output, StateView, StepResult, sweep_horizon, widen
from stream.core.step import Step
from stream.core.windows import WindowKey, is_due, split_model_key, stream_time
from stream.errors import StateError

# Claims retried before giving up: each retry means another worker fed the same model version's
# detectors between this one's read and its claim, which a few workers cannot do fifty times running.
MAX_CLAIMS = 50


@dataclass(slots=True)
class BatchReport:
    """What one batch did, for logs and progress."""

    messages: int = 0
    joined: int = 0
    dead_letters: int = 0
    late: int = 0
    closed_windows: int = 0
    provisional: int = 0  # provisional records queued
    accounting_records: int = 0
    queued: int = 0  # records this batch queued in the outbox (nothing to publish when 0)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (side, outcome): see StepResult
    dead_letter_fields: Counter[str] = field(default_factory=Counter)  # the field each dead letter names
    inference_times: tuple[float, float] | None = None  # earliest and latest inference time read
    stream_time: float = -math.inf  # the stream time after the batch (see `windows.stream_time`)


class Engine:
    """Feeds batches through the core step over a state store and closes windows by event time."""

    def __init__(self, config: CoreConfig, catalog: Catalog, store: StateStore, partitions: int) -> None:
        self.config, self.catalog, self.store, self.partitions = config, catalog, store, partitions

    async def process(self, messages: list[RawMessage], wall_clock: float) -> BatchReport:
        """Handle one batch; outputs are queued in the store's outbox (see `pending_outbox`).
        `wall_clock` is the reference for the event times of messages that carry no Kafka timestamp."""
        report = BatchReport(messages=len(messages))
        if not messages:
            report.provisional, report.closed_windows = await self._publish_due(await self.read_stream_time())
            report.queued = report.closed_windows + report.provisional
            return report
        jobs = self.jobs(messages, wall_clock)
        done = await self.store.transact(jobs)
        counted: set[str] = set()
        rolling: dict[str, RollingDue] = {}
        for result, due in done.results:
            report.joined += result.joined
            report.inference_times = widen(report.inference_times, result.inference_times)
            letters = result.dead_letters
            report.dead_letters += len(letters)
            report.outcomes.update(result.outcomes)
            report.dead_letter_fields.update(letter["field"] or "" for letter in letters)
            report.queued += len(result.outputs)
            report.late += sum(c.get("late", 0) for c in result.counters.values())
            counted |= set(result.counters)
            for d in due:  # partitions of one batch are one boundary: its model's latest due window
                if d.model_key not in rolling or d.sequence > rolling[d.model_key].sequence:
                    rolling[d.model_key] = d
        if rolling:
            due_windows = await self.store.rolling_samples(list(rolling.values()))
            outputs = [out for due in due_windows for out in self._rolling(due)]
            await self.store.enqueue(outputs)
            report.queued += len(outputs)
        # The clock is read after the write, not taken from the batch's own read: of two workers
        # finishing their last batches together, the later reader then sees both watermarks and
        # closes the windows (from their reads, each could miss the other's, and nothing would
        # close until more input came). The expiry sweep moves no watermark: one read serves both.
        clock = done.clock or await self.store.clock()
        now = report.stream_time = self.stream_time_of(clock)
        counted |= await self.expire({job.partition for job in jobs}, now, report.outcomes, clock)
        report.provisional, report.closed_windows = await self._publish_due(now)
        report.queued += report.closed_windows + report.provisional
        if counted:
            report.accounting_records = await self.account(counted, now)
            report.queued += report.accounting_records
        return report

    def jobs(self, messages: list[RawMessage], wall_clock: float) -> list[Job]:
        """The core step over a batch, one store transaction per input partition (its state is one Redis
        hash slot); each message is read here, once, however many times the store runs the step."""
        by_partition: dict[int, list[RawMessage]] = {}
        for msg in messages:
            by_partition.setdefault(msg.partition, []).append(msg)
        reader, out = Reader(self.config, self.catalog, wall_clock, self.partitions), []
        for partition, group in by_partition.items():
            reads = [reader.read(m) for m in group]
            inputs = {(m.topic, m.partition) for m in group}
            out.append(Job(partition, event_ids(reads), inputs, partial(self._step, group, reads, wall_clock)))
        return out

    def _step(self, messages: list[RawMessage], reads: list[Read], wall_clock: float, view: StateView) -> StepResult:
        return Step(self.config, self.catalog, view, wall_clock, self.partitions).run(messages, reads)

    async def read_stream_time(self) -> float:
        """The stream time (see `stream_time`), from the clock read from the store now."""
        return self.stream_time_of(await self.store.clock())

    def stream_time_of(self, clock: Clock) -> float:
        """The stream time a clock gives (see `stream_time`)."""
        return stream_time(clock.watermarks, self.partitions, clock.floor)

    async def expire(
        self, partitions: set[int], now: float, outcomes: Counter[tuple[str, str]], clock: Clock | None = None
    ) -> set[str]:
        """Expire the waiting entries of these partitions that the stream's event time `now` has passed;
        then, if the pending state is over its bound, evict the entries that would expire first.
        Returns the models (counter keys) whose counts this changed; adds the records' outcomes.
        `clock`, read with the batch's writes, lets the store skip partitions with nothing due."""
        horizon = sweep_horizon(now, self.config.label_ttl)
        candidates = await self.store.expiry_candidates(partitions, horizon, clock)
        counted = await self._sweep(candidates, lambda step, ids: step.sweep(ids, now), outcomes)
        if self.config.max_pending:
            per_partition = max(1, -(-self.config.max_pending // max(self.partitions, 1)))
            over = await self.store.oldest_beyond(partitions, per_partition)
            counted |= await self._sweep(over, lambda step, ids: step.evict(ids), outcomes)
        return counted

    async def _sweep(
        self,
        candidates: dict[int, list[str]],
        apply: Callable[[Step, dict[int, list[str]]], StepResult],
        outcomes: Counter[tuple[str, str]],
    ) -> set[str]:
        """Run `apply(step, {partition: ids})` on the listed entries, a transaction per partition;
        returns the models whose counts it changed."""
        done = await self.store.transact(
            [
                Job(
                    p,
                    set(ids),
                    set(),
                    partial(self._sweep_step, apply, {p: ids}),
                )
                for p, ids in candidates.items()
                if ids
            ]
        )
        for result, _ in done.results:
            outcomes.update(result.outcomes)
        return {model for result, _ in done.results for model in result.counters}

    def _sweep_step(
        self, apply: Callable[[Step, dict[int, list[str]]], StepResult], ids: dict[int, list[str]], view: StateView
    ) -> StepResult:
        return apply(Step(self.config, self.catalog, view), ids)

    async def close_due(self, now: float | None = None) -> int:
        """Close every window the stream's event time has passed; returns how many closed."""
        if now is None:
            now = await self.read_stream_time()
        if now == -math.inf:
            return 0
        due = [
            k
            for k in await self.store.open_windows(now - self.config.label_grace)
            if is_due(k, now, self.config.label_grace)
        ]
        if not due:
            return 0
        sealed = await self.store.seal(due)
        closed = 0
        for _ in range(MAX_CLAIMS):
            pending = by_model(sealed)
            if not pending:
                break
            claimed, conflicts = await self._claim(pending, FINAL)
            closed += claimed
            if not conflicts:
                break
            # another worker fed these detectors meanwhile: seal again (closed windows drop out)
            sealed = await self.store.seal(
                [w.key for model_version, ws in pending.items() if model_version in conflicts for w in ws]
            )
        else:
            raise StateError(f"could not close {len(due)} windows after {MAX_CLAIMS} attempts")
        await self.store.finish(due)
        return closed

    async def provisional_due(self, now: float) -> int:
        """Publish the provisional record (label coverage so far, label-free estimates) of every window
        the stream's event time has passed (its inferences are complete, its labels need not be);
        returns how many records were queued."""
        if now == -math.inf:
            return 0
        due = await self.store.provisional_due(now)
        if not due:
            return 0
        pending = by_model(await self.store.provisional_state(due))
        queued = 0
        for _ in range(MAX_CLAIMS):
            if not pending:
                break
            records, conflicts = await self._claim(pending, PROVISIONAL)
            queued += records
            pending = {
                model_version: windows for model_version, windows in pending.items() if model_version in conflicts
            }
        else:
            raise StateError(f"could not publish {len(due)} provisional records after {MAX_CLAIMS} attempts")
        await self.store.unlist_provisional(due)
        return queued

    async def _claim(self, pending: dict[str, list[SealedWindow]], stage: Stage) -> tuple[int, set[str]]:
        """Evaluate each model version's windows on its detectors as read and claim their records;
        returns the windows closed (FINAL) or records queued (PROVISIONAL), and the model versions
        whose detectors moved meanwhile (nothing of theirs was taken)."""
        detectors = await self.store.detectors(list(pending), stage)
        claims = [
            self._evaluate_model(model_version, windows, detectors[model_version], stage)
            for model_version, windows in pending.items()
        ]
        result = await self.store.claim(claims, stage)
        return (result.windows if stage == FINAL else result.records), result.conflicts

    def _evaluate_model(
        self, model_version: str, windows: list[SealedWindow], detectors: DetectorStates, stage: Stage
    ) -> Claim:
        """One model version's windows evaluated in order, each on the detectors the last one left."""
        states, changed = dict(detectors.states), {}
        records = []
        for window in windows:
            if stage == FINAL:
                outputs, new = self._evaluate(window.key, window.aggregate, window.counts, states)
                name_drifted(outputs, window.drifted)
            else:
                outputs, new = self._provisional(window, states)
            states.update(new)
            changed.update(new)
            records.append(WindowRecords(window.key, outputs, drifted_note(outputs)))
        return Claim(model_version, detectors.stamp, records, changed)

    async def account(self, models: set[str], now: float) -> int:
        """Report the counts (late, expired, ...) of these models that no open window will carry, in
        accounting records; returns how many were taken."""
        ordered = sorted(models)
        taken, partitions = 0, None
        for _ in range(MAX_CLAIMS):
            takes = []
            for snapshot in await self.store.counts(ordered):
                if partitions is not None and snapshot.partition not in partitions:
                    continue
                outputs, take = [], {}
                for model, raw in snapshot.counts.items():
                    counts = merge_counts(raw)
                    if any(counts.values()):
                        outputs += self._accounting(model, counts, now)
                        take[model] = counts
                if take:
                    takes.append(CountsTake(snapshot.partition, snapshot.version, take, outputs))
            done = await self.store.take_counts(takes) if takes else set()
            taken += sum(len(t.counts) for t in takes if t.partition in done)
            partitions = {t.partition for t in takes if t.partition not in done}
            if not partitions:
                return taken
        raise StateError(f"could not take the counts of {len(models)} models after {MAX_CLAIMS} attempts")

    async def sweep(self, partitions: set[int]) -> BatchReport:
        """The worker's timer: expire the waiting entries of these partitions that the stream's event
        time passed, idle partitions' too (a batch sweeps only its own), and publish what is due."""
        report = BatchReport()
        clock = await self.store.clock()
        now = report.stream_time = self.stream_time_of(clock)
        counted = await self.expire(partitions, now, report.outcomes, clock)
        report.provisional, report.closed_windows = await self._publish_due(now)
        if counted:
            report.accounting_records = await self.account(counted, now)
        report.queued = report.provisional + report.closed_windows + report.accounting_records
        return report

    async def idle(self, wall_clock: float) -> int:
        """Called when no input came for `idle_close` seconds: event time jumps to the wall clock."""
        await self.store.raise_floor(wall_clock)
        return sum(await self._publish_due(await self.read_stream_time()))

    async def _publish_due(self, now: float) -> tuple[int, int]:
        """Queue what event time `now` made due: provisional records, then closed windows (counts of each)."""
        return await self.provisional_due(now), await self.close_due(now)

    def _evaluate(
        self, key: WindowKey, aggregate: WindowAggregate, counts: dict[str, int], detectors: Mapping[str, str]
    ) -> tuple[list[Output], dict[str, str]]:
        window = window_doc("tumbling", key.start, key.end)
        record, violations = evaluate(key.model, key.version, window, aggregate, counts, self.config, self.catalog)
        changed: dict[str, str] = {}
        if self.config.change_delta and record["problem_type"] != REGRESSION:
            changed = self._detect(key, aggregate, record, detectors, violations)
        return self._outputs(key.model, record, violations), changed

    def _detect(
        self,
        key: WindowKey,
        aggregate: WindowAggregate,
        record: dict[str, Any],
        detectors: Mapping[str, str],
        events: list[dict[str, Any]],
    ) -> dict[str, str]:
        """Feed the window's outcomes (and each segment's), from its aggregate, to their change
        detectors; add a change event (about `record`) for each change found. Returns the detectors'
        new states."""
        changed = {}
        for name, segment, n, errors in outcomes(aggregate, self.config.segment_cap):
            detector = Detector.load(detectors.get(name), self.config.change_delta)
            if detector.fed_to >= key.end:  # fed already (a window is closed once: cannot happen)
                continue
            change = detector.feed(key.start, key.end, n, errors, f"{key.encode()}{SEP}{name}")
            changed[name] = detector.dump()
            if change is not None:
                events.append(change_event(record, change, segment, self.config.change_delta))
        return changed

    def _provisional(self, sealed: SealedWindow, detectors: Mapping[str, str]) -> tuple[list[Output], dict[str, str]]:
        """The provisional record and, with a data-quality baseline, the data-quality record."""
        key, aggregate = sealed.key, sealed.aggregate
        window = window_doc(PROVISIONAL_KIND, key.start, key.end)
        record, violations = provisional_record(key.model, key.version, window, aggregate, self.config, self.catalog)
        first: list[Output] = []
        if (baseline := self.catalog.quality(key.model)) is not None:
            cap, parts = self.config.segment_cap, sealed.quality
            quality, found = window_quality(key.model, key.version, key.start, key.end, parts, baseline, cap)
            first = self._outputs(key.model, quality, found)
            name_drifted([Output(VIOLATION, key.model, v) for v in violations], quality["drifted_features"])
        changed: dict[str, str] = {}
        counts = aggregate.score_counts() if self.config.change_delta else {}
        if counts:  # label-free: the score distribution's detector, fed as the window's inferences complete
            detector = Detector.load(detectors.get(SCORE_DETECTOR), self.config.change_delta)
            if detector.fed_to < key.end:
                change = detector.feed_values(key.start, key.end, counts, f"{key.encode()}{SEP}{SCORE_DETECTOR}")
                changed[SCORE_DETECTOR] = detector.dump()
                if change is not None:
                    violations.append(change_event(record, change, None, self.config.change_delta, SCORE_METRIC))
        return first + self._outputs(key.model, record, violations), changed

    def _accounting(self, model: str, counts: dict[str, int], now: float) -> list[Output]:
        """The accounting record of a model's counts that no window carries."""
        return [Output(METRICS, model, accounting_record(model, counts, now, self.catalog))]

    def _rolling(self, due: RollingDue) -> list[Output]:
        model, version = split_model_key(due.model_key)
        aggregate = WindowAggregate(self.config.score_resolution)
        scores = due.scores if any(s is not None for s in due.scores) else None
        aggregate.add_columns(due.y_true, due.y_pred, scores, self.catalog.problem_type(model) == REGRESSION)
        window = window_doc("rolling", min(due.times), max(due.times), size=len(due.times), sequence=due.sequence)
        record, violations = evaluate(model, version, window, aggregate, {}, self.config, self.catalog)
        return self._outputs(model, record, violations)

    def _outputs(self, model: str, record: dict[str, Any], violations: list[dict[str, Any]]) -> list[Output]:
        out = [Output(METRICS, model, record)]
        out.extend(Output(VIOLATION, model, v) for v in violations)
        return out


def by_model(windows: list[SealedWindow]) -> dict[str, list[SealedWindow]]:
    """Windows grouped by model version, each group oldest first (a model version's detectors are
    fed its windows in order)."""
    groups: dict[str, list[SealedWindow]] = {}
    for window in sorted(windows, key=lambda w: (w.key.end, w.key.start)):
        groups.setdefault(window.model_key, []).append(window)
    return groups
