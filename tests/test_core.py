"""The core's behaviour (join, windows, counts, violations, dead letters) on both state stores.

Every test runs once on the in-memory store and once on a real Redis, so the
worker's store and the replay store are held to the same contract.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import uuid
from dataclasses import replace
from typing import Any

import pytest

from stream.core.aggregate import WindowAggregate
from stream.core.catalog import Catalog
from stream.core.constraints import parse_constraints
from stream.core.contract import Job
from stream.core.keying import default_partition
from stream.core.records import Joined, RawMessage
from stream.core.state import StepResult
from stream.core.timefmt import format_time
from stream.core.windows import WindowKey
from tests.factories import T0, Topic, inference, label, on_partition
from tests.harness import Harness, base_settings

pytestmark = pytest.mark.redis_cluster  # its Redis tests run again on a Redis Cluster in CI

RECALL_AT_LEAST_0_8 = {
    "binary_classification_constraints": {"recall": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"}}
}


def catalog(doc=RECALL_AT_LEAST_0_8) -> Catalog:
    return Catalog(default=parse_constraints(doc, "test-constraints.json"))


def tick(inf: Topic, t: float, n: int = 1, partition: int = 0) -> list:
    """Inferences without labels whose only job is to move event time forward."""
    return [
        inf.msg(inference(on_partition(f"tick-{uuid.uuid4().hex}", partition, inf.partitions), t, 0, 0.1), partition)
        for _ in range(n)
    ]


def test_labels_join_in_either_order(make) -> None:
    """A label before its inference and a label after it both join, once each."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed(
        [
            lab.msg(label("a", 1)),
            inf.msg(inference("a", T0 + 1, 1, 0.9)),
            inf.msg(inference("b", T0 + 2, 0, 0.2)),
            lab.msg(label("b", 1)),
            *tick(inf, T0 + 100),
        ]
    )
    [record] = h.metrics()
    assert record["sample_count"] == 2
    stats = record["binary_classification_metrics"]
    assert stats["confusion_matrix"] == {"0": {"0": 0, "1": 0}, "1": {"0": 1, "1": 1}}  # every cell, as SageMaker
    assert stats["recall"]["value"] == 0.5


def test_duplicates_are_counted_once(make) -> None:
    """Repeated inferences and labels for one event id add one sample and are reported as duplicates."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = [
        inf.msg(inference("a", T0 + 1, 1)),
        inf.msg(inference("a", T0 + 1, 1)),
        lab.msg(label("a", 1)),
        lab.msg(label("a", 1)),
        inf.msg(inference("a", T0 + 1, 1)),
    ]
    h.feed(msgs + tick(inf, T0 + 100), batch=2)
    [record] = h.metrics()
    assert record["sample_count"] == 1
    # The first duplicate came before the model had a window: an accounting record carried it at once.
    assert h.counted("duplicates") == 3 and [r["counts"]["duplicates"] for r in h.metrics("accounting")] == [1]


@pytest.mark.parametrize("joined_first", [False, True], ids=["while-waiting", "after-the-join"])
def test_a_duplicate_with_other_content_is_a_dead_lettered_conflict(make, joined_first: bool) -> None:
    """An event id sent again with another prediction, or labelled again with another value, is a
    conflict: dead-lettered with what differs and counted; the first record stands. The same
    record sent again stays a plain duplicate, before and after the join."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")

    def joins() -> list:
        return [lab.msg(label("a", 1)), inf.msg(inference("b", T0 + 2, 0, 0.2))]

    def again() -> list:
        return [
            inf.msg(inference("a", T0 + 1, 1, 0.9)),  # the same: a duplicate
            inf.msg(inference("a", T0 + 1, 0, 0.3)),  # another prediction and score: a conflict
            lab.msg(label("b", 1, label_time=T0 + 3)),  # the same: a duplicate
            lab.msg(label("b", True, label_time=T0 + 3)),  # true is not 1: a conflict
        ]

    msgs = [inf.msg(inference("a", T0 + 1, 1, 0.9)), lab.msg(label("b", 1, label_time=T0 + 3))]
    msgs += joins() + again() if joined_first else again() + joins()
    # timed labels move the label partition's event time too: an orphan label moves it on
    h.feed([*msgs, *tick(inf, T0 + 100), lab.msg(label("orphan", 0, label_time=T0 + 100))])
    [record] = h.metrics()
    assert record["sample_count"] == 2
    matrix = record["binary_classification_metrics"]["confusion_matrix"]
    assert (matrix["1"]["1"], matrix["1"]["0"]) == (1, 1)  # a predicted 1 and b predicted 0: the first ones
    assert h.counted("conflicts") == 2 and h.counted("duplicates") == 2
    letters = h.records("dead-letters")
    assert len(letters) == 2 and all(d["field"] == "event_id" for d in letters)
    assert all("conflicting duplicate of event" in d["reason"] for d in letters)
    if not joined_first:  # still waiting: the reason names what differs
        reasons = sorted(d["reason"] for d in letters)
        assert "prediction '1' then '0', score 0.9 then 0.3" in reasons[0]
        assert "label 1 then True" in reasons[1]


def test_unmatched_inference_expires_and_is_counted(make) -> None:
    """An inference without a label past the TTL is reported as expired, and a label after that waits alone."""
    h = make(base_settings(label_ttl=120.0))
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("lonely", T0 + 1, 1)), inf.msg(inference("a", T0 + 2, 1)), lab.msg(label("a", 1))])
    h.feed([*tick(inf, T0 + 200), lab.msg(label("lonely", 1)), *tick(inf, T0 + 300)])
    first = h.metrics()[0]
    assert first["sample_count"] == 1
    expired = sum(r["counts"]["expired_inferences"] for r in h.metrics())
    assert expired == 1


