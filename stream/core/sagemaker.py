"""SageMaker Model Monitor's data-capture and ground-truth records, read into truthstream's contract.

A capture's output is whatever the model returned (a bare score, a CSV row, a JSON
document), encoded as CSV, JSON or BASE64. As in SageMaker, the user names which part is
the prediction (`inference_attribute`) and which the positive-class probability
(`probability_attribute`): a 0-based column index for CSV, a dotted path for JSON
(`predictions.0.score`). Without an inference attribute the prediction is
`probability >= probability_threshold` (the cut-off itself counts as positive).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from stream.core.records import number
from stream.errors import RecordError


@dataclass(frozen=True)
class CaptureFormat:
    """How to read a capture's model output."""

    inference_attribute: str = ""
    probability_attribute: str = ""
    probability_threshold: float = 0.5


def is_capture(doc: dict[str, Any]) -> bool:
    """Whether a JSON object is a SageMaker data-capture record."""
    return "captureData" in doc and "eventMetadata" in doc


def is_ground_truth(doc: dict[str, Any]) -> bool:
    """Whether a JSON object is a SageMaker ground-truth record."""
    return "groundTruthData" in doc and "eventMetadata" in doc


def _object(doc: Any, path: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise RecordError("expected an object", path)
    return doc


def decode_payload(payload: Any, path: str) -> Any:
    """The content of a `{"data", "encoding", "observedContentType"}` block: a list of CSV values or JSON."""
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
        rows = list(csv.reader(io.StringIO(data.strip())))
        if len(rows) != 1:
            raise RecordError(f"expected one CSV row, found {len(rows)}", f"{path}.data")
        return [cell.strip() for cell in rows[0]]
    if encoding == "JSON":
        try:
            return json.loads(data)
        except ValueError as exc:
            raise RecordError(f"JSON data does not parse ({exc})", f"{path}.data") from None
    raise RecordError(f"unknown encoding {block.get('encoding')!r}; expected CSV, JSON or BASE64", f"{path}.encoding")


def pick(content: Any, attribute: str, path: str) -> Any:
    """A value of decoded content by attribute: a CSV column index, or a dotted JSON path."""
    if isinstance(content, list) and attribute.isdigit() and all(isinstance(c, str) for c in content):
        index = int(attribute)
        if index >= len(content):
            raise RecordError(f"column {index} does not exist; the row has {len(content)}", path)
        return content[index]
    value = content
    for part in attribute.split(".") if attribute else []:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise RecordError(f"attribute {attribute!r} is not in the output", path)
    return value


def capture_to_inference(doc: dict[str, Any], fmt: CaptureFormat, model: str, version: str = "") -> dict[str, Any]:
    """An inference record of the contract from a capture record."""
    meta = _object(doc.get("eventMetadata"), "eventMetadata")
    event_id = meta.get("inferenceId") or meta.get("eventId")
    if not event_id:
        raise RecordError("is required", "eventMetadata.eventId")
    if "inferenceTime" not in meta:
        raise RecordError("is required", "eventMetadata.inferenceTime")
    output_path = "captureData.endpointOutput"
    content = decode_payload(_object(doc.get("captureData"), "captureData").get("endpointOutput"), output_path)
    if isinstance(content, list) and len(content) == 1:
        content = content[0]
    bare = isinstance(content, (str, int, float)) and not isinstance(content, bool)
    if bare and not fmt.inference_attribute and not fmt.probability_attribute:
        # A bare value is the score, as SageMaker's own examples return it.
        out: dict[str, Any] = {"probability": number(content, output_path)}
    else:
        out = {}
        if fmt.probability_attribute:
            out["probability"] = number(pick(content, fmt.probability_attribute, output_path), output_path)
        if fmt.inference_attribute:
            out["prediction"] = pick(content, fmt.inference_attribute, output_path)
    if "prediction" not in out:
        if "probability" not in out:
            raise RecordError("set an inference or probability attribute to read this output", output_path)
        out["prediction"] = 1 if out["probability"] >= fmt.probability_threshold else 0
    return {
        "event_id": str(event_id),
        "model": model,
        "model_version": version,
        "inference_time": meta["inferenceTime"],
        **out,
    }


def ground_truth_to_label(doc: dict[str, Any]) -> dict[str, Any]:
    """A label record of the contract from a ground-truth record (its first CSV value, or its JSON)."""
    meta = _object(doc.get("eventMetadata"), "eventMetadata")
    if not meta.get("eventId"):
        raise RecordError("is required", "eventMetadata.eventId")
    content = decode_payload(doc.get("groundTruthData"), "groundTruthData")
    if isinstance(content, list):
        if len(content) != 1:
            raise RecordError(f"expected one label, found {len(content)} CSV values", "groundTruthData.data")
        content = content[0]
    if isinstance(content, dict) and "label" in content:
        content = content["label"]
    return {"event_id": str(meta["eventId"]), "label": content}
