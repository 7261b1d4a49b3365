"""Builders of contract messages shared by the tests."""

from __future__ import annotations

import json
from typing import Any

from stream.core.keying import default_partition, event_id_on
from stream.core.records import INFERENCE, LABEL, RawMessage, Side
from stream.core.timefmt import format_time

T0 = 1_764_000_000.0  # 2025-11-24T16:00:00Z, a window boundary for 60/600/3600-second windows


def inference(
    event_id: str,
    t: float,
    prediction: Any,
    probability: float | None = None,
    model: str = "churn",
    version: str = "1",
    **extra: Any,
) -> dict[str, Any]:
    """An inference record as the contract defines it."""
    doc = {
        "event_id": event_id,
        "model": model,
        "model_version": version,
        "inference_time": format_time(t),
        "prediction": prediction,
        **extra,
    }
    if probability is not None:
        doc["probability"] = probability
    return doc


def label(event_id: str, value: Any, **extra: Any) -> dict[str, Any]:
    """A label record."""
    return {"event_id": event_id, "label": value, **extra}


def on_partition(prefix: str, partition: int, partitions: int) -> str:
    """An event id starting with `prefix` that Kafka's default partitioner puts in `partition`."""
    return event_id_on(prefix, partition, partitions)


class Topic:
    """Assigns offsets like a Kafka partition would, for feeding the core without a broker."""

    def __init__(self, name: str, partitions: int = 1, side: Side | None = None) -> None:
        self.name, self.partitions = name, partitions
        self.side: Side = side or (LABEL if name.startswith("label") else INFERENCE)
        self.offsets = [0] * partitions

    def msg(self, doc: Any, partition: int | None = None, raw: bytes | None = None) -> RawMessage:
        """The next message of a partition (by default, where Kafka's default partitioner puts its
        key, as a producer would), from a document or raw bytes."""
        value = raw if raw is not None else json.dumps(doc).encode()
        key = _key_of(doc) if isinstance(doc, dict) else None
        if partition is None:
            partition = default_partition(str(key).encode(), self.partitions) if key is not None else 0
        offset = self.offsets[partition]
        self.offsets[partition] += 1
        return RawMessage(
            self.side, self.name, partition, offset, str(key).encode() if key is not None else None, value
        )


def _key_of(doc: dict[str, Any]) -> Any:
    """The key a producer gives a record: its event id (a SageMaker record's inference or event id)."""
    meta = doc.get("eventMetadata")
    if "event_id" not in doc and isinstance(meta, dict):
        return meta.get("inferenceId") or meta.get("eventId")
    return doc.get("event_id")
