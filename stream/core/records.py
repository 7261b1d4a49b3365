"""Message types of the contract and their validation: raw Kafka messages in, typed records out."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from stream.core.timefmt import format_time, parse_time
from stream.errors import RecordError

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


# The records below are made for every message and instance, so they are not frozen: a frozen
# dataclass sets each field through object.__setattr__, four times the cost of its __init__ here.
# They are values all the same (never changed once made, hashed by their fields).
@dataclass(slots=True, unsafe_hash=True)
class RawMessage:
    """One message as read from Kafka, before any decoding; `side` says which input it came from."""

    side: Side
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # Kafka's record time, epoch seconds (the reference for event times)


Probabilities = tuple[tuple[str, float], ...]  # (canonical class, probability) pairs


@dataclass(slots=True, unsafe_hash=True)
class Inference:
    """A validated prediction: the class predicted and, for binary models, the positive-class score
    (for multiclass models, the probability of each class, when the record carried them)."""

    event_id: str
    model: str
    model_version: str
    time: float
    prediction: str
    score: float | None
    probabilities: Probabilities | None = None


@dataclass(slots=True, unsafe_hash=True)
class Label:
    """A validated ground-truth label; `time` is the label's own time when it carried one."""

    event_id: str
    label: str | int | float | bool  # the JSON scalar as sent; canonical once its model is known
    time: float | None


@dataclass(slots=True, unsafe_hash=True)
class Joined:
    """An inference matched with its label: one sample for the metrics."""

    model: str
    model_version: str
    time: float
    y_true: str
    y_pred: str
    score: float | None
    subsamples: int = 0  # bit k: the sample is in subsample k (see aggregate.subsample_mask)


# Bounds that keep one record from growing the state: ids, names, versions and class labels are
# stored with every waiting entry and window, and a window's counters grow with its classes.
MAX_TEXT_CHARS = 256
# Event times must be plausible: from 2000-01-01 on, and at most MAX_FUTURE seconds (a setting)
# ahead of the record's Kafka timestamp. Earlier or later times are dead-lettered.
MIN_EVENT_TIME = 946684800.0


def shown(value: object, limit: int = 60) -> str:
    """A short, safe rendering of a value for an error message (containers by type and size)."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'} of {len(value)} items"
    text = (
        repr(value) if not isinstance(value, int) or isinstance(value, bool) or abs(value) < 10**60 else "a huge number"
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_json(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Decode a message value as a JSON object, or raise RecordError saying why not."""
    if value is None:
        raise RecordError("message has no value")
    if len(value) > max_bytes:
        raise RecordError(f"message is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        try:
            doc = _DECODER.decode(value.decode("utf-8"))  # plain UTF-8, the common case, decoded fastest
        except ValueError:  # also UnicodeDecodeError: let json detect the encoding (a BOM, UTF-16) and say why
            doc = json.loads(value)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"not valid UTF-8 JSON: {shown(str(exc), 200)}") from None
    except RecursionError:
        raise RecordError("JSON nested too deeply") from None
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
            raise RecordError(f"{shown(value)} is not a class label", field)
        text = str(int(value))
    elif isinstance(value, str) and value.strip():
        text = plain_text(value.strip(), field)
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
        raise RecordError(f"expected a class label, got {shown(value)}", field)
    if problem_type == BINARY and text not in (NEGATIVE, POSITIVE):
        raise RecordError(f"binary classes are 0 and 1, got {shown(value)}", field)
    return text


def number(value: object, field: str) -> float:
    """A finite number from a JSON number or numeric text; RecordError naming `field` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RecordError(f"expected a finite number, got {shown(value)}", field)
    try:
        result = float(value)
    except ValueError:
        raise RecordError(f"expected a number, got {shown(value)}", field) from None
    except OverflowError:  # an integer too large for a float
        raise RecordError(f"expected a finite number, got {shown(value)}", field) from None
    if not math.isfinite(result):
        raise RecordError(f"expected a finite number, got {shown(value)}", field)
    return result


def probability_of(value: object, field: str) -> float:
    """A probability: a JSON number in [0, 1]; RecordError naming `field` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"expected a number in [0, 1], got {shown(value)}", field)
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not (0.0 <= result <= 1.0):  # also NaN
        raise RecordError(f"probability {shown(value)} is outside [0, 1]", field)
    return result


def _required_text(doc: dict[str, Any], field: str, model: str | None = None) -> str:
    value = doc.get(field)
    if value is None:
        raise RecordError("is required", field, model)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"expected a string, got {shown(value)}", field, model)
    text = str(value).strip()
    if not text:
        raise RecordError("must not be empty", field, model)
    return plain_text(text, field, model)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # either of the above, in one scan
_DECODER = json.JSONDecoder()


