"""Message types of the contract and their validation: raw Kafka messages in, typed records out."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from stream.errors import RecordError
from stream.core.timefmt import parse_time

ProblemType = Literal["BinaryClassification", "MulticlassClassification", "Regression"]
BINARY: ProblemType = "BinaryClassification"
MULTICLASS: ProblemType = "MulticlassClassification"
REGRESSION: ProblemType = "Regression"
PROBLEM_TYPES: tuple[ProblemType, ...] = (BINARY, MULTICLASS, REGRESSION)
POSITIVE = "1"
NEGATIVE = "0"
# Stored state joins names, classes and numbers with this character (the unit separator), so
# that no name or class may contain it: records with control characters are refused.
SEP = "\x1f"

Side = Literal["inference", "label"]
INFERENCE: Side = "inference"
LABEL: Side = "label"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read from Kafka, before any decoding; `side` says which input it came from."""

    side: Side
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Inference:
    """A validated prediction: the class predicted and, for binary models, the positive-class score."""

    event_id: str
    model: str
    model_version: str
    time: float
    prediction: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Label:
    """A validated ground-truth label; `time` is the label's own time when it carried one."""

    event_id: str
    label: str | int | float | bool  # the JSON scalar as sent; canonical once its model is known
    time: float | None


@dataclass(frozen=True, slots=True)
class Joined:
    """An inference matched with its label: one sample for the metrics."""

    model: str
    model_version: str
    time: float
    y_true: str
    y_pred: str
    score: float | None


def decode_json(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Decode a message value as a JSON object, or raise RecordError saying why not."""
    if value is None:
        raise RecordError("message has no value")
    if len(value) > max_bytes:
        raise RecordError(f"message is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        doc = json.loads(value)  # bytes: json detects UTF-8 itself and refuses invalid text
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RecordError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def canonical_class(value: object, field: str, problem_type: ProblemType) -> str:
    """Turn a class label (1, 1.0, "1", true) into its canonical string; binary classes are "0" and "1".
    For regression the value must be a finite number; its canonical form is `repr(float)`."""
    if problem_type == REGRESSION:
        return repr(number(value, field))
    if isinstance(value, bool):
        text = POSITIVE if value else NEGATIVE
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise RecordError(f"{value!r} is not a class label", field)
        text = str(int(value))
    elif isinstance(value, str) and value.strip():
        text = _no_control(value.strip(), field)
        try:
            as_float = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(as_float) and as_float.is_integer():
                text = str(int(as_float))
        if problem_type == BINARY and text.lower() in ("true", "false"):
            text = POSITIVE if text.lower() == "true" else NEGATIVE
    else:
        raise RecordError(f"expected a class label, got {value!r}", field)
    if problem_type == BINARY and text not in (NEGATIVE, POSITIVE):
        raise RecordError(f"binary classes are 0 and 1, got {value!r}", field)
    return text


def number(value: object, field: str) -> float:
    """A finite number from a JSON number or numeric text; RecordError naming `field` otherwise."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RecordError(f"expected a number, got {value!r}", field) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f"expected a finite number, got {value!r}", field)
    return float(value)


def _probability(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"expected a number in [0, 1], got {value!r}", field)
    number = float(value)
    if not (0.0 <= number <= 1.0):  # also rejects NaN
        raise RecordError(f"probability {value!r} is outside [0, 1]", field)
    return number


def _required_text(doc: dict[str, Any], field: str, model: str | None = None) -> str:
    value = doc.get(field)
    if value is None:
        raise RecordError("is required", field, model)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"expected a string, got {value!r}", field, model)
    text = str(value).strip()
    if not text:
        raise RecordError("must not be empty", field, model)
    return _no_control(text, field, model)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control(text: str, field: str, model: str | None = None) -> str:
    """Names and classes are stored joined by a control character, so none may contain one."""
    if _CONTROL.search(text):
        raise RecordError(f"must not contain control characters, got {text!r}", field, model)
    return text


def parse_inference(doc: dict[str, Any], problem_type_of: Any) -> Inference:
    """Validate an inference document; `problem_type_of(model)` says how to read its classes."""
    event_id = _required_text(doc, "event_id")
    model = _required_text(doc, "model")
    version = doc.get("model_version")
    version_text = "" if version is None else _no_control(str(version), "model_version", model)
    if "inference_time" not in doc:
        raise RecordError("is required", "inference_time", model)
    try:
        when = parse_time(doc["inference_time"])
    except ValueError as exc:
        raise RecordError(str(exc), "inference_time", model) from None
    if "prediction" not in doc or doc["prediction"] is None:
        raise RecordError("is required", "prediction", model)
    problem_type: ProblemType = problem_type_of(model)
    try:
        prediction = canonical_class(doc["prediction"], "prediction", problem_type)
        score = _score(doc, problem_type)
    except RecordError as exc:
        raise RecordError(exc.reason, exc.field, model) from None
    return Inference(event_id, model, version_text, when, prediction, score)


def _score(doc: dict[str, Any], problem_type: ProblemType) -> float | None:
    score = None
    if doc.get("probability") is not None:
        score = _probability(doc["probability"], "probability")
    probabilities = doc.get("probabilities")
    if probabilities is not None:
        if not isinstance(probabilities, dict):
            raise RecordError("expected an object of class -> probability", "probabilities")
        for cls, value in probabilities.items():
            _probability(value, f"probabilities.{cls}")
        if problem_type == BINARY and score is None:
            for cls, value in probabilities.items():
                if canonical_class(cls, "probabilities", BINARY) == POSITIVE:
                    score = float(value)
    return score if problem_type == BINARY else None


def parse_label(doc: dict[str, Any]) -> Label:
    """Validate a label document; its class is checked against the model once it is joined."""
    event_id = _required_text(doc, "event_id")
    if "label" not in doc or doc["label"] is None:
        raise RecordError("is required", "label")
    label = doc["label"]
    if isinstance(label, float) and not math.isfinite(label):
        raise RecordError(f"{label!r} is not a class label", "label")
    if isinstance(label, (dict, list)):
        raise RecordError(f"expected a class label, got {type(label).__name__}", "label")
    when = None
    if doc.get("label_time") is not None:
        try:
            when = parse_time(doc["label_time"])
        except ValueError as exc:
            raise RecordError(str(exc), "label_time") from None
    return Label(event_id, label, when)
