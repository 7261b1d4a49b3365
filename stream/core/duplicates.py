"""Duplicates and conflicts: a record whose event id is taken is a plain duplicate when its content
is the first record's, and a conflict, dead-lettered and counted, when it is not.

A pending inference or label keeps its content, so a conflict names what differs; a join tombstone
keeps only a fingerprint of each side (`state.inference_fingerprint`, `state.label_fingerprint`).
"""

from __future__ import annotations

from stream.core.records import Inference, Label
from stream.core.state import (
    FINGERPRINT_BYTES,
    PENDING_INFERENCE,
    PENDING_LABEL,
    JoinEntry,
    inference_fingerprint,
    label_fingerprint,
)
from stream.core.timefmt import format_time


def _shown(value: object) -> str:
    """A field's value in a reason: times as ISO 8601, the rest as Python writes it."""
    if isinstance(value, float) and value > 946684800.0:  # an event time (after 2000-01-01)
        return format_time(value)
    return repr(value)


def fingerprint_of(inference: Inference) -> bytes:
    """The fingerprint of an inference's content (the part a pending inference keeps)."""
    return inference_fingerprint(
        inference.model, inference.model_version, inference.time, inference.prediction, inference.score
    )


def inference_conflict(entry: JoinEntry, inference: Inference) -> str:
    """What differs between an inference and the pending inference or join tombstone of its event id
    ("" when nothing does, or when a tombstone of 0.1 keeps no fingerprint to tell)."""
    if entry.state == PENDING_INFERENCE:
        pairs: dict[str, tuple[object, object]] = {
            "model": (entry.model, inference.model),
            "model_version": (entry.version, inference.model_version),
            "inference_time": (entry.time, inference.time),
            "prediction": (entry.prediction, inference.prediction),
            "score": (entry.score, inference.score),
        }
        return ", ".join(
            f"{name} {_shown(first)} then {_shown(then)}" for name, (first, then) in pairs.items() if first != then
        )
    if entry.fingerprints and entry.fingerprints[:FINGERPRINT_BYTES] != fingerprint_of(inference):
        return "its content differs from the inference already joined (kept only as a fingerprint)"
    return ""


def label_conflict(entry: JoinEntry, label: Label) -> str:
    """What differs between a label and the pending label or join tombstone of its event id."""
    if entry.state == PENDING_LABEL:
        pairs = {"label": (entry.label, label.label), "label_time": (entry.label_time, label.time)}
        return ", ".join(
            f"{name} {first!r} then {then!r}"
            for name, (first, then) in pairs.items()
            if label_fingerprint(first, None) != label_fingerprint(then, None)  # 1 and True differ
        )
    if entry.fingerprints and entry.fingerprints[FINGERPRINT_BYTES:] != label_fingerprint(label.label, label.time):
        return "its content differs from the label already joined (kept only as a fingerprint)"
    return ""
