"""The state a step reads and writes: join entries and their text form, the view a step reads
(`StateView`), every change it makes (`StepResult`), and the records it queues (`Output`).

What crosses to and from a store, and what a store must do, is in `contract`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from stream.core.aggregate import WindowAggregate
from stream.core.records import INFERENCE, LABEL, SEP, Joined
from stream.core.windows import WindowKey

PENDING_INFERENCE = "I"
PENDING_LABEL = "L"
JOINED = "J"
UNATTRIBUTED = ""  # counter key for records whose model is not known

# The channel of an output record: the worker maps each to a topic (the metrics, violations and
# dead-letter topics).
Channel = Literal["metrics", "violation", "dead_letter"]
METRICS: Channel = "metrics"
VIOLATION: Channel = "violation"
DEAD_LETTER: Channel = "dead_letter"
CHANNELS: tuple[Channel, ...] = (METRICS, VIOLATION, DEAD_LETTER)

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
    """What is stored under an event id, by `state`: a pending inference (`I`), a pending label (`L`),
    or the tombstone of a finished join (`J`, which remembers the model, to count duplicates, and
    the fingerprints of both sides, to tell a repeated record from a conflicting one)."""

    state: str
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
    fingerprints: bytes = b""  # J: the joined inference's and label's fingerprints (8 bytes; none before 0.2)

    @property
    def counter_key(self) -> str:
        """The model a pending or joined entry is attributed to, if known."""
        return self.model


FINGERPRINT_BYTES = 4  # per side: a conflicting duplicate goes unseen with a chance of 2**-32


def _fingerprint(*parts: object) -> bytes:
    text = SEP.join(map(repr, parts))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=FINGERPRINT_BYTES).digest()


def inference_fingerprint(model: str, version: str, time: float, prediction: str, score: float | None) -> bytes:
    """What identifies an inference's content (what a pending inference keeps of it).

    >>> first = inference_fingerprint("churn", "1", 1764000000.0, "1", 0.9)
    >>> first == inference_fingerprint("churn", "1", 1764000000.0, "1", 0.9), len(first)
    (True, 4)
    >>> first == inference_fingerprint("churn", "1", 1764000000.0, "0", 0.9)
    False
    """
    return _fingerprint(model, version, time, prediction, score)


def label_fingerprint(label: Any, label_time: float | None) -> bytes:
    """What identifies a label's content: its value (with its JSON type) and its own time."""
    return _fingerprint(_tagged(label), label_time)


def encode_entry(entry: JoinEntry) -> str:
    """A join entry as text: state, expiry and partition, then the state's fields, joined by SEP
    (names and classes cannot contain it, see `records`). The Redis store keeps pending labels in
    this form (it packs inferences and tombstones itself, see `stores/redis/codec`).

    >>> entry = JoinEntry(PENDING_LABEL, 1764000600.0, 1, label="yes", raw='{"label": "yes"}', topic="labels")
    >>> decode_entry(encode_entry(entry)) == entry
    True
    """
    head = f"{entry.state}{SEP}{entry.expires!r}{SEP}{entry.partition}{SEP}"
    if entry.state == PENDING_INFERENCE:
        score = "" if entry.score is None else repr(entry.score)
        text = f"{head}{entry.time!r}{SEP}{score}{SEP}{entry.model}{SEP}{entry.version}{SEP}{entry.prediction}"
        return f"{text}{SEP}{entry.segments}" if entry.segments else text
    if entry.state == JOINED:
        return head + entry.model + (f"{SEP}{entry.fingerprints.hex()}" if entry.fingerprints else "")
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
        state, expires, partition, data = json.loads(text)
        return _entry(state, math.inf if expires is None else expires, partition, data)
    state, expires, partition, rest = text.split(SEP, 3)
    if state == PENDING_INFERENCE:
        t, score, model, version, y, *segments = rest.split(SEP, 5)
        data = {"m": model, "v": version, "t": float(t), "y": y, "s": float(score) if score else None}
        data["g"] = segments[0] if segments else ""
    elif state == JOINED:
        model, _, prints = rest.partition(SEP)
        data = {"m": model, "f": bytes.fromhex(prints)}
    elif rest.startswith("{"):  # a pending label as JSON, as earlier versions wrote it
        data = json.loads(rest)
    else:
        value, label_time, topic, offset, raw = rest.split(SEP, 4)
        lt = float(label_time) if label_time else None
        data = {"v": _untagged(value), "lt": lt, "raw": raw, "tp": topic, "o": int(offset)}
    return _entry(state, float(expires), int(partition), data)


