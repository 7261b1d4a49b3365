"""Property-based tests: whatever a message holds, the parsers raise only RecordError, and the core
step never raises and accounts for every message (joined, waiting, duplicate, expired or rejected)."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.reading import Reader, event_ids
from stream.core.records import INFERENCE, LABEL, RawMessage, decode_json, parse_inference, parse_label
from stream.core.sagemaker import CaptureFormat, capture_to_inferences, ground_truth_to_labels
from stream.core.state import DEAD_LETTER, PENDING_INFERENCE, PENDING_LABEL
from stream.core.step import Step
from stream.core.timefmt import parse_time
from stream.errors import RecordError
from stream.stores.memory import MemoryStore
from tests.factories import T0

NOW = T0 + 86400.0
WEIRD_TEXT = ["", " ", "\ud800x", "a\x1fb", "x" * 300, "1", "0", "true", "cat", "é", "\u0000", "2025-11-24T16:00:00Z"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WEIRD_TEXT),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
times = st.one_of(
    st.floats(min_value=T0 - 86400 * 400, max_value=T0 + 86400 * 2),
    st.sampled_from(["2025-11-24T16:00:30Z", "9999-12-31T23:59:59Z", "1900-01-01", "yesterday", "", 1e12, -1000]),
    json_values,
)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is usually valid and sometimes anything at all."""
    return st.one_of(good, good, good, good, json_values)


@st.composite
def document(draw: st.DrawFn, side: str) -> dict[str, Any]:
    """An inference or label document: mostly valid fields, some of anything, some left out."""
    good_time = st.floats(min_value=T0, max_value=T0 + 300)
    if side == INFERENCE:
        fields = {
            "event_id": mostly(st.sampled_from([f"e{i}" for i in range(6)])),
            "model": mostly(st.sampled_from(["churn", "fraud"])),
            "model_version": mostly(st.sampled_from(["1", 2])),
            "inference_time": mostly(good_time) | times,
            "prediction": mostly(st.sampled_from([0, 1, "1", True, "cat", 2.5])),
            "probability": mostly(st.floats(0, 1)),
        }
    else:
        fields = {
            "event_id": mostly(st.sampled_from([f"e{i}" for i in range(6)])),
            "label": mostly(st.sampled_from([0, 1, "0", False, "cat", 2.5])),
            "label_time": mostly(good_time) | times,
        }
    doc = {name: draw(value) for name, value in fields.items()}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
        doc.pop(name, None)
    return doc


def encoded(doc: dict[str, Any]) -> bytes:
    """JSON text as any producer might send it (NaN and Infinity included, non-ASCII escaped or not)."""
    return json.dumps(doc, allow_nan=True).encode()


raw_values = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"null", b"", b'"\\ud800"']),
)


@st.composite
def messages(draw: st.DrawFn) -> list[RawMessage]:
    """A batch of messages on both inputs and two partitions, in Kafka order per partition; records
    keyed by their event id land on its partition, as a keyed producer puts them."""
    out, offsets = [], {}
    for _ in range(draw(st.integers(1, 40))):
        side = draw(st.sampled_from([INFERENCE, LABEL]))
        doc = draw(document(side))
        value = draw(st.one_of(st.just(encoded(doc)), st.just(encoded(doc)), raw_values, st.none()))
        event_id = doc.get("event_id")
        keyed = isinstance(event_id, str) and event_id.startswith("e") and len(event_id) == 2
        partition = int(event_id[1]) % 2 if keyed else draw(st.integers(0, 1))
        key = event_id.encode() if keyed else draw(st.one_of(st.none(), st.binary(max_size=8)))
        stamp = draw(st.one_of(st.none(), st.floats(T0 - 86400, NOW)))
        topic = "inferences" if side == INFERENCE else "labels"
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        out.append(RawMessage(side, topic, partition, offset, key, value, stamp))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(raw_values, document(INFERENCE).map(encoded), document(LABEL).map(encoded)))
def test_parsers_raise_only_record_errors(value: bytes) -> None:
    """Any bytes in: a record, or a RecordError saying why not; never another exception."""
    for parse in (
        lambda doc: parse_inference(doc, lambda m: "BinaryClassification", NOW, 86400.0),
        lambda doc: parse_inference(doc, lambda m: "MulticlassClassification", NOW, 86400.0),
        lambda doc: parse_inference(doc, lambda m: "Regression", NOW, 86400.0),
        lambda doc: parse_label(doc, NOW, 86400.0),
        lambda doc: capture_to_inferences(doc, CaptureFormat("", "0", 0.5), "m"),
        lambda doc: capture_to_inferences(doc, CaptureFormat("predictions[*].label", "predictions[*].score"), "m"),
        ground_truth_to_labels,
    ):
        try:
            parse(decode_json(value, 262144))
        except RecordError:
            pass


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.sampled_from(["BinaryClassification", "MulticlassClassification", "Regression"]))
def test_the_step_never_raises_and_accounts_for_every_message(batch: list[RawMessage], problem_type: str) -> None:
    """Every message ends joined (two per pair), waiting, a duplicate, expired, rejected or a
    conflicting duplicate (a dead letter each); the state the step writes can be stored (plain
    Unicode text)."""
    config = CoreConfig(window_seconds=60.0, label_grace=30.0, label_ttl=86400.0 * 7, min_samples=1)
    catalog = Catalog(default_problem_type=problem_type)  # type: ignore[arg-type]
    store = MemoryStore()
    results = []
    for partition in sorted({m.partition for m in batch}):
        group = [m for m in batch if m.partition == partition]
        reads = [Reader(config, catalog, NOW).read(m) for m in group]
        result, _ = store.run(
            partition,
            event_ids(reads),
            set(),
            lambda view, g=group, r=reads: Step(config, catalog, view, NOW).run(g, r),
        )
        results.append(result)
    counters = [c for result in results for c in result.counters.values()]
    counts = {name: sum(c.get(name, 0) for c in counters) for name in ("rejected", "duplicates", "conflicts")}
    expired = sum(c.get(k, 0) for c in counters for k in ("expired_inferences", "expired_labels"))
    waiting = sum(
        1
        for entries in store.entries.values()
        for e in entries.values()
        if e.state in (PENDING_INFERENCE, PENDING_LABEL)
    )
    dead = [o for result in results for o in result.outputs if o.channel == DEAD_LETTER]
    joined = sum(result.joined for result in results)
    assert (
        len(batch) == counts["rejected"] + counts["duplicates"] + counts["conflicts"] + 2 * joined + waiting + expired
    )
    assert len(dead) == counts["rejected"] + counts["conflicts"]
    for letter in dead:
        assert len(json.dumps(letter.value)) < 12_000
    for result in results:
        for event_id, entry in result.entries.items():
            event_id.encode("utf-8")  # storable: no lone surrogates
            assert entry is None or math.isnan(entry.time) or entry.time >= 946684800.0


