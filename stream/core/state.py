"""The state contract: what a store holds for the core, how it is encoded, and what a store must do.

The core step reads a `StateView` and returns a `StepResult`; a `StateStore` (memory
for replay and tests, Redis for the worker) loads views, applies results atomically,
keeps an outbox of `Output`s and closes windows. The arithmetic that both stores
need (when a rolling window is due, how counters merge when a window closes) and the
text forms of join entries and rolling samples are written here once. The Redis
store's Lua carries its own copy of `rolling_due`, tested against this one.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from stream.core.aggregate import WindowAggregate
from stream.core.records import SEP, Joined
from stream.core.windows import WindowKey

PENDING_INFERENCE = "I"
PENDING_LABEL = "L"
JOINED = "J"
UNATTRIBUTED = ""  # counter key for records whose model is not known

OutputKind = Literal["metrics", "violation", "dead_letter"]
METRICS: OutputKind = "metrics"
VIOLATION: OutputKind = "violation"
DEAD_LETTER: OutputKind = "dead_letter"
OUTPUT_KINDS: tuple[OutputKind, ...] = (METRICS, VIOLATION, DEAD_LETTER)

# Waiting entries are swept by slots of event time, a thousandth of the label TTL each: a store
# indexes an entry under the slot its expiry falls in and sweeps a slot once event time passed its
# end, so its expiry index holds about a thousand slots per partition whatever the traffic.
EXPIRY_SLOTS = 1000


def expiry_slot_end(expires: float, label_ttl: float) -> float:
    """The end of the expiry slot an entry expiring at `expires` is indexed under."""
    width = label_ttl / EXPIRY_SLOTS
    return (math.floor(expires / width) + 1) * width


def sweep_horizon(now: float, label_ttl: float) -> float:
    """How far a sweep at event time `now` expires entries: up to the end of the last whole slot
    (an entry expiring before the horizon is in a slot that ended by `now`)."""
    if not math.isfinite(now):
        return now
    width = label_ttl / EXPIRY_SLOTS
    return math.floor(now / width) * width


@dataclass(slots=True)
class JoinEntry:
    """What is stored under an event id: a pending inference (`I`), a pending label (`L`), or the
    tombstone of a finished join (`J`, which only remembers the model, to count duplicates)."""

    kind: str
    expires: float  # event time at which an unmatched entry counts as expired
    partition: int
    model: str = ""  # I, J
    version: str = ""  # I
    time: float = math.nan  # I: inference time
    prediction: str = ""  # I: canonical class (or repr of a regression value)
    score: float | None = None  # I: positive-class score
    label: Any = None  # L: the label's JSON scalar as sent
    label_time: float | None = None  # L: the label's own time, if it had one
    raw: str = ""  # L: the label message as text, to dead-letter it if it does not fit the model
    topic: str = ""  # L: where the label message came from
    offset: int = -1  # L
    segments: str = ""  # I: the inference's segment values (`segments.encode_segments`)

    @property
    def counter_key(self) -> str:
        """The model a pending or joined entry is attributed to, if known."""
        return self.model


def encode_entry(entry: JoinEntry) -> str:
    """Compact text for storage: kind, expiry and partition, then the kind's fields, joined by SEP
    (names and classes cannot contain it, see `records`). One is written per event, and this is
    about four times faster than JSON throughout."""
    head = f"{entry.kind}{SEP}{entry.expires!r}{SEP}{entry.partition}{SEP}"
    if entry.kind == PENDING_INFERENCE:
        score = "" if entry.score is None else repr(entry.score)
        text = f"{head}{entry.time!r}{SEP}{score}{SEP}{entry.model}{SEP}{entry.version}{SEP}{entry.prediction}"
        return f"{text}{SEP}{entry.segments}" if entry.segments else text
    if entry.kind == JOINED:
        return head + entry.model
    # A pending label: its value tagged with its JSON type, its time, where it came from, and the
    # message text last, so that whatever it holds (a UTF-16 message decoded as UTF-8 can hold
    # SEP) is never split.
    label_time = "" if entry.label_time is None else repr(entry.label_time)
    return f"{head}{_tagged(entry.label)}{SEP}{label_time}{SEP}{entry.topic}{SEP}{entry.offset}{SEP}{entry.raw}"


def _tagged(value: Any) -> str:
    """A label's JSON scalar as text that keeps its type (`_untagged` reads it back); a text label
    is plain text (see `records.parse_label`), so it holds no SEP."""
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"d{value!r}"
    if isinstance(value, str):
        return f"s{value}"
    return "j" + json.dumps(value)  # not a scalar: parse_label refuses these, kept exact all the same


def _untagged(text: str) -> Any:
    tag, body = text[:1], text[1:]
    if tag in ("t", "f"):
        return tag == "t"
    if tag == "i":
        return int(body)
    if tag == "d":
        return float(body)
    if tag == "s":
        return body
    return json.loads(body)


def decode_entry(text: str | bytes) -> JoinEntry:
    """Inverse of `encode_entry`; also reads the JSON form truthstream 0.1.0 wrote."""
    if isinstance(text, bytes):
        text = text.decode()
    if text.startswith("["):
        kind, expires, partition, data = json.loads(text)
        return _entry(kind, math.inf if expires is None else expires, partition, data)
    kind, expires, partition, rest = text.split(SEP, 3)
    if kind == PENDING_INFERENCE:
        t, score, model, version, y, *segments = rest.split(SEP, 5)
        data = {"m": model, "v": version, "t": float(t), "y": y, "s": float(score) if score else None}
        data["g"] = segments[0] if segments else ""
    elif kind == JOINED:
        data = {"m": rest}
    elif rest.startswith("{"):  # a pending label as JSON, as earlier versions wrote it
        data = json.loads(rest)
    else:
        value, label_time, topic, offset, raw = rest.split(SEP, 4)
        lt = float(label_time) if label_time else None
        data = {"v": _untagged(value), "lt": lt, "raw": raw, "tp": topic, "o": int(offset)}
    return _entry(kind, float(expires), int(partition), data)


def _entry(kind: str, expires: float, partition: int, d: dict[str, Any]) -> JoinEntry:
    """A JoinEntry from the short field names of the stored forms."""
    if kind == PENDING_INFERENCE:
        return JoinEntry(kind, expires, partition, d["m"], d["v"], d["t"], d["y"], d["s"], segments=d.get("g", ""))
    if kind == JOINED:
        return JoinEntry(kind, expires, partition, d["m"])
    # "y": the label as JSON text, in entries that truthstream 0.1.0 wrote
    value = d["v"] if "v" in d else json.loads(d["y"])
    return JoinEntry(
        kind, expires, partition, label=value, label_time=d.get("lt"), raw=d["raw"], topic=d["tp"], offset=d["o"]
    )


def encode_sample(sample: Joined) -> str:
    """A rolling-window sample as a short string (model and version are in its list's name)."""
    score = "" if sample.score is None else repr(sample.score)
    return f"{sample.time!r}{SEP}{sample.y_true}{SEP}{sample.y_pred}{SEP}{score}"


@dataclass(slots=True)
class Output:
    """A record for the world: what kind it is (the worker maps kinds to topics), its key, its value."""

    kind: str
    key: str
    value: dict[str, Any]


@dataclass(slots=True)
class StateView:
    """The part of the state one batch needs, as loaded by a store."""

    entries: dict[str, JoinEntry | None]
    checkpoints: dict[tuple[str, int], int]
    watermarks: dict[str, float]  # "i<partition>" / "l<partition>" -> latest event time seen
    floor: float = -math.inf


def widen(times: tuple[float, float] | None, more: tuple[float, float] | None) -> tuple[float, float] | None:
    """The smallest `(earliest, latest)` covering both spans of times (None: no time yet)."""
    if more is None or times is None:
        return more or times
    return (min(times[0], more[0]), max(times[1], more[1]))


@dataclass(slots=True)
class StepResult:
    """Every change and output of one batch, for a store to apply atomically."""

    entries: dict[str, JoinEntry | None] = field(default_factory=dict)  # None deletes
    unindex: dict[int, set[str]] = field(default_factory=dict)  # expiry-index removals per partition
    windows: dict[WindowKey, WindowAggregate] = field(default_factory=dict)
    # per window, what its new inferences add without opening it: their count (the label coverage's
    # denominator) and, for calibrated models, their label-free estimate sums
    unopened: dict[WindowKey, WindowAggregate] = field(default_factory=dict)
    # windows to list for a provisional record: those of the new inferences whose end the inference's
    # partition had not passed yet (an out-of-order inference does not list a window again)
    provisional: set[WindowKey] = field(default_factory=set)
    counters: dict[str, Counter[str]] = field(default_factory=dict)
    watermarks: dict[str, float] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int], int] = field(default_factory=dict)
    rolling: dict[str, list[Joined]] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)  # queued in the outbox with the state change
    joined: int = 0
    # final outcomes of input records by side ('inference'/'label'): joined, late, duplicate,
    # rejected, expired, evicted (a record waiting for its other side has none yet)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    missing: set[str] = field(default_factory=set)  # ids the view lacked: the store loads them and runs again
    inference_times: tuple[float, float] | None = None  # earliest and latest inference time of the batch

    def saw_inference(self, when: float) -> None:
        """Widen `inference_times` to cover an inference of time `when`."""
        self.inference_times = widen(self.inference_times, (when, when))

    def count(self, key: str, what: str, n: int = 1) -> None:
        """Add to a per-model counter (late, expired, duplicates, rejected)."""
        self.counters.setdefault(key, Counter())[what] += n

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead-letter records among the outputs."""
        return [o.value for o in self.outputs if o.kind == DEAD_LETTER]


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

    @classmethod
    def decode(cls, model_key: str, sequence: int, rows: list[bytes]) -> "RollingDue":
        """The columns of samples `encode_sample` wrote (split in one go: it runs per batch)."""
        fields = SEP.encode().join(rows).decode().split(SEP)
        times, y_true, y_pred, scores = fields[0::4], fields[1::4], fields[2::4], fields[3::4]
        return cls(
            model_key, sequence, list(map(float, times)), y_true, y_pred, [float(x) if x else None for x in scores]
        )


def rolling_due(total: int, added: int, every: int) -> bool:
    """Whether a rolling window that just grew by `added` samples to `total` crossed a multiple of
    `every` (it is evaluated once per `every` samples, however they were batched)."""
    return total // every > (total - added) // every


def merge_counts(*counters: Mapping[str, float]) -> dict[str, int]:
    """A window's counts when it closes: its model's counters plus the unattributed ones."""
    out: dict[str, int] = {}
    for counts in counters:
        for name, n in counts.items():
            out[name] = out.get(name, 0) + int(n)
    return out


class Job(NamedTuple):
    """One partition's part of a batch for `StateStore.transact`: the event ids and input partitions
    its view needs, and the step to run on that view."""

    partition: int
    ids: set[str]
    inputs: set[tuple[str, int]]
    step: Callable[[StateView], StepResult]


class StateStore(Protocol):
    """Where the state lives (Redis for the worker, memory for replay); every method is atomic."""

    async def transact(self, jobs: list[Job]) -> list[tuple[StepResult, list[RollingDue]]]:
        """For each job, load a StateView of its input partition for its ids and inputs (join entries
        live with the partition their records came from), call its `step(view)` and apply the result
        atomically; the jobs' partitions differ, and each job is a transaction of its own."""

    async def rolling_samples(self, due: list[RollingDue]) -> list[RollingDue]:
        """The rolling windows `transact` found due, with their samples (a store may return them
        from `transact` without, to read the samples once per batch, after all its partitions)."""

    async def expiry_candidates(self, partitions: set[int], horizon: float) -> dict[int, list[str]]:
        """Ids (or the store's handles for them) of these partitions' entries expiring before
        `horizon` (see `sweep_horizon`), a page at most; stale ones are skipped by the sweep."""

    async def oldest_beyond(self, partitions: set[int], limit: int) -> dict[int, list[str]]:
        """Per partition, ids (or handles) of the indexed entries that expire first, beyond the `limit`
        that expire last (what to evict when the pending state is over its bound; a page at most)."""

    async def clock(self) -> tuple[dict[str, float], float]:
        """Partition watermarks and the idle floor."""

    async def raise_floor(self, when: float) -> None:
        """Advance the idle floor (never moves back)."""

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Open windows whose end is at or before `until`."""

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows listed for a provisional record (see `StepResult.provisional`) ending at or before
        `until` whose record is not published yet (one may be listed again; `publish_provisional`
        skips it)."""

    async def publish_provisional(self, keys: list[WindowKey], build: Any) -> int:
        """Call `build(key, agg, detectors)` on each window's state so far (its parts of every
        partition and what its inferences added, merged; the window stays as it is; `detectors` as
        for `close_windows`), queue its outputs and store the detectors it changed, each window's
        exactly once, in order per model version, and never after it closed. Returns how many
        records were queued."""

    async def close_windows(self, keys: list[WindowKey], build: Any) -> int:
        """Take the windows (oldest first) and, per input partition, their models' counters, call
        `build(key, agg, counts, detectors)` for each window (a window's parts of every partition
        merged; of each partition, a model's counts and the unattributed ones go to its first
        window: `merge_counts`; `detectors`: its model version's change detectors' states, by
        name), which returns its outputs and the detectors it changed; queue the outputs and store
        the detectors, and delete the windows, each exactly once and the windows of a model version
        in order. Returns how many closed (one closed by another worker first is skipped)."""

    async def close_counts(self, models: set[str], build: Any) -> int:
        """Per input partition, atomically take the counters of those of `models` that have no window
        open in it to carry them (the unattributed counters only when it has no open window at all),
        call `build(model, counts)` for each, and queue its outputs in the outbox. Returns how many
        were taken."""

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs in the outbox (not atomically with any batch: rolling-window records)."""

    async def pending_outbox(self) -> list[Output]:
        """Outputs queued but not yet confirmed as published (the oldest first; possibly a page)."""

    async def confirm_outbox(self, count: int) -> None:
        """Drop the first `count` outbox entries of the last `pending_outbox`: they are published."""
