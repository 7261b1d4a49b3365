"""SageMaker capture and ground-truth records: decoding, attributes, errors, and the worker's core."""

from __future__ import annotations

import dataclasses
import json

import pytest

from stream.core.catalog import Catalog
from stream.core.reading import Reader, event_ids
from stream.core.records import parse_inference
from stream.core.sagemaker import CaptureFormat, capture_to_inferences, ground_truth_to_labels
from stream.core.state import StateView, StepResult
from stream.core.step import Step
from stream.errors import RecordError
from stream.settings import Settings
from stream.stores.memory import MemoryStore
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
    [got] = capture_to_inferences(doc, fmt, "churn", "v2")
    assert got == {"event_id": "e-1", "model": "churn", "model_version": "v2", "inference_time": WHEN, **expected}


def test_inference_id_wins_over_event_id() -> None:
    """The join key is inferenceId when the caller supplied one, else eventId (SageMaker's rule)."""
    doc = capture("e-1", WHEN, "0.9", inference_id="order-77")
    assert capture_to_inferences(doc, CaptureFormat(), "m")[0]["event_id"] == "order-77"


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
        capture_to_inferences(doc, CaptureFormat(), "m")
    assert err.value.field == field and reason in err.value.reason


def test_ground_truth_in_csv_and_json() -> None:
    """A ground-truth record's CSV value or JSON `label` is the label."""
    assert ground_truth_to_labels(ground_truth("e", 1)) == [{"event_id": "e", "label": "1"}]
    assert ground_truth_to_labels(ground_truth("e", "cat", "JSON")) == [{"event_id": "e", "label": "cat"}]


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


def _scores(records: list[dict]) -> list[tuple[str, float, object]]:
    return [(r["event_id"], r["probability"], r["prediction"]) for r in records]


def test_a_bare_score_with_attribute_0_is_column_0() -> None:
    """The commonest capture, read with `--probability-attribute 0` as SageMaker's examples do."""
    doc = capture("e", WHEN, "0.01584203727543354", content_type="text/csv; charset=utf-8")
    assert _scores(capture_to_inferences(doc, CaptureFormat(probability_attribute="0"), "m")) == [
        ("e", 0.01584203727543354, 0)
    ]


MULTI = [
    (
        "JSON Lines",
        capture(
            "r",
            WHEN,
            '{"predicted_label":1,"score":0.98}\n{"predicted_label":0,"score":0.50}\n',
            "JSON",
            content_type="application/jsonlines",
        ),
        CaptureFormat("predicted_label", "score"),
        [("r:0", 0.98, 1), ("r:1", 0.5, 0)],
    ),
    (
        "JSON list",
        capture(
            "r",
            WHEN,
            '{"predictions": [{"score": 0.98, "predicted_label": 1}, {"score": 0.2, "predicted_label": 0}]}',
            "JSON",
            content_type="application/json",
        ),
        CaptureFormat("predictions[*].predicted_label", "predictions[*].score"),
        [("r:0", 0.98, 1), ("r:1", 0.2, 0)],
    ),
    (
        "CSV rows",
        capture("r", WHEN, "0.9\n0.1\n0.7\n", content_type="text/csv"),
        CaptureFormat(probability_attribute="0"),
        [("r:0", 0.9, 1), ("r:1", 0.1, 0), ("r:2", 0.7, 1)],
    ),
    (
        "CSV rows, Windows line ends",
        capture("r", WHEN, "0.9\r\n0.1\r", content_type="text/csv"),
        CaptureFormat(),
        [("r:0", 0.9, 1), ("r:1", 0.1, 0)],
    ),
    (
        "bare JSON list",
        capture("r", WHEN, "[0.9, 0.1]", "JSON", content_type="application/json"),
        CaptureFormat(),
        [("r:0", 0.9, 1), ("r:1", 0.1, 0)],
    ),
    (
        "BASE64 JSON Lines",
        capture("r", WHEN, '{"score": 0.3}\n{"score": 0.6}', "BASE64", content_type="application/jsonlines"),
        CaptureFormat(probability_attribute="score"),
        [("r:0", 0.3, 0), ("r:1", 0.6, 1)],
    ),
]


@pytest.mark.parametrize("name,doc,fmt,expected", MULTI, ids=[m[0] for m in MULTI])
def test_every_instance_of_a_capture_becomes_a_record(name, doc, fmt, expected) -> None:
    """Several instances in one capture: one inference record each, ids `<eventId>:<i>`."""
    assert _scores(capture_to_inferences(doc, fmt, "m")) == expected


def test_predictions_and_probabilities_of_different_counts_are_refused() -> None:
    """Attributes that select different numbers of instances are an error naming both counts."""
    doc = capture("r", WHEN, '{"labels": [1, 0, 1], "scores": [0.9, 0.2]}', "JSON", content_type="application/json")
    with pytest.raises(RecordError, match="3 predictions but 2 probabilities"):
        capture_to_inferences(doc, CaptureFormat("labels", "scores"), "m")