def _capture_of(output: str, encoding: str, content_type: str, batch: bool) -> dict[str, Any]:
    block = {"observedContentType": content_type, "mode": "OUTPUT", "data": output, "encoding": encoding}
    meta = {"eventId": "e"} if batch else {"eventId": "e", "inferenceTime": "2025-11-24T16:00:00Z"}
    return {"captureData": {"batchTransformOutput" if batch else "endpointOutput": block}, "eventMetadata": meta}


_score = st.floats(0, 1).map(lambda x: round(x, 3))
# outputs shaped as models write them (scores as CSV lines, JSON objects, SageMaker's predictions list)
model_outputs = st.one_of(
    st.lists(_score.map(str), min_size=1, max_size=4).map("\n".join),
    st.lists(_score.map(lambda x: json.dumps({"score": x})), min_size=1, max_size=3).map("\n".join),
    _score.map(lambda x: json.dumps({"predictions": [{"score": x}]})),
)
outputs = st.one_of(
    model_outputs,
    st.text(max_size=60),
    json_values.map(json.dumps),
    st.lists(json_values.map(json.dumps), max_size=4).map("\n".join),
    st.lists(st.lists(st.sampled_from(["0.5", "1", "x", "", '"q"']), max_size=3).map(",".join), max_size=4).map(
        "\n".join
    ),
)
attributes = st.sampled_from(["", "0", "1", "score", "predictions[*].score", "a.0.b", "[", "$.x", "SageMakerOutput.s"])


def test_capture_outputs_raise_only_record_errors() -> None:
    """Any model output, encoding, content type and attribute: instances, or a RecordError; ids
    unique; and the generated captures include many the parser accepts (a parser refusing every
    capture would not pass)."""
    import base64

    seen: Counter[str] = Counter()

    anything = st.tuples(
        outputs,
        st.sampled_from(["CSV", "JSON", "BASE64", "xml"]),
        st.sampled_from(["text/csv", "application/json", "application/jsonlines", "image/png", ""]),
        st.booleans(),
        attributes,
        attributes,
    )
    # as endpoints write them: a model's output, a text encoding and content type, plain attributes
    well_formed = st.tuples(
        model_outputs,
        st.sampled_from(["CSV", "JSON", "BASE64"]),
        st.sampled_from(["text/csv", "application/json", "application/jsonlines"]),
        st.booleans(),
        st.sampled_from(["", "0", "score", "predictions[*].score"]),
        st.sampled_from(["", "0", "score"]),
    )

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(anything, well_formed))
    def parse(capture: tuple[str, str, str, bool, str, str]) -> None:
        output, encoding, content_type, batch, inference, probability = capture
        data = base64.b64encode(output.encode("utf-8", "surrogatepass")).decode() if encoding == "BASE64" else output
        doc = _capture_of(data, encoding, content_type, batch)
        try:
            records = capture_to_inferences(doc, CaptureFormat(inference, probability), "m", default_time=NOW)
        except RecordError:
            seen["refused"] += 1
            return
        seen["accepted"] += 1
        assert records and len({r["event_id"] for r in records}) == len(records)

    parse()
    assert seen["accepted"] >= 30, seen  # about 60 of the 400 here


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_a_naive_time_is_read_as_utc_to_the_bit(moment: datetime) -> None:
    """An event time without an offset is read as the UTC instant `datetime` itself gives, bit for
    bit (the parser computes it another, faster way), in every ISO form Python writes."""
    expected = moment.replace(tzinfo=UTC).timestamp()
    for spec in ("auto", "seconds", "milliseconds", "microseconds"):
        text = moment.isoformat(timespec=spec)
        assert parse_time(text) == datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    assert parse_time(moment.isoformat()) == expected
