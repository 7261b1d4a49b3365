"""SageMaker Model Monitor's data-capture and ground-truth records, read into truthstream's contract.

A capture's output is whatever the model returned (a bare score, CSV rows, a JSON document,
JSON Lines), encoded as CSV, JSON or BASE64, from a real-time endpoint
(`captureData.endpointOutput`) or a batch transform (`captureData.batchTransformOutput`).
As in SageMaker, the user names which part is the prediction (`inference_attribute`) and
which the positive-class probability (`probability_attribute`): a 0-based column index for
CSV, a JMESPath expression for JSON (`score`, `predictions[*].score`,
`SageMakerOutput.predicted_label`; the older dotted form `predictions.0.score` still works).
Without an inference attribute the prediction is `probability >= probability_threshold`.

One capture may hold several instances (a batched request): CSV rows, JSON Lines, or an
attribute that selects a list. Each instance becomes one inference record; a ground truth
with `{"instances": [...]}` (or several CSV rows or JSON lines) becomes one label record per
instance, positionally. Both sides name the records alike: the event id alone for a single
instance, `<event id>:<i>` (0-based) for instance i of several, so they join completely.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from stream.core.records import number
from stream.errors import RecordError

OUTPUTS = ("endpointOutput", "batchTransformOutput")  # real-time endpoint, batch transform


@dataclass(frozen=True)
class CaptureFormat:
    """How to read a capture's model output."""

    inference_attribute: str = ""
    probability_attribute: str = ""
    probability_threshold: float = 0.5


@dataclass(frozen=True)
class Content:
    """A decoded payload: CSV rows (lists of cells), JSON Lines documents, or one JSON document."""

    kind: str  # "csv", "jsonlines" or "json"
    items: list[Any]


def is_capture(doc: dict[str, Any]) -> bool:
    """Whether a JSON object is a SageMaker data-capture record."""
    return "captureData" in doc and "eventMetadata" in doc


def is_ground_truth(doc: dict[str, Any]) -> bool:
    """Whether a JSON object is a SageMaker ground-truth record."""
    return "groundTruthData" in doc and "eventMetadata" in doc


def instance_id(event_id: str, index: int, count: int) -> str:
    """The event id of instance `index` of `count` in one capture or ground truth."""
    return event_id if count == 1 else f"{event_id}:{index}"


