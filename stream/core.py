"""The monitor's core: one pure step over a batch of raw messages.

The step reads a `StateView` (the join entries of the batch's event ids, the
offsets already applied, the partition watermarks) and returns a `StepResult`
(every state change and every output). It performs no I/O: the Redis store
(worker) and the memory store (replay, tests) load views and apply results,
so the worker and the replay compute exactly the same thing.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stream.aggregate import WindowAggregate
from stream.catalog import Catalog
from stream.errors import RecordError
from stream.records import (
    REGRESSION,
    Inference,
    Joined,
    Label,
    RawMessage,
    canonical_class,
    decode_json,
    parse_inference,
    parse_label,
)
from stream.reports import dead_letter
from stream.sagemaker import capture_to_inference, ground_truth_to_label, is_capture, is_ground_truth
from stream.settings import Settings
from stream.windows import SEP, WindowKey, model_key

PENDING_INFERENCE = "I"
PENDING_LABEL = "L"
JOINED = "J"
UNATTRIBUTED = ""  # counter key for records whose model is not known


@dataclass(slots=True)
class JoinEntry:
    """What is stored under an event id: a pending side, or a tombstone of a finished join."""

    kind: str
    expires: float  # event time at which an unmatched entry counts as expired
    partition: int
    data: dict[str, Any]

    def encode(self) -> str:
        """Compact text for storage: kind, expiry and partition, then the kind's fields, joined by
        SEP (names and classes cannot contain it, see `records`); a pending label's fields as JSON.
        One is written per event, and this is about four times faster than JSON throughout."""
        head = f"{self.kind}{SEP}{self.expires!r}{SEP}{self.partition}{SEP}"
        d = self.data
        if self.kind == PENDING_INFERENCE:
            score = "" if d["s"] is None else repr(d["s"])
            return f"{head}{d['t']!r}{SEP}{score}{SEP}{d['m']}{SEP}{d['v']}{SEP}{d['y']}"
        if self.kind == JOINED:
            return head + d["m"]
        return head + json.dumps(d, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | bytes) -> "JoinEntry":
        """Inverse of `encode`."""
        if isinstance(text, bytes):
            text = text.decode()
        if text.startswith("["):  # the JSON form truthstream 0.1.0 wrote
            kind, expires, partition, data = json.loads(text)
            return cls(kind, math.inf if expires is None else expires, partition, data)
        kind, expires, partition, rest = text.split(SEP, 3)
        if kind == PENDING_INFERENCE:
            t, score, model, version, y = rest.split(SEP, 4)
            data = {"m": model, "v": version, "t": float(t), "y": y, "s": float(score) if score else None}
        elif kind == JOINED:
            data = {"m": rest}
        else:
            data = json.loads(rest)
        return cls(kind, float(expires), int(partition), data)

    @property
    def counter_key(self) -> str:
        """The model a pending or joined entry is attributed to, if known."""
        return str(self.data.get("m", UNATTRIBUTED))


@dataclass(slots=True)
class Output:
    """A record to publish: topic, key and JSON-able value."""

    topic: str
    key: str
    value: dict[str, Any]


@dataclass(slots=True)
class StateView:
    """The part of the state one batch needs, as loaded by a store."""

    entries: dict[str, JoinEntry | None]
    checkpoints: dict[tuple[str, int], int]
    watermarks: dict[str, float]  # "i<partition>" / "l<partition>" -> latest event time seen
    floor: float = -math.inf


@dataclass(slots=True)
class StepResult:
    """Every change and output of one batch, for a store to apply atomically."""

    entries: dict[str, JoinEntry | None] = field(default_factory=dict)  # None deletes
    unindex: dict[int, set[str]] = field(default_factory=dict)  # expiry-index removals per partition
    windows: dict[WindowKey, WindowAggregate] = field(default_factory=dict)
    counters: dict[str, Counter[str]] = field(default_factory=dict)
    watermarks: dict[str, float] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int], int] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    rolling: dict[str, list[Joined]] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)  # queued in the outbox with the state change
    joined: int = 0
    missing: set[str] = field(default_factory=set)  # ids the view lacked: the store loads them and runs again

    def count(self, key: str, what: str, n: int = 1) -> None:
        """Add to a per-model counter (late, expired, duplicates, rejected)."""
        self.counters.setdefault(key, Counter())[what] += n


def event_ids(messages: list[RawMessage], settings: Settings) -> set[str]:
    """The event ids a batch touches, read cheaply so a store can prefetch their entries."""
    ids = set()
    for msg in messages:
        if msg.key:
            try:
                ids.add(msg.key.decode("utf-8"))
                continue
            except UnicodeDecodeError:
                pass
        try:
            doc = decode_json(msg.value, settings.max_record_bytes)
        except RecordError:
            continue
        if isinstance(doc.get("event_id"), (str, int)) and not isinstance(doc.get("event_id"), bool):
            ids.add(str(doc["event_id"]).strip())
    return ids


class Step:
    """Applies one batch to a state view; create one per batch."""

    def __init__(self, settings: Settings, catalog: Catalog, view: StateView) -> None:
        self.settings, self.catalog, self.view = settings, catalog, view
        self.result = StepResult()
        self.watermarks = dict(view.watermarks)
        self.capture_format = settings.capture_format

    def run(self, messages: list[RawMessage]) -> StepResult:
        """Process the batch in order; messages already applied (by offset) are skipped."""
        for msg in messages:
            done = self.result.checkpoints.get(
                (msg.topic, msg.partition), self.view.checkpoints.get((msg.topic, msg.partition), -1)
            )
            if msg.offset <= done:
                continue
            self.result.checkpoints[(msg.topic, msg.partition)] = msg.offset
            try:
                doc = decode_json(msg.value, self.settings.max_record_bytes)
                if msg.topic == self.settings.inference_topic:
                    if is_capture(doc):  # forwarded unchanged from SageMaker data capture
                        doc = capture_to_inference(doc, self.capture_format, self.settings.capture_model)
                    inference = parse_inference(doc, self.catalog.problem_type)
                    self.catalog.check_class(inference.model, inference.prediction, "prediction")
                    self._inference(msg, inference)
                else:
                    if is_ground_truth(doc):
                        doc = ground_truth_to_label(doc)
                    self._label(msg, parse_label(doc))
            except RecordError as exc:
                self._reject(msg, exc)
        self.result.watermarks = {p: t for p, t in self.watermarks.items() if self.view.watermarks.get(p) != t}
        self.result.outputs = [
            Output(self.settings.dead_letter_topic, d["key"] or "", d) for d in self.result.dead_letters
        ]
        return self.result

    def sweep(self, candidates: dict[int, list[str]], now: float) -> StepResult:
        """Expire the listed entries whose time the stream's event time `now` has passed."""
        for ids in candidates.values():
            for event_id in ids:
                self._entry(event_id, now)  # expires the entry if its time has passed
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

    def _expire(self, event_id: str, entry: JoinEntry) -> None:
        self.result.entries[event_id] = None
        self.result.unindex.setdefault(entry.partition, set()).add(event_id)
        if entry.kind == PENDING_INFERENCE:
            self.result.count(entry.counter_key, "expired_inferences")
        elif entry.kind == PENDING_LABEL:
            self.result.count(UNATTRIBUTED, "expired_labels")

    def _set(self, event_id: str, entry: JoinEntry, replaces: JoinEntry | None) -> None:
        if replaces is not None and replaces.partition != entry.partition:
            self.result.unindex.setdefault(replaces.partition, set()).add(event_id)
        self.result.entries[event_id] = entry

    def _reject(self, msg: RawMessage, exc: RecordError) -> None:
        self.result.count(exc.model or UNATTRIBUTED, "rejected")
        self.result.dead_letters.append(dead_letter(msg, exc.reason, exc.field))

    # -- the join --------------------------------------------------------------------------
    def _pending_inference(self, inf: Inference, partition: int) -> JoinEntry:
        data = {"m": inf.model, "v": inf.model_version, "t": inf.time, "y": inf.prediction, "s": inf.score}
        return JoinEntry(PENDING_INFERENCE, inf.time + self.settings.label_ttl, partition, data)

    def _inference(self, msg: RawMessage, inf: Inference) -> None:
        now = self._now(msg.partition)
        entry = self._entry(inf.event_id, max(inf.time, self.view.floor))
        self._advance(msg.partition, "i", inf.time)
        if entry is None:
            self._set(inf.event_id, self._pending_inference(inf, msg.partition), None)
        elif entry.kind == PENDING_LABEL:
            d = entry.data
            stored_label = RawMessage(d["tp"], entry.partition, d["o"], inf.event_id.encode(), d["raw"].encode())
            # "y": the label as JSON text, in entries that truthstream 0.1.0 wrote (kept for upgrades)
            value = d["v"] if "v" in d else json.loads(d["y"])
            if not self._match(msg.partition, inf, value, d.get("lt"), now, stored_label, entry):
                self._set(inf.event_id, self._pending_inference(inf, msg.partition), entry)
        else:
            self.result.count(inf.model, "duplicates")

    def _label(self, msg: RawMessage, label: Label) -> None:
        # A timed label is judged by its own time and its partition's, which makes the outcome
        # independent of how the two topics interleave; an untimed one by its arrival.
        now = self._now(msg.partition, "l") if label.time is not None else self._now(msg.partition)
        entry = self._entry(label.event_id, max(label.time, self.view.floor) if label.time is not None else now)
        if label.time is not None:
            self._advance(msg.partition, "l", label.time)
        if entry is None:
            when = label.time if label.time is not None else self.watermarks.get(f"i{msg.partition}", math.inf)
            raw = msg.value.decode("utf-8") if msg.value else ""
            data = {"v": label.label, "lt": label.time, "raw": raw, "tp": msg.topic, "o": msg.offset}
            self._set(
                label.event_id, JoinEntry(PENDING_LABEL, when + self.settings.label_ttl, msg.partition, data), None
            )
        elif entry.kind == PENDING_INFERENCE:
            d = entry.data
            inf = Inference(label.event_id, d["m"], d["v"], d["t"], d["y"], d["s"])
            self._match(msg.partition, inf, label.label, label.time, now, msg, entry)
        else:
            self.result.count(entry.counter_key, "duplicates")

    def _match(
        self,
        partition: int,
        inf: Inference,
        label: str | int | float | bool,
        label_time: float | None,
        now: float,
        label_msg: RawMessage,
        stored: JoinEntry,
    ) -> bool:
        """Join `inf` with its label; a label that does not fit the model is dead-lettered instead.

        The pair is late when its label's time is past the window's end plus grace, or when
        the partition the second side came from had already passed that point: then the
        window may be closed, and no partition behind it can have let it close earlier.
        """
        try:
            y_true = canonical_class(label, "label", self.catalog.problem_type(inf.model))
            self.catalog.check_class(inf.model, y_true, "label")
        except RecordError as exc:
            self.result.count(inf.model, "rejected")
            self.result.dead_letters.append(dead_letter(label_msg, exc.reason, exc.field))
            return False
        self._set(
            inf.event_id, JoinEntry(JOINED, inf.time + self.settings.label_ttl, partition, {"m": inf.model}), stored
        )
        sample = Joined(inf.model, inf.model_version, inf.time, y_true, inf.prediction, inf.score)
        self.result.joined += 1
        window = WindowKey.of(sample, self.settings.window)
        deadline = window.end + self.settings.label_grace
        if deadline <= now or (label_time is not None and label_time > deadline):
            self.result.count(inf.model, "late")
        else:
            agg = self.result.windows.get(window)
            if agg is None:
                agg = self.result.windows[window] = WindowAggregate(self.settings.score_resolution)
            agg.add(sample, self.catalog.problem_type(inf.model) == REGRESSION)
        if self.settings.rolling_size > 0:
            self.result.rolling.setdefault(model_key(inf.model, inf.model_version), []).append(sample)
        return True
