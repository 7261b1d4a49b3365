"""SageMaker data-capture and ground-truth records, as the endpoint and the labelling job write them."""

from __future__ import annotations

import base64
import json
from typing import Any


def capture(
    event_id: str,
    when: str,
    output: str,
    encoding: str = "CSV",
    inference_id: str | None = None,
    content_type: str = "text/csv; charset=utf-8",
) -> dict[str, Any]:
    """A capture record whose endpoint returned `output` (encoded as `encoding`)."""
    data = base64.b64encode(output.encode()).decode() if encoding == "BASE64" else output
    meta: dict[str, Any] = {"eventId": event_id, "inferenceTime": when}
    if inference_id:
        meta["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "69,0,153.7",
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": content_type,
                "mode": "OUTPUT",
                "data": data,
                "encoding": encoding,
            },
        },
        "eventMetadata": meta,
        "eventVersion": "0",
    }


def ground_truth(event_id: str, label: Any, encoding: str = "CSV") -> dict[str, Any]:
    """A ground-truth record."""
    data = json.dumps({"label": label}) if encoding == "JSON" else str(label)
    return {
        "groundTruthData": {"data": data, "encoding": encoding},
        "eventMetadata": {"eventId": event_id},
        "eventVersion": "0",
    }