def test_late_label_is_counted_in_next_record_not_the_closed_window(make) -> None:
    """A label for a closed window is counted as late in the next metrics record."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed(
        [
            inf.msg(inference("a", T0 + 1, 1)),
            lab.msg(label("a", 1)),
            inf.msg(inference("late", T0 + 2, 1)),
            *tick(inf, T0 + 95),
        ]
    )
    assert [r["sample_count"] for r in h.metrics()] == [1]
    h.feed(
        [lab.msg(label("late", 0)), inf.msg(inference("c", T0 + 130, 1)), lab.msg(label("c", 1)), *tick(inf, T0 + 300)]
    )
    first, second = h.metrics()[:2]
    assert first["counts"]["late"] == 0
    assert second["counts"]["late"] == 1 and second["sample_count"] == 1


def test_windows_close_by_event_time_and_results_do_not_depend_on_batching(make) -> None:
    """The same messages give the same records whatever the batch size; nothing closes before its time."""
    rng = random.Random(3)
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i in range(400):
        y = rng.randint(0, 1)
        msgs.append(inf.msg(inference(f"e{i}", T0 + i * 0.5, y if rng.random() < 0.8 else 1 - y, rng.random())))
        msgs.append(lab.msg(label(f"e{i}", y)))
    rng.shuffle(msgs)  # labels before, after, far after their inference
    msgs.sort(key=lambda m: (m.topic, m.offset))  # but each partition stays in offset order
    interleaved = [m for pair in zip(msgs[:400], msgs[400:]) for m in pair]
    outputs = []
    for batch in (1, 37, 1000):
        h = make()
        h.feed(interleaved, batch=batch)
        # provisional records are snapshots taken at a batch's end: every other record is the same
        final = [r for r in h.records("metrics") if r["window"]["kind"] != "provisional"]
        outputs.append(json.dumps(final, sort_keys=True))
    assert outputs[0] == outputs[1] == outputs[2]
    windows = [r["window"]["start"] for r in json.loads(outputs[0])]
    # 200 s of inferences in 60 s windows: the last window (and the one before it, within the
    # 30 s grace of the latest event) are still open.
    assert windows == ["2025-11-24T16:00:00Z", "2025-11-24T16:01:00Z"]


def test_windows_of_integer_sizes_close_once(make) -> None:
    """Settings built in Python may hold integers (window=60): a window still has one storage name,
    so it closes, once, and is not read again on every later batch."""
    h = make(base_settings(window_seconds=60, label_grace=30))
    inf, lab = Topic("inferences"), Topic("labels")
    pairs = [m for i in range(300) for m in (inf.msg(inference(f"e{i}", T0 + i, 1, 0.9)), lab.msg(label(f"e{i}", 1)))]
    h.feed(pairs, batch=50)
    h.feed(tick(inf, T0 + 400))
    assert [(r["window"]["start"], r["sample_count"]) for r in h.metrics()] == [
        (format_time(T0 + 60 * k), 60) for k in range(5)
    ]


def test_a_window_waits_for_every_partition(make) -> None:
    """With two partitions, a window closes only when both have passed its end plus grace."""
    h = make(partitions=2)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    h.feed([inf.msg(inference("a", T0 + 1, 1), 0), lab.msg(label("a", 1), 0), *tick(inf, T0 + 500, partition=0)])
    assert h.metrics() == []
    h.feed(tick(inf, T0 + 95, partition=1))
    assert [r["sample_count"] for r in h.metrics()] == [1]


def test_violation_records_follow_the_contract(make) -> None:
    """A broken constraint yields one violation with a deterministic id and SageMaker's description."""
    h = make(base_settings(min_samples=4), catalog())
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i, (pred, y) in enumerate([(1, 1), (0, 1), (0, 1), (1, 0), (0, 0)]):
        msgs += [inf.msg(inference(f"e{i}", T0 + i, pred, 0.5)), lab.msg(label(f"e{i}", y))]
    msgs += tick(inf, T0 + 100)
    h.feed(msgs)
    [record] = h.metrics()
    [violation] = h.records("violations")
    assert record["status"] == "violations" and record["violation_count"] == 1
    assert violation["metric_name"] == "recall"
    assert violation["constraint_check_type"] == "LessThanThreshold"
    assert violation["threshold"] == 0.8
    assert violation["value"] == pytest.approx(1 / 3)
    assert violation["sample_count"] == 5
    assert violation["window"] == {"kind": "tumbling", "start": "2025-11-24T16:00:00Z", "end": "2025-11-24T16:01:00Z"}
    # SageMaker's wording: full precision, the threshold quoted (no +/- without a deviation).
    assert violation["description"] == "Metric recall with 0.3333333333333333 was LessThanThreshold '0.8'"
    assert violation["model"] == "churn" and violation["model_version"] == "1"
    again = make(base_settings(min_samples=4), catalog())
    again.feed(msgs)
    assert again.records("violations")[0]["violation_id"] == violation["violation_id"]


def test_small_windows_are_reported_but_not_judged(make) -> None:
    """Below min_samples a window is published with status insufficient_data and raises no violation."""
    h = make(base_settings(min_samples=10), catalog())
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("a", T0, 0)), lab.msg(label("a", 1)), *tick(inf, T0 + 100)])
    [record] = h.metrics()
    assert record["status"] == "insufficient_data"
    assert h.records("violations") == []