def _entry(state: str, expires: float, partition: int, d: dict[str, Any]) -> JoinEntry:
    """A JoinEntry from the short field names of the stored forms."""
    if state == PENDING_INFERENCE:
        return JoinEntry(state, expires, partition, d["m"], d["v"], d["t"], d["y"], d["s"], segments=d.get("g", ""))
    if state == JOINED:
        return JoinEntry(state, expires, partition, d["m"], fingerprints=d.get("f", b""))
    # "y": the label as JSON text, in entries that truthstream 0.1.0 wrote
    value = d["v"] if "v" in d else json.loads(d["y"])
    return JoinEntry(
        state, expires, partition, label=value, label_time=d.get("lt"), raw=d["raw"], topic=d["tp"], offset=d["o"]
    )


def encode_sample(sample: Joined) -> str:
    """A rolling-window sample as a short string (model and version are in its list's name)."""
    score = "" if sample.score is None else repr(sample.score)
    return f"{sample.time!r}{SEP}{sample.y_true}{SEP}{sample.y_pred}{SEP}{score}"


class Output:
    """A record for the world: its channel (the worker maps channels to topics), its key, and its
    value, as a document and as the JSON bytes that are published (each made from the other once,
    when first asked for: the core builds documents, a store's outbox keeps the bytes).

    >>> out = Output(METRICS, "churn", {"sample_count": 3})
    >>> out.payload
    b'{"sample_count": 3}'
    >>> Output.published(METRICS, "churn", out.payload) == out
    True
    """

    __slots__ = ("_payload", "_value", "channel", "key")

    def __init__(self, channel: str, key: str, value: dict[str, Any]) -> None:
        self.channel, self.key = channel, key
        self._value: dict[str, Any] | None = value
        self._payload: bytes | None = None

    @classmethod
    def published(cls, channel: str, key: str, payload: bytes) -> Output:
        """An output as an outbox keeps it: its value's JSON bytes."""
        out = cls(channel, key, {})
        out._value, out._payload = None, payload
        return out

    @property
    def value(self) -> dict[str, Any]:
        """The record as a document."""
        if self._value is None:
            self._value = json.loads(self.payload)
        return self._value

    @property
    def payload(self) -> bytes:
        """The record's bytes on the topic (JSON, as `json.dumps` writes it)."""
        if self._payload is None:
            self._payload = json.dumps(self._value).encode()
        return self._payload

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Output):
            return NotImplemented
        return (self.channel, self.key, self.payload) == (other.channel, other.key, other.payload)

    __hash__ = None  # type: ignore[assignment]  # mutable documents: not hashable

    def __repr__(self) -> str:
        return f"Output({self.channel!r}, {self.key!r}, {self.value!r})"


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
    # per window, the feature rows (JSON texts) of its new inferences, in offset order (data quality)
    quality: dict[WindowKey, list[str]] = field(default_factory=dict)
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

    def closed_late(self, windows: list[WindowKey]) -> None:
        """The store found these windows closed when it applied their pairs: it counted the pairs
        late instead (their models' `late`); the outcomes and counters say so too."""
        for window in windows:
            n = self.windows[window].sample_count
            self.count(window.model, "late", n)
            for side in (INFERENCE, LABEL):
                self.outcomes[side, "joined"] -= n
                self.outcomes[side, "late"] += n

    def count(self, key: str, what: str, n: int = 1) -> None:
        """Add to a per-model counter (late, expired, duplicates, rejected)."""
        self.counters.setdefault(key, Counter())[what] += n

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead-letter records among the outputs."""
        return [o.value for o in self.outputs if o.channel == DEAD_LETTER]
