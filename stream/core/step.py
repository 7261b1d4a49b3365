"""The core step: one pure function of a batch of raw messages and the state it touches.

The step applies a batch's records (read beforehand: see `reading`) to a `StateView` (the join
entries of the batch's event ids, the offsets already applied, the partition watermarks) and
returns a `StepResult` (every state change and every output). It performs no I/O: the Redis store
(worker) and the memory store (replay, tests) load views and apply results, so the worker and the
replay compute exactly the same thing.
"""

from __future__ import annotations

import math
from dataclasses import replace

from stream.core.aggregate import WindowAggregate, subsample_mask
from stream.core.arrivals import count_arrival
from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.duplicates import fingerprint_of, inference_conflict, label_conflict
from stream.core.outputs import DEAD_LETTER_VALUE_BYTES, dead_letter
from stream.core.reading import Read, Reader
from stream.core.records import (
    INFERENCE,
    LABEL,
    REGRESSION,
    Inference,
    Joined,
    Label,
    RawMessage,
    canonical_class,
    shown,
)
from stream.core.segments import decode_segments
from stream.core.state import (
    DEAD_LETTER,
    JOINED,
    PENDING_INFERENCE,
    PENDING_LABEL,
    UNATTRIBUTED,
    JoinEntry,
    Output,
    StateView,
    StepResult,
    label_fingerprint,
)
from stream.core.windows import WindowKey, model_key
from stream.errors import RecordError