def test_batch_transform_captures_are_timed_by_the_callers_hour() -> None:
    """`batchTransformOutput`, no inferenceTime, the output wrapped in `SageMakerOutput`."""
    doc = capture("b", WHEN, "", "JSON")
    del doc["eventMetadata"]["inferenceTime"]
    doc["captureData"] = {
        "batchTransformOutput": {
            "observedContentType": "application/jsonlines",
            "mode": "OUTPUT",
            "data": '{"SageMakerOutput": {"predicted_label": 1, "score": 0.98}, "features": [1, 2]}',
            "encoding": "JSON",
        }
    }
    fmt = CaptureFormat("SageMakerOutput.predicted_label", "SageMakerOutput.score")
    [record] = capture_to_inferences(doc, fmt, "m", default_time="2025-11-24T16:00:00Z")
    assert record["inference_time"] == "2025-11-24T16:00:00Z" and record["prediction"] == 1
    with pytest.raises(RecordError) as err:
        capture_to_inferences(doc, fmt, "m")
    assert err.value.field == "eventMetadata.inferenceTime"


def test_ground_truth_with_instances_gives_one_label_each() -> None:
    """`{"instances": [...]}`, several CSV rows or JSON Lines: labels `<eventId>:<i>`, positionally."""
    doc = ground_truth("r", "", "JSON")
    doc["groundTruthData"]["data"] = '{"instances": [{"label": 1}, {"label": 0}, {"label": 1}]}'
    assert ground_truth_to_labels(doc) == [
        {"event_id": "r:0", "label": 1},
        {"event_id": "r:1", "label": 0},
        {"event_id": "r:2", "label": 1},
    ]
    doc["groundTruthData"] = {"data": "1\n0", "encoding": "CSV"}
    assert [x["event_id"] for x in ground_truth_to_labels(doc)] == ["r:0", "r:1"]
    doc["groundTruthData"] = {"data": "1,0", "encoding": "CSV"}
    with pytest.raises(RecordError, match="one label per CSV row"):
        ground_truth_to_labels(doc)


def test_a_300_instance_capture_joins_its_ground_truth_completely() -> None:
    """Through the core, as records on the topics: 300 instances, 300 labels, 300 samples, nothing else."""
    settings = Settings(window_seconds=60.0, label_grace=10.0, min_samples=1, rolling_size=0, capture_model="churn")
    scores = [round(i / 300, 4) for i in range(300)]
    truth = [int(s > 0.3) for s in scores]
    doc = capture(
        "big", "2025-11-24T16:00:01Z", json.dumps({"predictions": [{"score": s} for s in scores]}), "JSON",
        content_type="application/json",
    )  # fmt: skip
    gt = ground_truth("big", "", "JSON")
    gt["groundTruthData"]["data"] = json.dumps({"instances": [{"label": y} for y in truth]})
    h = Harness("memory", dataclasses.replace(settings, capture_probability_attribute="predictions[*].score"))
    inf, lab = Topic("inferences"), Topic("labels")
    tick = {"event_id": "t", "model": "churn", "inference_time": T0 + 100, "prediction": 0}
    h.feed([inf.msg(doc), lab.msg(gt), inf.msg(tick)])
    [record] = h.metrics()
    assert record["sample_count"] == 300
    matrix = record["binary_classification_metrics"]["confusion_matrix"]
    assert sum(n for row in matrix.values() for n in row.values()) == 300
    assert matrix["0"]["1"] == sum(1 for s, y in zip(scores, truth) if s >= 0.5 and not y)
    assert h.records("dead-letters") == [] and h.counted("duplicates") == 0


def test_a_capture_is_read_once_and_its_view_holds_every_instance() -> None:
    """The batch is read before the state is loaded: the view holds each instance's entry, so the
    step runs once (no id found missing), and each instance reads as `parse_inference` reads it."""
    config = Settings(capture_model="churn").core()
    catalog = Catalog()
    doc = capture("e", WHEN, "0.9\n0.2\n0.51")
    inf = Topic("inferences")
    message = inf.msg(doc)
    [read] = [Reader(config, catalog, T0).read(message)]
    assert read.error is None
    assert event_ids([read]) == {"e:0", "e:1", "e:2"}
    expected = [
        parse_inference(d, catalog.problem_type, T0)
        for d in capture_to_inferences(doc, CaptureFormat(), "churn", "", T0)
    ]
    assert [i.inference for i in read.inferences] == expected
    runs = []

    def step(view: StateView) -> StepResult:
        runs.append(set(view.entries))
        return Step(config, catalog, view, T0).run([message], [read])

    result, _ = MemoryStore().run(message.partition, event_ids([read]), set(), step)
    assert runs == [{"e:0", "e:1", "e:2"}] and not result.missing
    assert sum(1 for entry in result.entries.values() if entry is not None) == 3


@pytest.mark.parametrize(
    "output,reason,field",
    [
        ("0.9\n1.5\n0.2", "instance 1 of 3: probability 1.5 is outside [0, 1]", "probability"),
        ("0.9\n0.2\nx", "expected a number, got 'x'", "captureData.endpointOutput (instance 2 of 3)"),
    ],
)
def test_a_bad_instance_refuses_the_whole_capture_naming_it(output: str, reason: str, field: str) -> None:
    config = Settings(capture_model="churn").core()
    read = Reader(config, Catalog(), T0).read(Topic("inferences").msg(capture("e", WHEN, output)))
    assert read.inferences == [] and read.error is not None
    assert (read.error.reason, read.error.field) == (reason, field)