def plain_text(text: str, field: str, model: str | None = None) -> str:
    """Text that can be stored: names and classes are joined by a control character, so none may
    contain one; a lone surrogate (legal in JSON's \\u escapes) is not Unicode text that Redis or
    Kafka can carry; and at most MAX_TEXT_CHARS characters."""
    if len(text) > MAX_TEXT_CHARS:
        raise RecordError(f"is {len(text)} characters long, over the limit of {MAX_TEXT_CHARS}", field, model)
    if _UNSTORABLE.search(text) is None:
        return text
    if _CONTROL.search(text):
        raise RecordError(f"must not contain control characters, got {shown(text)}", field, model)
    raise RecordError("is not valid Unicode text (a lone surrogate)", field, model)


def event_time(value: object, field: str, reference: float, max_future: float, model: str | None = None) -> float:
    """A plausible event time: parsed, from 2000-01-01 on, and at most `max_future` seconds after
    `reference` (the record's Kafka timestamp, or the wall clock)."""
    try:
        when = parse_time(value)
    except ValueError as exc:
        raise RecordError(str(exc), field, model) from None
    if when < MIN_EVENT_TIME:
        raise RecordError(f"{shown(value)} is before 2000-01-01, not a plausible event time", field, model)
    if when > reference + max_future:
        raise RecordError(
            f"{shown(value)} is more than {max_future:.0f} s ahead of the record's timestamp "
            f"{format_time(reference)} (TRUTHSTREAM_MAX_FUTURE_SECONDS)",
            field,
            model,
        )
    return when


def parse_inference(
    doc: dict[str, Any], problem_type_of: Any, reference: float, max_future: float = math.inf
) -> Inference:
    """Validate an inference document; `problem_type_of(model)` says how to read its classes, and
    its time may be at most `max_future` seconds after `reference` (see `event_time`)."""
    event_id = _required_text(doc, "event_id")
    model = _required_text(doc, "model")
    version = doc.get("model_version")
    if version is None:
        version_text = ""
    elif isinstance(version, bool) or not isinstance(version, (str, int, float)):
        raise RecordError(f"expected a string or a number, got {shown(version)}", "model_version", model)
    else:
        version_text = plain_text(str(version), "model_version", model)
    if "inference_time" not in doc:
        raise RecordError("is required", "inference_time", model)
    when = event_time(doc["inference_time"], "inference_time", reference, max_future, model)
    if "prediction" not in doc or doc["prediction"] is None:
        raise RecordError("is required", "prediction", model)
    problem_type: ProblemType = problem_type_of(model)
    try:
        prediction = canonical_class(doc["prediction"], "prediction", problem_type)
        score, probabilities = _scores(doc, problem_type)
    except RecordError as exc:
        raise RecordError(exc.reason, exc.field, model) from None
    return Inference(event_id, model, version_text, when, prediction, score, probabilities)


def parse_sibling(doc: dict[str, Any], first: Inference, problem_type: ProblemType) -> Inference:
    """Another instance of the batched capture `first` was read from: the same model, version and
    time (checked once, with `first`), so only its event id, prediction and scores are read, as
    `parse_inference` reads them."""
    event_id = _required_text(doc, "event_id")
    if doc.get("prediction") is None:
        raise RecordError("is required", "prediction", first.model)
    try:
        prediction = canonical_class(doc["prediction"], "prediction", problem_type)
        score, probabilities = _scores(doc, problem_type)
    except RecordError as exc:
        raise RecordError(exc.reason, exc.field, first.model) from None
    return Inference(event_id, first.model, first.model_version, first.time, prediction, score, probabilities)


def _scores(doc: dict[str, Any], problem_type: ProblemType) -> tuple[float | None, Probabilities | None]:
    """The positive-class score of a binary model, or the class probabilities of a multiclass one."""
    score = None
    if doc.get("probability") is not None:
        score = probability_of(doc["probability"], "probability")
    probabilities = doc.get("probabilities")
    if probabilities is not None:
        if not isinstance(probabilities, dict):
            raise RecordError("expected an object of class -> probability", "probabilities")
        values = [probability_of(value, f"probabilities.{cls}") for cls, value in probabilities.items()]
        if problem_type == BINARY and score is None:
            for cls, value in probabilities.items():
                if canonical_class(cls, "probabilities", BINARY) == POSITIVE:
                    score = float(value)
        if problem_type == MULTICLASS and probabilities:
            classes = [canonical_class(cls, "probabilities", MULTICLASS) for cls in probabilities]
            return None, tuple(zip(classes, values))
    return (score if problem_type == BINARY else None), None


def parse_label(doc: dict[str, Any], reference: float, max_future: float = math.inf) -> Label:
    """Validate a label document; its class is checked against the model once it is joined, and
    its time (optional) may be at most `max_future` seconds after `reference`."""
    event_id = _required_text(doc, "event_id")
    if "label" not in doc or doc["label"] is None:
        raise RecordError("is required", "label")
    label = doc["label"]
    if isinstance(label, float) and not math.isfinite(label):
        raise RecordError(f"{shown(label)} is not a class label", "label")
    if isinstance(label, (dict, list)):
        raise RecordError(f"expected a class label, got {type(label).__name__}", "label")
    if isinstance(label, str):
        plain_text(label, "label")
    when = None
    if doc.get("label_time") is not None:
        when = event_time(doc["label_time"], "label_time", reference, max_future)
    return Label(event_id, label, when)