BAD_INFERENCES = [
    (b"{not json", None, "not valid UTF-8 JSON"),
    (json.dumps([1, 2]).encode(), None, "expected a JSON object"),
    (json.dumps({"model": "churn", "inference_time": T0, "prediction": 1}).encode(), "event_id", "is required"),
    (json.dumps({"event_id": "x", "model": "churn", "prediction": 1}).encode(), "inference_time", "is required"),
    (
        json.dumps({"event_id": "x", "model": "churn", "inference_time": "yesterday", "prediction": 1}).encode(),
        "inference_time",
        "Invalid isoformat",
    ),
    (json.dumps({"event_id": "x", "model": "churn", "inference_time": T0}).encode(), "prediction", "is required"),
    (
        json.dumps(
            {"event_id": "x", "model": "churn", "inference_time": T0, "prediction": 1, "probability": 1.5}
        ).encode(),
        "probability",
        "outside [0, 1]",
    ),
    (
        b'{"event_id": "x", "model": "churn", "inference_time": 1764000000, "prediction": 1, "probability": NaN}',
        "probability",
        "outside [0, 1]",
    ),
    (
        json.dumps(
            {"event_id": "x", "model": "churn", "inference_time": T0, "prediction": 1, "probability": "high"}
        ).encode(),
        "probability",
        "expected a number",
    ),
    (
        json.dumps({"event_id": "x", "model": "churn", "inference_time": T0, "prediction": 3}).encode(),
        "prediction",
        "binary classes are 0 and 1",
    ),
    (
        json.dumps({"event_id": "x", "model": ["churn"], "inference_time": T0, "prediction": 1}).encode(),
        "model",
        "expected a string",
    ),
    (b"\xff\xfe binary", None, "not valid UTF-8 JSON"),
    (
        json.dumps(
            {
                "event_id": "x",
                "model": "churn",
                "inference_time": T0,
                "prediction": 1,
                "features": {"blob": "z" * 300_000},
            }
        ).encode(),
        None,
        "over the limit",
    ),
    # Poison found by probing the worker (issue 11): each once stopped or skewed it.
    (b"[" * 2000 + b"]" * 2000, None, "nested too deeply"),
    (
        b'{"event_id": "\\ud800x", "model": "churn", "inference_time": 1764000000, "prediction": 1}',
        "event_id",
        "surrogate",
    ),
    (b'{"event_id": "x", "model": "\\udfffm", "inference_time": 1764000000, "prediction": 1}', "model", "surrogate"),
    (
        json.dumps(
            {"event_id": "x", "model": "churn", "model_version": {"a": 1}, "inference_time": T0, "prediction": 1}
        ).encode(),
        "model_version",
        "expected a string or a number",
    ),
    (
        json.dumps(
            {"event_id": "x", "model": "churn", "inference_time": "9999-12-31T23:59:59Z", "prediction": 1}
        ).encode(),
        "inference_time",
        "ahead of the record's timestamp",
    ),
    (
        json.dumps({"event_id": "x", "model": "churn", "inference_time": 1e12, "prediction": 1}).encode(),
        "inference_time",
        "ahead of the record's timestamp",
    ),
    (
        json.dumps({"event_id": "x", "model": "churn", "inference_time": 10**400, "prediction": 1}).encode(),
        "inference_time",
        "out of range",
    ),
    (
        json.dumps(
            {"event_id": "x", "model": "churn", "inference_time": "1900-01-01T00:00:00Z", "prediction": 1}
        ).encode(),
        "inference_time",
        "before 2000-01-01",
    ),
    (
        json.dumps({"event_id": "x", "model": "churn", "inference_time": -1000, "prediction": 1}).encode(),
        "inference_time",
        "before 2000-01-01",
    ),
    (
        json.dumps({"event_id": "x" * 100_000, "model": "churn", "inference_time": T0, "prediction": 1}).encode(),
        "event_id",
        "over the limit of 256",
    ),
]


@pytest.mark.parametrize("raw,field,reason", BAD_INFERENCES)
def test_bad_inferences_go_to_dead_letters_and_the_rest_still_counts(make, raw, field, reason) -> None:
    """Each kind of bad inference becomes a dead letter naming field and reason; valid records still count."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    good = inf.msg(inference("a", T0, 1))
    bad = inf.msg(None, raw=raw)
    h.feed([good, bad, lab.msg(label("a", 1)), *tick(inf, T0 + 100)])
    [dead] = h.records("dead-letters")
    assert dead["field"] == field
    assert reason in dead["reason"]
    assert (dead["topic"], dead["partition"], dead["offset"]) == ("inferences", 0, bad.offset)
    # The dead letter holds the message's first 4 KiB, its length and digest: it always fits the topic.
    assert base64.b64decode(dead["value_base64"]) == raw[:4096]
    assert dead["value_truncated"] == (len(raw) > 4096)
    assert (dead["value_bytes"], dead["value_sha256"]) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert len(json.dumps(dead)) < 12_000 and len(dead["reason"]) <= 500
    [record] = h.metrics()
    assert record["sample_count"] == 1
    # counted once: in churn's window only if the record names churn, else in an accounting record
    # of its own (model null): never charged to a model that did not send it
    unattributed = [r["counts"]["rejected"] for r in h.metrics("accounting") if r["model"] is None]
    assert record["counts"]["rejected"] + sum(unattributed) == 1
    assert not record["counts"]["rejected"] or b'"model": "churn"' in raw


def test_counts_that_name_no_model_are_never_charged_to_a_model(make) -> None:
    """Unparsable inferences and labels of unknown events that expire name no model: they are
    counted in accounting records with `model` null, while churn's window counts only its own."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed(
        [
            inf.msg(inference("a", T0, 1)),
            inf.msg(None, raw=b"{not json"),
            inf.msg(None, raw=b"\xff\xfe"),
            lab.msg(label("nobody", 1)),
            lab.msg(label("a", 1)),
            inf.msg(inference("b", T0 + 5, 0)),
            lab.msg(label("b", 1)),
            *tick(inf, T0 + 100),
        ]
    )
    h.feed(tick(inf, T0 + 700))  # past the label TTL (600 s): the label of "nobody" expires
    [record] = h.metrics()
    assert record["model"] == "churn" and record["sample_count"] == 2
    assert record["counts"]["rejected"] == 0 and record["counts"]["expired_labels"] == 0
    unattributed = [r for r in h.metrics("accounting") if r["model"] is None]
    assert sum(r["counts"]["rejected"] for r in unattributed) == 2
    assert sum(r["counts"]["expired_labels"] for r in unattributed) == 1
    assert all(r["problem_type"] is None and r["model_version"] == "" for r in unattributed)