class Step:
    """Applies one batch to a state view; create one per batch."""

    def __init__(
        self, config: CoreConfig, catalog: Catalog, view: StateView, wall_clock: float = math.nan, partitions: int = 0
    ) -> None:
        self.config, self.catalog, self.view = config, catalog, view
        self.partitions = partitions  # of each input topic (0: unknown, the partition is not checked)
        self.wall_clock = wall_clock  # the reference for event times of messages without a Kafka timestamp
        self.result = StepResult()
        self.watermarks = dict(view.watermarks)

    def run(self, messages: list[RawMessage], reads: list[Read] | None = None) -> StepResult:
        """Process the batch in order; messages already applied (by offset) are skipped. Every message
        is joined, counted or dead-lettered: none can stop the batch. `reads` are the messages as
        read beforehand (see `reading`); without them they are read here."""
        if reads is None:
            reader = Reader(self.config, self.catalog, self.wall_clock, self.partitions)
            reads = [reader.read(msg) for msg in messages]
        for msg, read in zip(messages, reads, strict=True):
            done = self.result.checkpoints.get(
                (msg.topic, msg.partition), self.view.checkpoints.get((msg.topic, msg.partition), -1)
            )
            if msg.offset <= done:
                continue
            self.result.checkpoints[(msg.topic, msg.partition)] = msg.offset
            if read.error is not None:
                self._reject(msg, read.error)
                continue
            try:
                for instance in read.inferences:
                    self._inference(msg, instance.inference, instance.segments, instance.row)
                for label in read.labels:
                    self._label(msg, label)
            except RecordError as exc:
                self._reject(msg, exc)
            except Exception as exc:  # noqa: BLE001 - a record that trips a bug is dead-lettered, not fatal
                reason = (
                    f"internal error on this record ({type(exc).__name__}: {shown(str(exc), 200)}); please report it"
                )
                self._reject(msg, RecordError(reason))
        self.result.watermarks = {p: t for p, t in self.watermarks.items() if self.view.watermarks.get(p) != t}
        return self.result

    def sweep(self, candidates: dict[int, list[str]], now: float) -> StepResult:
        """Expire the listed entries whose time the stream's event time `now` has passed."""
        for ids in candidates.values():
            for event_id in ids:
                self._entry(event_id, now)  # expires the entry if its time has passed
        return self.result

    def evict(self, candidates: dict[int, list[str]]) -> StepResult:
        """Expire the listed entries now, before their time: the pending state is over its bound.
        Waiting inferences and labels are counted as evicted; join tombstones go silently."""
        for ids in candidates.values():
            for event_id in ids:
                entry = self.view.entries.get(event_id)
                if entry is not None:
                    self._expire(event_id, entry, "evicted")
        return self.result

    # -- helpers ---------------------------------------------------------------------------
    def _now(self, partition: int, side: str = "i") -> float:
        """Event time of one input partition (`i`: inferences, `l`: labels), or the idle floor if later."""
        return max(self.watermarks.get(f"{side}{partition}", -math.inf), self.view.floor)

    def _advance(self, partition: int, side: str, when: float) -> None:
        key = f"{side}{partition}"
        if when > self.watermarks.get(key, -math.inf):
            self.watermarks[key] = when

    def _entry(self, event_id: str, at: float) -> JoinEntry | None:
        """The entry of an event id as seen by a record of time `at`: expired entries count and vanish."""
        if event_id not in self.result.entries and event_id not in self.view.entries:
            self.result.missing.add(event_id)  # a message keyed by something else than its event id
            return None
        entry = self.result.entries.get(event_id, self.view.entries.get(event_id))
        if entry is not None and entry.expires < at:
            self._expire(event_id, entry)
            return None
        return entry

    def _expire(self, event_id: str, entry: JoinEntry, why: str = "expired") -> None:
        self.result.entries[event_id] = None
        self.result.unindex.setdefault(entry.partition, set()).add(event_id)
        if entry.state == PENDING_INFERENCE:
            self.result.count(entry.counter_key, f"{why}_inferences")
            self.result.outcomes[INFERENCE, why] += 1
        elif entry.state == PENDING_LABEL:
            self.result.count(UNATTRIBUTED, f"{why}_labels")
            self.result.outcomes[LABEL, why] += 1

    def _set(self, event_id: str, entry: JoinEntry, replaces: JoinEntry | None) -> None:
        if replaces is not None and replaces.partition != entry.partition:
            self.result.unindex.setdefault(replaces.partition, set()).add(event_id)
        self.result.entries[event_id] = entry

    def _reject(self, msg: RawMessage, exc: RecordError, model: str | None = None) -> None:
        """Count a record that cannot be used and dead-letter it with the reason."""
        self.result.count(model or exc.model or UNATTRIBUTED, "rejected")
        self.result.outcomes[msg.side, "rejected"] += 1
        letter = dead_letter(msg, exc.reason, exc.field)
        self.result.outputs.append(Output(DEAD_LETTER, letter["key"] or "", letter))

    # -- the join --------------------------------------------------------------------------
    def _pending_inference(self, inference: Inference, partition: int, segments: str) -> JoinEntry:
        expires = inference.time + self.config.label_ttl
        return JoinEntry(
            PENDING_INFERENCE,
            expires,
            partition,
            inference.model,
            inference.model_version,
            inference.time,
            inference.prediction,
            inference.score,
            segments=segments,
        )

    def _inference(
        self, msg: RawMessage, inference: Inference, segments: str = "", rows: list[str] | None = None
    ) -> None:
        now = self._now(msg.partition)
        entry = self._entry(inference.event_id, max(inference.time, self.view.floor))
        self._advance(msg.partition, "i", inference.time)
        self.result.saw_inference(inference.time)
        if entry is None:
            self._count_inference(inference, now, rows)
            self._set(inference.event_id, self._pending_inference(inference, msg.partition, segments), None)
        elif entry.state == PENDING_LABEL:
            self._count_inference(inference, now, rows)
            stored_label = RawMessage(
                LABEL, entry.topic, entry.partition, entry.offset, inference.event_id.encode(), entry.raw.encode()
            )
            # a label's time, stored or not (the record's Kafka timestamp, else the inference watermark
            # when it came), is its expiry minus the TTL; it judges the pair as when the label comes second
            label_at = entry.label_time if entry.label_time is not None else entry.expires - self.config.label_ttl
            judged = label_at if math.isfinite(label_at) else None
            if not self._match(
                msg.partition, inference, (entry.label, entry.label_time), judged, now, stored_label, entry, label_at,
                segments,
            ):  # fmt: skip
                self._set(inference.event_id, self._pending_inference(inference, msg.partition, segments), entry)
        else:
            differs = inference_conflict(entry, inference)
            if differs:
                self._conflict(msg, inference.event_id, entry.model or inference.model, differs)
            else:
                self.result.count(inference.model, "duplicates")
                self.result.outcomes[INFERENCE, "duplicate"] += 1

    def _conflict(self, msg: RawMessage, event_id: str, model: str, differs: str) -> None:
        """Dead-letter a record whose event id is taken by a record of other content (the first one
        stands), naming what differs, and count it as a conflict of the model."""
        self.result.count(model, "conflicts")
        self.result.outcomes[msg.side, "conflict"] += 1
        reason = f"conflicting duplicate of event {shown(event_id, 100)}: {differs} (the first record stands)"
        letter = dead_letter(msg, reason, "event_id")
        self.result.outputs.append(Output(DEAD_LETTER, letter["key"] or "", letter))

    def _count_inference(self, inference: Inference, now: float, rows: list[str] | None = None) -> None:
        """Count a new inference in its window, unless the window is final (see `arrivals`)."""
        count_arrival(self.result, self.config, self.catalog, inference, now, rows)

    def _label(self, msg: RawMessage, label: Label) -> None:
        # A label is judged by its time: its own `label_time`, else the time Kafka stored with the
        # record (Kafka Streams' default timestamp extractor), and by its partition's, which makes the
        # outcome independent of how the two topics interleave. Only a record without a timestamp
        # (none before Kafka 0.10) is judged by its arrival. The fingerprint keeps `label_time` alone.
        when = label.time if label.time is not None else msg.timestamp
        now = self._now(msg.partition, "l") if when is not None else self._now(msg.partition)
        entry = self._entry(label.event_id, max(when, self.view.floor) if when is not None else now)
        if when is not None:
            self._advance(msg.partition, "l", when)
        if entry is None:
            if when is None:
                when = self.watermarks.get(f"i{msg.partition}", math.inf)
            # Kept to dead-letter the label if it does not fit its model; bounded like a dead letter.
            raw = msg.value[:DEAD_LETTER_VALUE_BYTES].decode("utf-8", "replace") if msg.value else ""
            pending = JoinEntry(
                PENDING_LABEL,
                when + self.config.label_ttl,
                msg.partition,
                label=label.label,
                label_time=label.time,
                raw=raw,
                topic=msg.topic,
                offset=msg.offset,
            )
            self._set(label.event_id, pending, None)
        elif entry.state == PENDING_INFERENCE:
            inference = Inference(label.event_id, entry.model, entry.version, entry.time, entry.prediction, entry.score)
            label_at = when if when is not None else self._now(msg.partition)
            content = (label.label, label.time)
            self._match(msg.partition, inference, content, when, now, msg, entry, label_at, entry.segments)
        else:
            differs = label_conflict(entry, label)
            if differs:
                self._conflict(msg, label.event_id, entry.counter_key, differs)
            else:
                self.result.count(entry.counter_key, "duplicates")
                self.result.outcomes[LABEL, "duplicate"] += 1

    def _match(
        self,
        partition: int,
        inference: Inference,
        content: tuple[str | int | float | bool, float | None],
        label_time: float | None,
        now: float,
        label_msg: RawMessage,
        stored: JoinEntry,
        label_at: float,
        segments: str = "",
    ) -> bool:
        """Join `inf` with its label (`content`: its value and own `label_time`); a label that does
        not fit the model is dead-lettered instead.

        The pair is late when its label's time (`label_time`: own or stored by Kafka, None for an
        untimed label) is past the window's end plus grace, or when the partition the second side
        came from had already passed that point: then the window may be closed, and no partition
        behind it can have let it close earlier.
        """
        label, own_time = content
        try:
            y_true = canonical_class(label, "label", self.catalog.problem_type(inference.model))
            self.catalog.check_class(inference.model, y_true, "label")
        except RecordError as exc:
            self._reject(label_msg, exc, inference.model)
            return False
        self._set(
            inference.event_id,
            JoinEntry(
                JOINED,
                inference.time + self.config.label_ttl,
                partition,
                inference.model,
                fingerprints=fingerprint_of(inference) + label_fingerprint(label, own_time),
            ),
            stored,
        )
        sample = Joined(
            inference.model,
            inference.model_version,
            inference.time,
            y_true,
            inference.prediction,
            inference.score,
            subsample_mask(inference.event_id) if self.config.deviations else 0,
        )
        self.result.joined += 1
        window = WindowKey.of(sample, self.config.window_seconds)
        deadline = window.end + self.config.label_grace
        if deadline <= now or (label_time is not None and label_time > deadline):
            self.result.count(inference.model, "late")
            self.result.outcomes[INFERENCE, "late"] += 1
            self.result.outcomes[LABEL, "late"] += 1
        else:
            self.result.outcomes[INFERENCE, "joined"] += 1
            self.result.outcomes[LABEL, "joined"] += 1
            aggregate = self.result.windows.get(window)
            if aggregate is None:
                aggregate = self.result.windows[window] = WindowAggregate(self.config.score_resolution)
            regression = self.catalog.problem_type(inference.model) == REGRESSION
            aggregate.add(sample, regression)
            aggregate.add_delay(label_at - inference.time)
            if segments:  # each segment's counters: no subsamples (deviations are the whole window's)
                plain = replace(sample, subsamples=0)
                for key, value in decode_segments(segments):
                    aggregate.segment(key, value).add(plain, regression)
        if self.config.rolling_size > 0:
            self.result.rolling.setdefault(model_key(inference.model, inference.model_version), []).append(sample)
        return True
