"""How join entries are stored in Redis: packed bytes, models named by a per-partition reference.

A pending inference is 19 bytes and its class (time, score, model reference), a join tombstone 19
(its expiry, the model reference, the fingerprints of both sides; a pending inference's expiry is
its time plus the label TTL, not stored); a pending label is its text form (`state.encode_entry`).
Each partition numbers the model versions its entries name in its `m` hash; once that table is
full (MODEL_INLINE references) a model is written out in the entry instead.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

from stream.core.records import SEP
from stream.core.state import JOINED, PENDING_INFERENCE, JoinEntry, decode_entry, encode_entry
from stream.core.windows import model_key, split_model_key
from stream.errors import StateError
from stream.stores.redis.scripts import DIGEST

MODEL_INLINE = 0xFFFF  # the reference that says the model is written out: the partition's table is full
KEY_LENGTH = struct.Struct("<H")
SCORED = struct.Struct("<ddH")  # a pending inference: time, score, model reference
PLAIN = struct.Struct("<dH")  # one without a score: time, model reference; a join tombstone: expiry, reference


def digest(event_id: str) -> bytes:
    """The 12 bytes an event id is stored under (a sweep's handle carries them in hex)."""
    if event_id.startswith(SEP):
        return bytes.fromhex(event_id[2:])
    return hashlib.blake2b(event_id.encode(), digest_size=DIGEST).digest()


def handle(work: str, found: bytes) -> str:
    """A sweep's name for an entry it found by digest (event ids cannot contain SEP)."""
    return f"{SEP}{work[1]}{found.hex()}"


def text(value: bytes | str | None) -> str | None:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def counter(value: bytes) -> float:
    """A counter as Redis returns it: an integer, or a float written by HINCRBYFLOAT."""
    try:
        return int(value)
    except ValueError:
        return float(value)


def counters(flat: list[bytes]) -> dict[str, float]:
    """A hash of counters as HGETALL returns it inside a script ([field, value, ...])."""
    return {text(f) or "": counter(n) for f, n in zip(flat[::2], flat[1::2])}


def counter_pairs(counts: Mapping[str, float]) -> list[str]:
    """[field, increment, ...] with increments as text (a float keeps its point)."""
    return [x for f, n in counts.items() for x in (f, repr(n) if isinstance(n, float) else str(n))]


class ModelTable:
    """The model versions each partition's entries name by reference, as far as this process knows."""

    def __init__(self) -> None:
        self.models: dict[int, list[str]] = {}  # per partition, reference -> model key
        self.refs: dict[int, dict[str, int]] = {}

    def known(self, partition: int) -> int:
        """How many references of the partition this process knows."""
        return len(self.models.get(partition, ()))

    def reference(self, partition: int, key: str, new_models: dict[str, int]) -> tuple[int, bytes]:
        """A model's reference in a partition and what follows it: nothing, or, once the table is
        full, the model written out. One the table lacks is numbered in `new_models`, written with
        the batch."""
        ref = self.refs[partition].get(key, new_models.get(key))
        if ref is None:
            ref = len(self.models[partition]) + len(new_models)
            if ref >= MODEL_INLINE:
                written = key.encode()
                return MODEL_INLINE, KEY_LENGTH.pack(len(written)) + written
            new_models[key] = ref
        return ref, b""

    def at(self, partition: int, ref: int, value: bytes, offset: int) -> tuple[str, bytes]:
        """The model key of reference `ref` (read at `offset` when written out) and the bytes after it."""
        if ref != MODEL_INLINE:
            return self.models[partition][ref], value[offset:]
        (length,) = KEY_LENGTH.unpack_from(value, offset)
        start = offset + KEY_LENGTH.size
        return value[start : start + length].decode(), value[start + length :]

    def learn(self, partition: int, known: int, count: int, found: Sequence[bytes | str]) -> bool:
        """Add the references a read returned; False when Redis holds fewer than this process knows
        (its state was reset), after forgetting them: read again."""
        models = self.models.setdefault(partition, [])
        refs = self.refs.setdefault(partition, {})
        if count < known:
            models.clear()
            refs.clear()
            return False
        for ref, key in enumerate(found, start=known):
            models.append((key.decode() if isinstance(key, bytes) else key) or "")
            refs[models[-1]] = ref
        return True


class EntryCodec:
    """Join entries to and from their stored bytes, over a partition's model table."""

    def __init__(self, label_ttl: float, models: ModelTable) -> None:
        self.label_ttl, self.models = label_ttl, models

    def encode(self, partition: int, entry: JoinEntry, new_models: dict[str, int]) -> bytes:
        """An entry's bytes (see the module's docstring)."""
        if entry.state == PENDING_INFERENCE:
            if entry.expires != entry.time + self.label_ttl:
                raise StateError(f"a pending inference expires at {entry.expires!r}, not its time plus the label TTL")
            ref, written = self.models.reference(partition, model_key(entry.model, entry.version), new_models)
            tail = (f"{entry.prediction}{SEP}{entry.segments}" if entry.segments else entry.prediction).encode()
            if entry.score is None:
                return b"i" + PLAIN.pack(entry.time, ref) + written + tail
            return b"I" + SCORED.pack(entry.time, entry.score, ref) + written + tail
        if entry.state == JOINED:
            ref, written = self.models.reference(partition, model_key(entry.model, ""), new_models)
            return b"J" + PLAIN.pack(entry.expires, ref) + written + entry.fingerprints
        return b"L" + encode_entry(entry).encode()

    def decode(self, partition: int, value: bytes) -> JoinEntry:
        """Inverse of `encode`."""
        kind = value[:1]
        score: float | None
        if kind == b"I":
            time, score, ref = SCORED.unpack_from(value, 1)
            key, rest = self.models.at(partition, ref, value, 1 + SCORED.size)
        elif kind in (b"i", b"J"):
            (time, ref), score = PLAIN.unpack_from(value, 1), None
            key, rest = self.models.at(partition, ref, value, 1 + PLAIN.size)
        else:
            entry = decode_entry(value[1:])
            entry.partition = partition
            return entry
        model, version = split_model_key(key)
        if kind == b"J":  # a tombstone's double is its expiry; its sides' fingerprints follow (none before 0.2)
            return JoinEntry(JOINED, time, partition, model, fingerprints=rest)
        prediction, _, segments = rest.decode().partition(SEP)  # the segments, if any, follow the class
        return JoinEntry(
            PENDING_INFERENCE,
            time + self.label_ttl,
            partition,
            model,
            version,
            time,
            prediction,
            score,
            segments=segments,
        )