@pytest.mark.parametrize("order", ["label-first", "label-second"])
def test_label_outside_the_model_classes_is_dead_lettered(make, order) -> None:
    """A label of 2 for a binary model is refused (with its bytes); the inference waits for a valid label."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    bad_label = lab.msg(label("a", 2))
    prediction = inf.msg(inference("a", T0, 1))
    first, second = (bad_label, prediction) if order == "label-first" else (prediction, bad_label)
    h.feed([first, second, lab.msg(label("a", 1)), *tick(inf, T0 + 100)])
    [dead] = h.records("dead-letters")
    assert dead["field"] == "label" and "binary classes are 0 and 1" in dead["reason"]
    assert (dead["topic"], dead["offset"]) == ("labels", bad_label.offset)
    assert json.loads(dead["value"]) == {"event_id": "a", "label": 2}
    [record] = h.metrics()
    assert record["sample_count"] == 1 and record["counts"]["rejected"] == 1


def test_a_batch_seen_twice_changes_nothing(make) -> None:
    """Messages at offsets already applied (a redelivery after a crash) are skipped."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = [
        inf.msg(inference("a", T0, 1)),
        lab.msg(label("a", 1)),
        inf.msg(inference("b", T0, 0)),
        lab.msg(label("b", 0)),
    ]
    h.feed(msgs)
    h.feed(msgs)
    h.feed(tick(inf, T0 + 100))
    [record] = h.metrics()
    assert record["sample_count"] == 2 and record["counts"]["duplicates"] == 0


def test_multiclass_problem_type_comes_from_the_constraints(make) -> None:
    """A multiclass constraints file makes the worker publish multiclass metrics and accept any class."""
    doc = {
        "multiclass_classification_constraints": {
            "accuracy": {"threshold": 0.9, "comparison_operator": "LessThanThreshold"}
        }
    }
    h = make(catalog=catalog(doc))
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i, (pred, y) in enumerate([("cat", "cat"), ("dog", "cat"), ("bird", "bird")]):
        msgs += [inf.msg(inference(f"e{i}", T0 + i, pred)), lab.msg(label(f"e{i}", y))]
    h.feed(msgs + tick(inf, T0 + 100))
    [record] = h.metrics()
    stats = record["multiclass_classification_metrics"]
    assert stats["accuracy"]["value"] == pytest.approx(2 / 3)
    assert stats["confusion_matrix"] == {
        "bird": {"bird": 1, "cat": 0, "dog": 0},
        "cat": {"bird": 0, "cat": 1, "dog": 1},
        "dog": {"bird": 0, "cat": 0, "dog": 0},
    }
    assert h.records("violations")[0]["metric_name"] == "accuracy"


