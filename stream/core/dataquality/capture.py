"""A SageMaker capture record as the data-quality analyzer reads it: one row per instance, the
model's output columns first, then its input columns (named by position from the baseline, which
is why a baseline without the output column in front reads every feature one place off)."""

from __future__ import annotations

from typing import Any

from stream.core.dataquality.types import as_text
from stream.core.sagemaker import Content, decode_payload


def _flat(value: Any) -> list[Any]:
    """A JSON document's scalars in order (objects by their keys' order, arrays in order)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flat(v)]
    return [value]


def _rows(content: Content) -> list[list[Any]]:
    if content.kind == "csv":
        return [list(row) for row in content.items]
    if content.kind == "jsonlines":
        return [_flat(item) for item in content.items]
    doc = content.items[0]
    if isinstance(doc, list) and doc and all(isinstance(row, list) for row in doc):
        return [_flat(row) for row in doc]  # several instances: one row each
    return [_flat(doc)]


def capture_rows(doc: dict[str, Any]) -> list[list[str | None]]:
    """The rows of one capture record: per instance, the output's values then the input's (an
    output of one row for several input rows is repeated for none: it stays with the first)."""
    data = doc.get("captureData") or {}
    inputs = _rows(decode_payload(data.get("endpointInput"), "captureData.endpointInput"))
    outputs = (
        _rows(decode_payload(data["endpointOutput"], "captureData.endpointOutput")) if "endpointOutput" in data else []
    )
    rows = []
    for i, row in enumerate(inputs):
        output = outputs[i] if i < len(outputs) else []
        rows.append([as_text(v) for v in (*output, *row)])
    return rows