def _object(doc: Any, path: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise RecordError("expected an object", path)
    return doc


def decode_payload(payload: Any, path: str) -> Content:
    """The content of a `{"data", "encoding", "observedContentType"}` block."""
    block = _object(payload, path)
    data, encoding = block.get("data"), str(block.get("encoding", "")).upper()
    content_type = str(block.get("observedContentType", "")).lower()
    if not isinstance(data, str):
        raise RecordError("expected a string", f"{path}.data")
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise RecordError(f"BASE64 data does not decode to UTF-8 text ({exc})", f"{path}.data") from None
        encoding = "JSON" if "json" in content_type else "CSV" if "csv" in content_type else ""
        if not encoding:
            raise RecordError(
                f"BASE64 data of content type {content_type or 'unknown'!r}: only CSV and JSON payloads can be read",
                f"{path}.observedContentType",
            )
    if encoding == "CSV":
        try:  # one row a line, whatever the line ends (\n, \r\n or a bare \r)
            rows = [[cell.strip() for cell in row] for row in csv.reader(data.strip().splitlines()) if row]
        except csv.Error as exc:
            raise RecordError(f"CSV data does not parse ({exc})", f"{path}.data") from None
        return Content("csv", rows)
    if encoding == "JSON":
        lines = [line for line in data.splitlines() if line.strip()]
        try:
            if "jsonl" in content_type or len(lines) > 1:  # application/jsonlines, application/jsonl
                try:
                    return Content("jsonlines", [json.loads(line) for line in lines])
                except ValueError:
                    if "jsonl" in content_type:
                        raise
            return Content("json", [json.loads(data)])
        except ValueError as exc:
            raise RecordError(f"JSON data does not parse ({exc})", f"{path}.data") from None
    raise RecordError(f"unknown encoding {block.get('encoding')!r}; expected CSV, JSON or BASE64", f"{path}.encoding")


@functools.lru_cache(maxsize=64)
def _expression(attribute: str) -> Any:
    """A compiled JMESPath expression; `a.0.b` (the older dotted form) reads as `a[0].b`, and a
    JSONPath-style leading `$.` is dropped."""
    text = attribute[2:] if attribute.startswith("$.") else attribute
    text = re.sub(r"(^|\.)(\d+)(?=\.|\[|$)", lambda m: f"[{m.group(2)}]", text)
    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise RecordError(f"attribute {attribute!r} is not a JMESPath expression ({exc})") from None


def _values(content: Content, attribute: str, path: str) -> list[Any]:
    """The values an attribute selects, one per instance (an empty attribute: the instances themselves)."""
    if content.kind == "csv":
        if not attribute:
            return [row[0] if len(row) == 1 else row for row in content.items]
        if not attribute.isdigit():
            raise RecordError(f"attribute {attribute!r} of a CSV output must be a column index (0, 1, ...)", path)
        index = int(attribute)
        for row in content.items:
            if index >= len(row):
                raise RecordError(f"column {index} does not exist; the row has {len(row)}", path)
        return [row[index] for row in content.items]
    try:
        expression = _expression(attribute) if attribute else None
    except RecordError as exc:
        raise RecordError(exc.reason, path) from None
    found = []
    for item in content.items:
        value = expression.search(item) if expression is not None else item
        if value is None:
            raise RecordError(f"attribute {attribute!r} is not in the output", path)
        found.extend(value if isinstance(value, list) else [value])
    return found


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def capture_to_inferences(
    doc: dict[str, Any], fmt: CaptureFormat, model: str, version: str = "", default_time: Any = None
) -> list[dict[str, Any]]:
    """The inference records of the contract in a capture record, one per instance. A capture
    without `inferenceTime` (batch transform) takes `default_time` (the caller's: the hour
    folder of its file, or its Kafka record's timestamp)."""
    meta = _object(doc.get("eventMetadata"), "eventMetadata")
    event_id = meta.get("inferenceId") or meta.get("eventId")
    if not event_id:
        raise RecordError("is required", "eventMetadata.eventId")
    when = meta.get("inferenceTime", default_time)
    if when is None:
        raise RecordError(
            "is required (a batch-transform capture is timed by its file's hour)", "eventMetadata.inferenceTime"
        )
    data = _object(doc.get("captureData"), "captureData")
    name = next((n for n in OUTPUTS if n in data), OUTPUTS[0])
    output_path = f"captureData.{name}"
    content = decode_payload(data.get(name), output_path)
    if not content.items:
        raise RecordError("the output holds no instance", f"{output_path}.data")
    probabilities: list[Any] | None = None
    predictions: list[Any] | None = None
    if fmt.probability_attribute:
        probabilities = _values(content, fmt.probability_attribute, output_path)
    if fmt.inference_attribute:
        predictions = _values(content, fmt.inference_attribute, output_path)
    if probabilities is None and predictions is None:
        bare = _values(content, "", output_path)
        if not all(_scalar(v) for v in bare):
            raise RecordError("set an inference or probability attribute to read this output", output_path)
        probabilities = bare  # a bare value is the score, as SageMaker's own examples return it
    if probabilities is not None and predictions is not None and len(probabilities) != len(predictions):
        raise RecordError(
            f"{len(predictions)} predictions but {len(probabilities)} probabilities: "
            "the attributes do not select the same instances",
            output_path,
        )
    count = len(predictions if predictions is not None else probabilities or [])
    if count == 0:
        raise RecordError("the attributes select no instance in the output", output_path)
    records = []
    for i in range(count):
        where = output_path if count == 1 else f"{output_path} (instance {i} of {count})"
        out: dict[str, Any] = {}
        if probabilities is not None:
            out["probability"] = number(probabilities[i], where)
        if predictions is not None:
            if not _scalar(predictions[i]):
                raise RecordError(f"expected a class or a value, got {type(predictions[i]).__name__}", where)
            out["prediction"] = predictions[i]
        else:
            out["prediction"] = 1 if out["probability"] >= fmt.probability_threshold else 0
        records.append(
            {
                "event_id": instance_id(str(event_id), i, count),
                "model": model,
                "model_version": version,
                "inference_time": when,
                **out,
            }
        )
    return records


def ground_truth_to_labels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The label records of the contract in a ground-truth record, one per instance: CSV rows
    (one value each), JSON Lines, `{"instances": [...]}`, or one JSON value or `{"label": ...}`."""
    meta = _object(doc.get("eventMetadata"), "eventMetadata")
    if not meta.get("eventId"):
        raise RecordError("is required", "eventMetadata.eventId")
    path = "groundTruthData"
    content = decode_payload(doc.get(path), path)
    if content.kind == "csv":
        for row in content.items:
            if len(row) != 1:
                raise RecordError(f"expected one label per CSV row, found {len(row)} values", f"{path}.data")
        labels: list[Any] = [row[0] for row in content.items]
    elif content.kind == "json" and isinstance(content.items[0], dict) and "instances" in content.items[0]:
        labels = content.items[0]["instances"]
        if not isinstance(labels, list):
            raise RecordError("expected a list", f"{path}.data.instances")
    elif content.kind == "json" and isinstance(content.items[0], list):
        labels = content.items[0]
    else:
        labels = content.items
    if not labels:
        raise RecordError("the ground truth holds no label", f"{path}.data")
    labels = [item["label"] if isinstance(item, dict) and "label" in item else item for item in labels]
    return [{"event_id": instance_id(str(meta["eventId"]), i, len(labels)), "label": v} for i, v in enumerate(labels)]