def test_idle_close_uses_the_wall_clock(make) -> None:
    """With no input, the idle timer moves event time to the wall clock so a quiet model still reports."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("a", T0, 1)), lab.msg(label("a", 1))])
    assert h.metrics() == []
    h.idle(T0 + 1000)
    assert [r["sample_count"] for r in h.metrics()] == [1]


def test_the_timer_sweep_expires_the_entries_of_partitions_nothing_comes_to(make) -> None:
    """After an idle close moved event time past the label TTL, a partition that receives nothing keeps
    its waiting inferences until the worker's timer sweeps every owned partition: then they expire,
    counted once in an accounting record; a second sweep finds nothing."""
    h = make(partitions=2)
    inf = Topic("inferences", 2)
    waiting = [on_partition(f"quiet{i}-", 1, 2) for i in range(3)]
    h.feed([inf.msg(inference(e, T0, 1)) for e in waiting] + [inf.msg(inference(on_partition("a", 0, 2), T0, 1))])
    h.idle(T0 + 10 * h.settings.label_ttl)
    assert h.counted("expired_inferences") == 0  # idleness alone expires nothing
    report = h.run(lambda engine: engine.sweep({0, 1}))
    assert report.outcomes[("inference", "expired")] == len(waiting) + 1
    assert h.counted("expired_inferences") == len(waiting) + 1
    again = h.run(lambda engine: engine.sweep({0, 1}))
    assert not again.outcomes and h.counted("expired_inferences") == len(waiting) + 1


def test_a_rolling_window_over_partitions_is_the_latest_n_samples_of_all_of_them(make) -> None:
    """With two partitions (each keeping its own part, as on a Redis Cluster), every rolling record is
    the 10 latest samples by event time of all joined so far: its accuracy equals scikit-learn's on
    them, its sequence counts every joined sample, and one comes every 5 samples of a partition."""
    from sklearn.metrics import accuracy_score

    h = make(base_settings(rolling_size=10, rolling_every=5), partitions=2)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    rng = random.Random(5)
    truth = []
    for i in range(40):
        e = on_partition(f"r{i}-", i % 2, 2)
        y, pred = rng.random() < 0.5, rng.random() < 0.5
        truth.append((int(y), int(pred)))
        h.feed([inf.msg(inference(e, T0 + i, int(pred))), lab.msg(label(e, int(y)))])
    rolling = h.metrics("rolling")
    # partition 0 holds samples 1, 3, 5, ... (its 5th is the 9th in all), partition 1 samples 2, 4, 6, ...
    assert [r["window"]["sequence"] for r in rolling] == [9, 10, 19, 20, 29, 30, 39, 40]
    for record in rolling:
        n = record["window"]["sequence"]
        latest = truth[max(0, n - 10) : n]
        want = accuracy_score([y for y, _ in latest], [p for _, p in latest])
        assert record["window"]["size"] == len(latest)
        assert record["binary_classification_metrics"]["accuracy"]["value"] == pytest.approx(want)


def test_rolling_window_is_evaluated_every_m_samples(make) -> None:
    """The rolling window publishes the last N samples every M joined samples."""
    h = make(base_settings(rolling_size=10, rolling_every=5))
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i in range(20):
        msgs += [inf.msg(inference(f"e{i}", T0 + i, i % 2)), lab.msg(label(f"e{i}", 1))]
    h.feed(msgs, batch=2)
    rolling = h.metrics("rolling")
    assert [r["window"]["sequence"] for r in rolling] == [5, 10, 15, 20]
    assert [r["sample_count"] for r in rolling] == [5, 10, 10, 10]
    assert rolling[-1]["binary_classification_metrics"]["recall"]["value"] == 0.5
    assert rolling[-1]["window"]["start"] == "2025-11-24T16:00:10Z"
    assert not math.isnan(rolling[0]["binary_classification_metrics"]["accuracy"]["value"])


def test_timed_labels_give_the_same_result_however_the_topics_interleave(make) -> None:
    """With label_time, reading all inferences before any label (a backlog) gives the live result."""
    inf, lab = Topic("inferences"), Topic("labels")
    infs, labs = [], []
    rng = random.Random(9)
    for i in range(300):
        t = T0 + i
        y = rng.randint(0, 1)
        infs.append(inf.msg(inference(f"e{i}", t, y if rng.random() < 0.7 else 1 - y)))
        labs.append(lab.msg(label(f"e{i}", y, label_time=t + rng.uniform(0, 20))))
    infs += tick(inf, T0 + 1000)
    labs.append(lab.msg(label("end", 0, label_time=T0 + 1000)))
    interleaved = [m for pair in zip(infs, labs) for m in pair]
    results = []
    for order in (interleaved, infs + labs, labs + infs):
        h = make()
        h.feed(order, batch=50)
        results.append(
            [
                (r["window"]["start"], r["sample_count"], r["binary_classification_metrics"]["accuracy"]["value"])
                for r in h.metrics()
            ]
        )
    assert results[0] == results[1] == results[2]
    assert sum(n for _, n, _ in results[0]) == 300


def test_label_time_past_the_grace_is_late(make) -> None:
    """A label whose own time is after its window's end plus grace is late even if read early."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed(
        [
            inf.msg(inference("a", T0 + 1, 1)),
            inf.msg(inference("b", T0 + 2, 1)),
            lab.msg(label("b", 1, label_time=T0 + 85)),
            lab.msg(label("a", 1, label_time=T0 + 95)),
            *tick(inf, T0 + 200),
            lab.msg(label("x", 1, label_time=T0 + 200)),
        ]
    )
    [record] = h.metrics()
    assert record["sample_count"] == 1 and record["counts"]["late"] == 1


def test_windows_wait_for_label_partitions_with_timed_labels(make) -> None:
    """A window does not close while the label partition's time is still before its end plus grace."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("a", T0 + 1, 1)), lab.msg(label("other", 1, label_time=T0 + 1)), *tick(inf, T0 + 500)])
    assert h.metrics() == []
    h.feed([lab.msg(label("a", 1, label_time=T0 + 50)), lab.msg(label("z", 0, label_time=T0 + 95))])
    [record] = h.metrics()
    assert record["sample_count"] == 1 and record["counts"]["late"] == 0


def test_regression_models_join_and_are_judged(make) -> None:
    """A regression model's numeric predictions and labels give MAE/RMSE/R²; a non-numeric label is refused."""
    doc = {"regression_constraints": {"mae": {"threshold": 1.0, "comparison_operator": "GreaterThanThreshold"}}}
    h = make(catalog=catalog(doc))
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i, (pred, y) in enumerate([(10.0, 12.5), (3, 1), ("7.5", 7.5)]):
        msgs += [inf.msg(inference(f"e{i}", T0 + i, pred)), lab.msg(label(f"e{i}", y))]
    msgs += [inf.msg(inference("bad", T0 + 4, 1.0)), lab.msg(label("bad", "tall"))]
    h.feed(msgs + tick(inf, T0 + 100))
    [record] = h.metrics()
    stats = record["regression_metrics"]
    assert stats["mae"]["value"] == pytest.approx(1.5)
    assert stats["rmse"]["value"] == pytest.approx(math.sqrt((2.5**2 + 2**2) / 3))
    [violation] = h.records("violations")
    assert violation["metric_name"] == "mae" and violation["constraint_check_type"] == "GreaterThanThreshold"
    [dead] = h.records("dead-letters")
    assert dead["field"] == "label" and "expected a number" in dead["reason"]


def test_records_not_keyed_by_their_event_id_are_dead_lettered_with_the_fix(make) -> None:
    """A record keyed by another id, with no key, or in another partition than Kafka's default
    partitioner gives its key, would wait in vain for its pair: it is dead-lettered (field `key`),
    naming the key, the event id and the fix, and counted as rejected."""
    h = make(partitions=2)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    good = inf.msg(inference("a", T0, 1))
    user_keyed = inf.msg(inference("b", T0, 1))
    elsewhere = 1 - default_partition(b"c", 2)
    h.feed(
        [
            good,
            replace(user_keyed, key=b"customer-7"),
            replace(inf.msg(inference("d", T0, 1)), key=None),
            inf.msg(inference("c", T0, 1), elsewhere),
            lab.msg(label("a", 1)),
            *tick(inf, T0 + 100, partition=0),
            *tick(inf, T0 + 100, partition=1),
        ]
    )
    letters = h.records("dead-letters")
    assert [x["field"] for x in letters] == ["key"] * 3
    assert "Kafka key is 'customer-7' but its event id is 'b'" in letters[0]["reason"]
    assert "Kafka key is missing but its event id is 'd'" in letters[1]["reason"]
    assert (
        f"'c' is in partition {elsewhere}, but Kafka's default partitioner puts it in partition" in letters[2]["reason"]
    )
    [record] = h.metrics()
    assert record["sample_count"] == 1 and h.counted("rejected") == 3


