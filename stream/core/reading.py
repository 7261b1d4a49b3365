"""A batch's messages read and checked before they meet the state: pure, and done once.

Reading a message (its JSON, a SageMaker capture's instances, the contract's checks, the key
check, its segments and data-quality rows) needs no state, so it happens before a store loads the
batch's view: the view is then loaded for exactly the event ids the records name (`event_ids`),
instance ids of a batched capture (`<event id>:<i>`) included, and the step applies the records
without reading anything twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.dataquality.parts import instance_rows, with_segments
from stream.core.keying import key_problem
from stream.core.records import (
    INFERENCE,
    Inference,
    Label,
    RawMessage,
    decode_json,
    parse_inference,
    parse_label,
    parse_sibling,
    shown,
)
from stream.core.sagemaker import capture_to_inferences, ground_truth_to_labels, is_capture, is_ground_truth
from stream.core.segments import encode_segments, segment_values
from stream.errors import RecordError

T = TypeVar("T")


@dataclass(slots=True)
class Instance:
    """One inference of a message, with its segment values (encoded) and its data-quality row."""

    inference: Inference
    segments: str = ""
    row: list[str] | None = None


@dataclass(slots=True)
class Read:
    """One message read: its inferences or its labels (in the message's order), or why it is refused."""

    inferences: list[Instance] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    error: RecordError | None = None


def _instance(parse: Callable[..., T], doc: dict[str, Any], index: int, count: int, *args: Any) -> T:
    """`parse(doc, *args)`, its errors naming the instance when the record holds several."""
    try:
        return parse(doc, *args)
    except RecordError as exc:
        if count == 1:
            raise
        raise RecordError(f"instance {index} of {count}: {exc.reason}", exc.field, exc.model) from None


class Reader:
    """Reads the messages of one batch (see the module's docstring)."""

    def __init__(self, config: CoreConfig, catalog: Catalog, wall_clock: float = math.nan, partitions: int = 0) -> None:
        self.config, self.catalog = config, catalog
        self.wall_clock = wall_clock  # the reference for event times of messages without a Kafka timestamp
        self.partitions = partitions  # of each input topic (0: unknown, the partition is not checked)

    def read(self, msg: RawMessage) -> Read:
        """The message's records; a message that cannot be used (or trips a bug) is a `Read` with an error."""
        try:
            return self._read(msg)
        except RecordError as exc:
            return Read(error=exc)
        except Exception as exc:  # noqa: BLE001 - a record that trips a bug is dead-lettered, not fatal
            reason = f"internal error on this record ({type(exc).__name__}: {shown(str(exc), 200)}); please report it"
            return Read(error=RecordError(reason))

    def _read(self, msg: RawMessage) -> Read:
        doc = decode_json(msg.value, self.config.max_record_bytes)
        reference = msg.timestamp if msg.timestamp is not None else self.wall_clock
        future = self.config.max_future_seconds
        # A SageMaker record forwarded unchanged may hold several instances: all of them are
        # read before any is applied, so a bad one refuses the whole record.
        if msg.side == INFERENCE:
            capture = is_capture(doc)
            problem_type = self.catalog.problem_type
            if capture:
                docs = capture_to_inferences(doc, self.config.capture_format, self.config.capture_model, "", reference)
                n = len(docs)
                first = _instance(parse_inference, docs[0], 0, n, problem_type, reference, future)
                kind = problem_type(first.model)
                inferences = [first] + [_instance(parse_sibling, docs[i], i, n, first, kind) for i in range(1, n)]
            else:  # one inference, the common case: its errors need no instance number
                docs, inferences = [doc], [parse_inference(doc, problem_type, reference, future)]
            for inference in inferences:
                self.catalog.check_class(inference.model, inference.prediction, "prediction")
            self._check_key(msg, inferences[0].event_id, len(inferences))
            model = inferences[0].model
            baseline = self.catalog.quality(model)
            keys = self.catalog.segment_keys(model)
            if not baseline and not keys:  # no segments, no data quality: nothing more to read
                return Read([Instance(inference) for inference in inferences])
            rows = instance_rows(doc, baseline, capture, len(inferences)) if baseline else None
            read = Read()
            for i, (inference, d) in enumerate(zip(inferences, docs)):
                segments = encode_segments(segment_values(d, keys)) if keys else ""
                row = with_segments(rows[i], segments) if rows else None
                read.inferences.append(Instance(inference, segments, row))
            return read
        if is_ground_truth(doc):
            docs = ground_truth_to_labels(doc)
            labels = [_instance(parse_label, d, i, len(docs), reference, future) for i, d in enumerate(docs)]
        else:
            labels = [parse_label(doc, reference, future)]
        self._check_key(msg, labels[0].event_id, len(labels))
        return Read(labels=labels)

    def _check_key(self, msg: RawMessage, event_id: str, count: int) -> None:
        """Refuse a record that cannot meet its pair (see `keying.key_problem`)."""
        problem = key_problem(msg, event_id, count, self.partitions, self.config.key_check)
        if problem:
            raise RecordError(problem, "key")


def event_ids(reads: list[Read]) -> set[str]:
    """The event ids a batch's records name: the join entries a store loads for its step."""
    ids = {instance.inference.event_id for read in reads for instance in read.inferences}
    ids.update(label.event_id for read in reads for label in read.labels)
    return ids
