"""SageMaker capture and ground-truth records: decoding, attributes, errors, and the worker's core."""

from __future__ import annotations

import pytest

from stream.errors import RecordError
from stream.core.sagemaker import CaptureFormat, capture_to_inference, ground_truth_to_label
from stream.settings import Settings
from tests.factories import T0, Topic
from tests.harness import Harness
from tests.sagemaker_factories import capture, ground_truth

WHEN = "2022-02-14T17:25:49Z"


@pytest.mark.parametrize(
    "encoding,output,content_type,fmt,expected",
    [
        (
            "CSV",
            "0.0254181120544672",
            "text/csv",
            CaptureFormat(),
            {"probability": 0.0254181120544672, "prediction": 0},
        ),
        ("CSV", "1,0.91", "text/csv", CaptureFormat("0", "1"), {"probability": 0.91, "prediction": "1"}),
        (
            "JSON",
            '{"predictions": [{"label": 1, "score": 0.8}]}',
            "application/json",
            CaptureFormat("predictions.0.label", "predictions.0.score"),
            {"probability": 0.8, "prediction": 1},
        ),
        (
            "BASE64",
            '{"score": 0.7}',
            "application/json",
            CaptureFormat(probability_attribute="score", probability_threshold=0.7),
            {"probability": 0.7, "prediction": 1},
        ),
        (
            "BASE64",
            "0.2,x",
            "text/csv",
            CaptureFormat(probability_attribute="0"),
            {"probability": 0.2, "prediction": 0},
        ),
    ],
)
def test_capture_outputs_in_every_encoding(encoding, output, content_type, fmt, expected) -> None:
    """CSV, JSON and BASE64 outputs give the prediction and probability the attributes name."""
    doc = capture("e-1", WHEN, output, encoding, content_type=content_type)
    got = capture_to_inference(doc, fmt, "churn", "v2")
    assert got == {"event_id": "e-1", "model": "churn", "model_version": "v2", "inference_time": WHEN, **expected}


def test_inference_id_wins_over_event_id() -> None:
    """The join key is inferenceId when the caller supplied one, else eventId (SageMaker's rule)."""
    doc = capture("e-1", WHEN, "0.9", inference_id="order-77")
    assert capture_to_inference(doc, CaptureFormat(), "m")["event_id"] == "order-77"


def raw_data(doc: dict, data: str) -> dict:
    doc["captureData"]["endpointOutput"]["data"] = data
    return doc


@pytest.mark.parametrize(
    "doc,field,reason",
    [
        (raw_data(capture("e", WHEN, "", "BASE64"), "%%%not-base64"), "captureData.endpointOutput.data", "BASE64"),
        (capture("e", WHEN, "0.1", "XML"), "captureData.endpointOutput.encoding", "unknown encoding"),
        (
            capture("e", WHEN, "{oops", "JSON", content_type="application/json"),
            "captureData.endpointOutput.data",
            "does not parse",
        ),
        (
            capture("e", WHEN, "abc", "BASE64", content_type="image/png"),
            "captureData.endpointOutput.observedContentType",
            "only CSV and JSON",
        ),
        (capture("e", WHEN, "1,2"), "captureData.endpointOutput", "set an inference or probability attribute"),
        (capture("e", WHEN, "high"), "captureData.endpointOutput", "expected a number"),
    ],
)
def test_unreadable_captures_name_the_field(doc, field, reason) -> None:
    """Each unreadable capture raises a RecordError naming the field and saying why."""
    with pytest.raises(RecordError) as err:
        capture_to_inference(doc, CaptureFormat(), "m")
    assert err.value.field == field and reason in err.value.reason


def test_ground_truth_in_csv_and_json() -> None:
    """A ground-truth record's CSV value or JSON `label` is the label."""
    assert ground_truth_to_label(ground_truth("e", 1)) == {"event_id": "e", "label": "1"}
    assert ground_truth_to_label(ground_truth("e", "cat", "JSON")) == {"event_id": "e", "label": "cat"}


def test_worker_core_accepts_sagemaker_records_on_its_topics() -> None:
    """Captures and ground truth forwarded unchanged to the topics join like contract records."""
    settings = Settings(
        window_seconds=60.0,
        label_grace=10.0,
        min_samples=1,
        rolling_size=0,
        capture_model="churn",
        capture_probability_threshold=0.5,
    )
    h = Harness("memory", settings)
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = [
        inf.msg(capture("e1", "2025-11-24T16:00:01Z", "0.9")),
        lab.msg(ground_truth("e1", 1)),
        inf.msg(capture("e2", "2025-11-24T16:00:02Z", "0.3", inference_id="i2")),
        lab.msg(ground_truth("i2", 1)),
        inf.msg(capture("e3", "2025-11-24T16:00:03Z", "oops")),
        inf.msg({"event_id": "t", "model": "churn", "inference_time": T0 + 100, "prediction": 0}),
    ]
    h.feed(msgs)
    [record] = h.metrics()
    assert record["model"] == "churn" and record["sample_count"] == 2
    assert record["binary_classification_metrics"]["confusion_matrix"] == {"0": {"0": 0, "1": 0}, "1": {"1": 1, "0": 1}}
    [dead] = h.records("dead-letters")
    assert dead["field"] == "captureData.endpointOutput" and "expected a number" in dead["reason"]