def test_without_the_key_check_records_keyed_otherwise_still_join_once(make) -> None:
    """TRUTHSTREAM_KEY_CHECK=off: a label keyed by another field still joins its inference (one
    partition), and the same label sent again is a duplicate."""
    h = make(base_settings(key_check="off"))
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("a", T0, 1))])
    h.feed([replace(lab.msg(label("a", 1)), key=b"customer-7")])
    h.feed([lab.msg(label("a", 1)), *tick(inf, T0 + 100)])
    [record] = h.metrics()
    assert record["sample_count"] == 1 and record["counts"]["duplicates"] == 1


def test_rolling_window_takes_a_large_batch(make) -> None:
    """More joined samples in one batch than the store appends at a time are all kept."""
    h = make(base_settings(rolling_size=1500, rolling_every=1000))
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i in range(1200):
        msgs += [inf.msg(inference(f"e{i}", T0 + i * 0.01, 1)), lab.msg(label(f"e{i}", i % 2))]
    h.feed(msgs, batch=5000)
    [rolling] = h.metrics("rolling")
    assert rolling["sample_count"] == 1200 and rolling["window"]["sequence"] == 1200
    assert rolling["binary_classification_metrics"]["precision"]["value"] == 0.5


def test_multiclass_labels_outside_the_models_classes_are_dead_lettered(make) -> None:
    """With TRUTHSTREAM_MODEL_CLASSES, a prediction or label outside the model's list is refused."""
    doc = {
        "multiclass_classification_constraints": {
            "accuracy": {"threshold": 0.1, "comparison_operator": "LessThanThreshold"}
        }
    }
    settings = base_settings(model_classes="churn=cat|dog")
    loaded = catalog(doc)
    h = make(settings, Catalog(loaded.default_problem_type, loaded.default, classes=settings.class_map()))
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed(
        [
            inf.msg(inference("a", T0, "cat")),
            lab.msg(label("a", "dog")),
            inf.msg(inference("b", T0 + 1, "bird")),
            inf.msg(inference("c", T0 + 2, "dog")),
            lab.msg(label("c", "fish")),
            lab.msg(label("c", "dog")),
            inf.msg(inference("tick", T0 + 100, "cat")),  # a valid class, so event time moves on
        ]
    )
    [record] = h.metrics()
    assert record["sample_count"] == 2 and record["counts"]["rejected"] == 2
    fields = sorted(d["field"] for d in h.records("dead-letters"))
    assert fields == ["label", "prediction"]


def test_pending_state_over_its_bound_evicts_what_expires_first_and_counts_it(make) -> None:
    """With room for 10 waiting entries, 30 unlabelled inferences keep the 10 latest; the evicted
    ones are counted in the next record, and a label for a kept inference still joins."""
    h = make(base_settings(max_pending=10))
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference(f"e{i}", T0 + i, 1)) for i in range(30)])
    h.feed([lab.msg(label(f"e{i}", 1)) for i in range(25, 30)])
    h.feed(tick(inf, T0 + 100))  # one more waiting entry: the oldest left (e20) goes too
    [record] = h.metrics()
    assert record["sample_count"] == 5
    assert h.counted("evicted_inferences") == 21 and h.counted("expired_inferences") == 0


YEAR_9999 = 253402300799.0  # 9999-12-31T23:59:59Z


def test_one_far_future_time_neither_closes_windows_nor_makes_later_pairs_late(make) -> None:
    """A label and an inference dated 9999 on every partition are dead-lettered; the windows around
    them close when real event time passes them, with every pair counted and none late."""
    h = make(partitions=2)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    msgs = []
    for p in range(2):
        msgs.append(inf.msg(inference(on_partition("bad-i", p, 2), YEAR_9999, 1), p))
        msgs.append(lab.msg(label(on_partition("bad-l", p, 2), 1, label_time="9999-12-31T23:59:59Z"), p))
    pairs = [(f"e{i}", T0 + i) for i in range(50)]
    msgs += [inf.msg(inference(e, t, 1)) for e, t in pairs]
    msgs += [lab.msg(label(e, 1, label_time=t + 5)) for e, t in pairs]
    h.feed(msgs, batch=7)
    assert len(h.records("dead-letters")) == 4
    assert h.metrics() == []  # nothing closed early
    h.feed(
        [m for p in range(2) for m in tick(inf, T0 + 200, partition=p)]
        + [lab.msg(label(on_partition("tick-l", p, 2), 1, label_time=T0 + 200), p) for p in range(2)]
    )
    [record] = h.metrics()
    assert record["sample_count"] == 50 and h.counted("late") == 0 and h.counted("rejected") == 4


def accounted(h: Harness) -> int:
    """Input messages the published records account for: two per joined or late pair, one per other
    count (a conflicting duplicate is one: the first record of its event id stands)."""
    total = 0
    for r in h.records("metrics"):
        if r["window"]["kind"] in ("rolling", "provisional"):  # they count nothing
            continue
        c = r["counts"]
        total += 2 * r["sample_count"] + 2 * c["late"] + c["duplicates"] + c["conflicts"] + c["rejected"]
        total += c["expired_inferences"] + c["expired_labels"] + c["evicted_inferences"] + c["evicted_labels"]
    return total


def interleaved(msgs: list, seed: int) -> list:
    """The messages in a random interleaving of their (topic, partition) sequences, as a consumer of
    several partitions sees them; each partition keeps its offset order."""
    queues: dict = {}
    for m in msgs:
        queues.setdefault((m.topic, m.partition), []).append(m)
    rng, out = random.Random(seed), []
    while queues:
        key = rng.choice(sorted(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


def test_after_an_idle_close_late_data_is_published_in_an_accounting_record(make) -> None:
    """Idle close moved event time to the wall clock; 600 pairs of the past hour then arrive: they are
    late, and an accounting record publishes the count at once (no window of theirs will ever close)."""
    h = make(base_settings(label_ttl=86400.0))
    inf, lab = Topic("inferences"), Topic("labels")
    first = [inf.msg(inference(f"a{i}", T0 + i * 0.1, 1)) for i in range(50)]
    first += [lab.msg(label(f"a{i}", 1)) for i in range(50)]
    h.feed(first)
    h.idle(T0 + 7200)  # an idle worker: the wall clock closes the window
    assert [r["sample_count"] for r in h.metrics()] == [50]
    late = [inf.msg(inference(f"b{i}", T0 + i * 0.1, 1)) for i in range(600)]
    late += [lab.msg(label(f"b{i}", 0)) for i in range(600)]
    h.feed(late, batch=300)
    records = h.metrics("accounting")  # one per batch that counted something
    assert sum(r["counts"]["late"] for r in records) == 600
    assert all(r["model"] == "churn" and r["sample_count"] == 0 for r in records)
    assert accounted(h) == len(first) + len(late)


def test_every_input_message_is_accounted_for_in_published_records(make) -> None:
    """Joined, late, duplicate, never-labelled, orphan and bad messages, interleaved at random across
    topics and partitions: once event time has moved on, the published records account for every one."""
    h = make(base_settings(label_ttl=120.0), partitions=2)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    rng, msgs = random.Random(5), []
    for i in range(400):
        t, event_id = T0 + i * 0.5, f"e{i}"
        msgs.append(inf.msg(inference(event_id, t, rng.randint(0, 1), rng.random())))
        kind = rng.random()
        if kind < 0.7:  # labelled in time
            msgs.append(lab.msg(label(event_id, rng.randint(0, 1), label_time=t + rng.uniform(0, 20))))
        elif kind < 0.8:  # labelled after its window's grace: late
            msgs.append(lab.msg(label(event_id, 1, label_time=t + 200)))
        elif kind < 0.9:  # labelled twice: one duplicate
            msgs += [lab.msg(label(event_id, 0, label_time=t + 1)), lab.msg(label(event_id, 0, label_time=t + 2))]
        if rng.random() < 0.05:  # the inference sent twice
            msgs.append(inf.msg(inference(event_id, t, 1)))
    msgs += [lab.msg(label(f"orphan{i}", 1, label_time=T0 + i)) for i in range(20)]
    msgs += [inf.msg(None, i % 2, raw=b"{not json") for i in range(10)]
    sent = interleaved(msgs, seed=6)
    h.feed(sent, batch=37)
    # Event time moves on, on every partition in one batch (a sweep covers the partitions of its batch):
    # every window closes and every waiting entry expires.
    end = T0 + 10_000
    h.feed(
        [
            m
            for p in range(2)
            for e in [on_partition("end", p, 2)]
            for m in (inf.msg(inference(e, end, 0), p), lab.msg(label(e, 0, label_time=end), p))
        ]
    )
    assert accounted(h) == len(sent)


def test_batch_reports_give_the_span_of_inference_times_read(make) -> None:
    """Replay names what the topics cover from the reports: the accepted inferences' earliest and latest times."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    reports = h.feed(
        [
            inf.msg(inference("a", T0 + 5, 1, 0.9)),
            inf.msg(None, raw=b'{"event_id": "bad", "inference_time": "yesterday"}'),
            lab.msg(label("a", 1, label_time=T0 + 500)),
            inf.msg(inference("b", T0 + 2, 0, 0.2)),
            inf.msg(inference("c", T0 + 9, 0, 0.2)),
        ],
        batch=3,
    )
    assert [r.inference_times for r in reports] == [(T0 + 5, T0 + 5), (T0 + 2, T0 + 9)]
    assert reports[-1].stream_time == T0 + 9  # the slowest partition's watermark: replay stops by it
    assert h.feed([lab.msg(label("b", 0))])[0].inference_times is None


def test_a_window_reports_its_label_coverage_and_label_delays(make) -> None:
    """Of 12 inferences in a window, 8 get a label in time (delays known from label_time, one label
    before its inference), one comes late and 3 never: the record says 12 inferences, 8 labelled,
    coverage 2/3, and delay quantiles within one histogram bin (26 %) above numpy's."""
    import numpy as np

    h = make(base_settings(label_grace=30.0))
    inf, lab = Topic("inferences"), Topic("labels")
    delays = [0.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 25.0]
    msgs = [lab.msg(label("e12", 1, label_time=format_time(T0 + 12 + 0.5)))]  # before its inference
    msgs += [inf.msg(inference(f"e{i}", T0 + i, 1, 0.9)) for i in range(1, 12)]
    msgs += [lab.msg(label(f"e{i + 1}", 1, label_time=format_time(T0 + i + 1 + d))) for i, d in enumerate(delays)]
    msgs.append(inf.msg(inference("e12", T0 + 12, 1, 0.9)))
    delays.append(0.5)
    h.feed(msgs + tick(inf, T0 + 95))
    h.feed([lab.msg(label("e10", 1, label_time=format_time(T0 + 200))), *tick(inf, T0 + 300)])  # late
    [record] = [r for r in h.metrics() if r["window"]["start"] == format_time(T0)]
    labels = record["labels"]
    assert (labels["inferences"], labels["labelled"]) == (12, 9) == (12, record["sample_count"])
    # e9, e10 and e11 have no label in time: they still wait (until they expire)
    unlabelled = {f"e{i}" for i in range(1, 13)} - {f"e{i + 1}" for i in range(len(delays) - 1)} - {"e12"}
    assert labels["waiting"] == len(unlabelled) == 3
    assert labels["coverage"] == pytest.approx(9 / 12)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0)):
        truth = float(np.quantile(delays, q, method="inverted_cdf"))
        assert truth <= labels["delay_seconds"][name] <= truth * 10**0.1, (name, truth, labels)


def _stamped_backlog(partitions: int = 2, n: int = 600) -> tuple[list[RawMessage], list[RawMessage]]:
    """Inferences and labels without `label_time`, each with the Kafka timestamp a producer gave it
    (a label one second after its inference), as a live system would have produced them."""
    inf, lab = Topic("inferences", partitions), Topic("labels", partitions)
    inferences, labels = [], []
    for i in range(n):
        t = T0 + i * 0.5
        inferences.append(replace(inf.msg(inference(f"e{i}", t, i % 2, 0.7)), timestamp=t))
        labels.append(replace(lab.msg(label(f"e{i}", (i // 3) % 2)), timestamp=t + 1.0))
    end = T0 + 1000
    closing = [replace(inf.msg(inference(on_partition("z", p, partitions), end, 0, 0.5), p), timestamp=end)
               for p in range(partitions)]  # fmt: skip
    closing += [
        replace(lab.msg(label(on_partition("y", p, partitions), 0), p), timestamp=end) for p in range(partitions)
    ]
    return [m for pair in zip(inferences, labels) for m in pair], closing


@pytest.mark.parametrize("order", ["inferences first", "partition by partition", "labels first"])
def test_labels_without_label_time_give_the_live_windows_in_any_read_order(make, order: str) -> None:
    """A label without `label_time` takes its record's Kafka timestamp: a backlog read in any order
    (all inferences before any label, one partition after the other as a consumer of a backlog
    does, or labels first) gives the windows a live run gives, none late."""
    live, closing = _stamped_backlog()
    reordered = {
        "inferences first": sorted(live, key=lambda m: m.side != "inference"),
        "partition by partition": sorted(live, key=lambda m: (m.side, m.partition, m.offset)),
        "labels first": sorted(live, key=lambda m: m.side == "inference"),
    }[order]
    windows = {}
    for name, messages in (("live", live), (order, reordered)):
        h = make(base_settings(label_grace=5.0, change_delta=0), partitions=2)
        h.feed(messages, batch=50)
        h.feed(closing)
        windows[name] = [json.dumps(r, sort_keys=True) for r in h.metrics()]
        assert h.counted("late") == 0, name
    assert len(windows["live"]) == 5 and windows[order] == windows["live"]


def test_a_label_stamped_after_its_windows_grace_is_late_whichever_side_comes_first(make) -> None:
    """The Kafka timestamp judges a label like its own `label_time` would, before or after its inference."""
    h = make(base_settings(label_grace=5.0))
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed(
        [
            inf.msg(inference("b", T0 + 2, 1, 0.9)),
            replace(lab.msg(label("b", 1)), timestamp=T0 + 64),  # in time: window [T0, T0+60) + 5 s
            replace(lab.msg(label("a1", 1)), timestamp=T0 + 70),  # late, before its inference
            inf.msg(inference("a1", T0 + 1, 1, 0.9)),
            inf.msg(inference("a2", T0 + 1, 1, 0.9)),
            replace(lab.msg(label("a2", 1)), timestamp=T0 + 70),  # late, after its inference
        ]
    )
    h.feed([*tick(inf, T0 + 200), replace(lab.msg(label("end", 0)), timestamp=T0 + 200)])
    [record] = h.metrics()
    assert (record["sample_count"], h.counted("late")) == (1, 2)


def test_a_pair_the_store_finds_for_a_closed_window_is_counted_late_not_lost(make) -> None:
    """Should a pair reach a window another partition closed meanwhile, the store counts it late (its
    model's `late`) instead of adding it to a part no seal will ever read."""
    h = make()
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("a", T0 + 1, 1, 0.9)), lab.msg(label("a", 1)), *tick(inf, T0 + 100)])
    [closed] = h.metrics()
    window = WindowKey.at("churn", "1", T0, 60.0)

    def step(view: Any) -> StepResult:
        result = StepResult()
        result.windows[window] = WindowAggregate(1e-4)
        result.windows[window].add(Joined("churn", "1", T0 + 2, "1", "1", 0.9))
        result.checkpoints["inferences", 0] = 10_000
        return result

    async def apply(engine: Any) -> StepResult:
        [(result, _)] = (await engine.store.transact([Job(0, set(), {("inferences", 0)}, step)])).results
        await engine.account(set(result.counters), T0 + 100)
        return result

    result = h.run(apply)
    assert result.counters["churn"]["late"] == 1 and result.outcomes["inference", "late"] == 1
    assert h.metrics() == [closed] and h.counted("late") == 1


def test_the_default_partition_is_kafkas_for_keys_of_every_length() -> None:
    """The key check's murmur2 against the Java client's partitioner as aiokafka reimplements it."""
    import random

    from aiokafka.partitioner import DefaultPartitioner

    rng = random.Random(7)
    oracle = DefaultPartitioner()
    for length in range(64):
        key = bytes(rng.randrange(256) for _ in range(length))
        for partitions in (1, 3, 8, 12):
            expected = oracle(key, list(range(partitions)), list(range(partitions)))
            assert default_partition(key, partitions) == expected
            assert default_partition(key, partitions) == expected  # remembered: the same answer
