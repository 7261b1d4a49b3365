"""The data-quality monitor in the stream: each window's feature statistics from its inferences
(no label needed), judged against a baseline when the window's inferences are complete; the same
records give the same statistics whatever the batching and partitioning; on both stores."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from stream.core.catalog import Catalog
from stream.core.dataquality.parts import FOLD_ROWS
from stream.core.dataquality.profile import DataProfile
from stream.core.dataquality.reference import QualityBaseline
from stream.core.dataquality.suggest import suggest_constraints
from stream.core.records import RawMessage
from stream.core.timefmt import format_time, parse_time
from tests.factories import T0, Topic, inference, on_partition
from tests.harness import base_settings
from tests.sagemaker_factories import capture

pytestmark = pytest.mark.redis_cluster  # its Redis tests run again on a Redis Cluster in CI

WINDOW = 60.0


def baseline_of(rows: list[dict[str, Any]], min_rows: int = 0) -> QualityBaseline:
    """A data-quality baseline (statistics and suggested constraints) built the way `baseline` does."""
    profile = DataProfile([])
    for row in rows:
        profile.add_record(row)
    return QualityBaseline.of(suggest_constraints(profile), profile.statistics(), min_rows)


def quality_settings(baseline: QualityBaseline, where: Path) -> dict[str, str]:
    """The worker's settings of this baseline: its two files written under `where`."""
    constraints, statistics = where / "dq-constraints.json", where / "dq-statistics.json"
    constraints.write_text(json.dumps(baseline.constraints))
    statistics.write_text(json.dumps(baseline.statistics))
    return {"data_quality": str(constraints), "data_quality_statistics": str(statistics)}


def reference_rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"income": rng.gauss(50.0, 10.0), "plan": rng.choice(["a", "b", "c"])} for _ in range(n)]


def stream(
    windows: int, per_window: int, partitions: int = 1, shift_from: int | None = None, seed: int = 2
) -> tuple[list[RawMessage], list[list[tuple[int, dict[str, Any]]]]]:
    """Inferences over `windows` one-minute windows (income shifted by +15 from window `shift_from` on),
    then one inference past the last window to complete it; also each window's rows with their
    partition, in the order the messages were made."""
    rng = random.Random(seed)
    topic = Topic("inferences", partitions)
    msgs, rows = [], []
    for w in range(windows):
        mine = []
        for i in range(per_window):
            shift = 15.0 if shift_from is not None and w >= shift_from else 0.0
            features = {"income": rng.gauss(50.0 + shift, 10.0), "plan": rng.choice(["a", "b", "c"])}
            event_id = on_partition(f"w{w}-{i}-", i % partitions, partitions)
            t = T0 + w * WINDOW + (i + 0.5) * WINDOW / per_window
            msg = topic.msg(inference(event_id, t, "1", 0.7, features=features))
            msgs.append(msg)
            mine.append((msg.partition, features))
        rows.append(mine)
    for p in range(partitions):  # every partition's event time passes the last window's end
        end = T0 + windows * WINDOW + 1
        msgs.append(topic.msg(inference(on_partition(f"end{p}-", p, partitions), end, "1", 0.7), partition=p))
    return msgs, rows


def quality_records(h: Any) -> list[dict[str, Any]]:
    return sorted(h.metrics("data_quality"), key=lambda r: r["window"]["start"])


def test_a_shift_in_a_feature_raises_baseline_drift_from_that_window_on_and_nowhere_before(make) -> None:
    """Income shifts by 1.5 standard deviations from the fourth window on: baseline_drift_check for
    income in windows 4-6 only, with SageMaker's wording; the Simple distance equals the exact
    two-sample KS statistic of the baseline's and the window's values (both under 2,051 values: the
    sketches hold the data itself), and the estimate's violations name the drifted features."""
    reference = reference_rows(1500)
    base = baseline_of(reference)
    h = make(base_settings(), Catalog(default_quality=base))
    msgs, rows = stream(6, 300, shift_from=3)
    h.feed(msgs, batch=97)
    records = quality_records(h)
    assert len(records) == 6
    for w, record in enumerate(records):
        drifted = [v for v in record["violations"] if v["constraint_check_type"] == "baseline_drift_check"]
        assert [v["feature_name"] for v in drifted] == (["income"] if w >= 3 else []), (w, record["drift"])
        window_income = [f["income"] for _, f in rows[w]]
        ks = stats.ks_2samp([r["income"] for r in reference], window_income).statistic
        robust = max(0.0, ks - 1.8 * np.sqrt((1500 + 300) / (1500 * 300)))
        assert record["drift"]["income"] == pytest.approx(robust, abs=1e-12)
        assert record["row_count"] == 300
        if w >= 3:
            assert drifted[0]["description"].startswith("Baseline drift distance: ")
            assert drifted[0]["description"].endswith(" exceeds threshold: 0.1")
            assert record["drifted_features"] == ["income"]
    violations = [v for v in h.records(h.settings.violations_topic) if v.get("data_quality")]
    assert sorted({v["window"]["start"] for v in violations}) == [r["window"]["start"] for r in records[3:]]
    assert {v["metric_name"] for v in violations} == {"feature_baseline_drift_income"}


def test_window_statistics_equal_the_baseline_of_the_same_rows_whatever_the_batching(make) -> None:
    """Two partitions, windows of 400 rows: the published statistics.json of each window equals
    `baseline` on its rows in (partition, offset) order, for batches of 1, 37 and 1000 messages."""
    msgs, rows = stream(3, 400, partitions=2)
    base = baseline_of(reference_rows(500))
    published = []
    for batch in (1, 37, 1000):
        h = make(base_settings(), Catalog(default_quality=base), partitions=2)
        h.feed(msgs, batch=batch)
        published.append([r["statistics"] for r in quality_records(h)])
    assert published[0] == published[1] == published[2]
    for w, statistics in enumerate(published[0]):
        ordered = [f for _, f in sorted(rows[w], key=lambda pf: pf[0])]  # stable: offsets stay in order
        expected = baseline_of(ordered)
        assert statistics == json.loads(json.dumps(expected.statistics)), w


def test_windows_larger_than_a_fold_give_the_same_statistics_for_any_batching(make) -> None:
    """A window of 2.5 folds per partition (folded into a summary as it grows): the same statistics for
    batches of 500 and 4096, and counts, sum and extremes equal to the rows' own."""
    per_window = int(FOLD_ROWS * 2.5) * 2
    msgs, rows = stream(1, per_window, partitions=2, seed=5)
    base = baseline_of(reference_rows(500))
    found = []
    for batch in (500, 4096):
        h = make(base_settings(), Catalog(default_quality=base), partitions=2)
        h.feed(msgs, batch=batch)
        (record,) = quality_records(h)
        found.append(record["statistics"])
    assert found[0] == found[1]
    income = next(f for f in found[0]["features"] if f["name"] == "income")["numerical_statistics"]
    values = [f["income"] for _, f in rows[0]]
    assert income["common"]["num_present"] == len(values)
    assert income["min"] == min(values) and income["max"] == max(values)
    assert income["sum"] == pytest.approx(sum(values), rel=1e-12)
    assert income["std_dev"] == pytest.approx(np.std(values), rel=1e-9)


def test_a_completeness_drop_and_a_type_change_raise_their_checks_in_sagemakers_words(make) -> None:
    """In the second window a third of the rows lack income and plan turns numeric in half of them:
    completeness_check on income and data_type_check on plan, with the service's wording."""
    base = baseline_of(reference_rows(500))
    h = make(base_settings(), Catalog(default_quality=base))
    topic = Topic("inferences")
    msgs = []
    for w in range(2):
        for i in range(90):
            features: dict[str, Any] = {"income": 50.0 + i % 7, "plan": "a"}
            if w == 1 and i % 3 == 0:
                del features["income"]
            if w == 1 and i % 2 == 0:
                features["plan"] = i
            msgs.append(topic.msg(inference(f"e{w}-{i}", T0 + w * WINDOW + i / 2, "1", 0.6, features=features)))
    msgs.append(topic.msg(inference("end", T0 + 2 * WINDOW + 1, "1", 0.6)))
    h.feed(msgs, batch=50)
    first, second = quality_records(h)
    assert {v["constraint_check_type"] for v in first["violations"]} == {"baseline_drift_check"}
    found = {(v["feature_name"], v["constraint_check_type"]): v["description"] for v in second["violations"]}
    assert {check for _, check in found} == {
        "baseline_drift_check",
        "completeness_check",
        "data_type_check",
        "categorical_values_check",
    }
    assert found[("income", "completeness_check")] == (
        "Data completeness requirement is not met. Expected: 100.0%. Observed: Only 66.66666666666666%."
    )
    assert found[("plan", "data_type_check")] == (
        "Data type match requirement is not met. Expected data type: String, Expected match: 100.0%. "
        "Observed: Only 50.0% of data is String."
    )


def test_a_window_under_the_minimum_rows_is_reported_too_small_for_its_drift_to_be_judged(make) -> None:
    base = baseline_of(reference_rows(500), min_rows=1000)
    h = make(base_settings(), Catalog(default_quality=base))
    msgs, _ = stream(1, 50, shift_from=0)
    h.feed(msgs)
    (record,) = quality_records(h)
    assert record["drift_skipped"] == "too_few_rows"
    assert record["drift"]["income"] > 0.1 and record["drifted_features"] == []
    assert not [v for v in record["violations"] if v["constraint_check_type"] == "baseline_drift_check"]


def test_features_of_an_inference_after_its_window_closed_are_counted_late(make) -> None:
    base = baseline_of(reference_rows(200))
    h = make(base_settings(), Catalog(default_quality=base))
    topic = Topic("inferences")
    early = [topic.msg(inference(f"a{i}", T0 + i, "1", 0.6, features={"income": 50.0, "plan": "a"})) for i in range(5)]
    later = topic.msg(inference("b", T0 + WINDOW + 5, "1", 0.6, features={"income": 50.0, "plan": "a"}))
    straggler = topic.msg(inference("c", T0 + 30, "1", 0.6, features={"income": 1.0, "plan": "a"}))
    h.feed([*early, later])
    h.feed([straggler])
    (record,) = quality_records(h)
    assert record["row_count"] == 5
    h.idle(T0 + 10_000)
    assert h.counted("late_features") == 1


BOSTON = Path(__file__).parent / "data" / "sagemaker-data-quality" / "packt-boston-housing"


def boston_captures() -> list[dict[str, Any]]:
    """Boston's monitored window as the endpoint captured it: the 12 inputs in, the price out."""
    out = []
    for i, line in enumerate((BOSTON / "monitored-window.csv").read_text().splitlines()):
        price, *inputs = line.split(",")
        doc = capture(f"boston-{i}", format_time(T0 + i), price)
        doc["captureData"]["endpointInput"]["data"] = ",".join(inputs)
        out.append(doc)
    return out


def test_boston_captures_in_the_stream_give_the_services_violations(make) -> None:
    """The two captured requests of Boston's monitoring run, read from the inference topic: the
    window's constraint_violations are the service's file's (as a set: its order is not stable)."""
    constraints = json.loads((BOSTON / "constraints.json").read_text())
    statistics = json.loads((BOSTON / "statistics.json").read_text())
    baseline = QualityBaseline.of(constraints, statistics)
    catalog = Catalog(problem_types={"boston": "Regression"}, default_quality=baseline)
    h = make(base_settings(capture_model="boston", capture_inference_attribute="0"), catalog)
    topic = Topic("inferences")
    msgs = [topic.msg(doc) for doc in boston_captures()]
    msgs.append(topic.msg(inference("end", T0 + WINDOW + 1, 1.0, model="boston", version="")))
    h.feed(msgs)
    (record,) = quality_records(h)
    real = json.loads((BOSTON / "constraint_violations.json").read_text())["violations"]
    assert sorted(map(json.dumps, record["violations"])) == sorted(map(json.dumps, real))
    assert record["row_count"] == 2 and record["shifted_by"] == 1 and "shifted by 1" in record["warning"]


def test_the_worker_gauges_follow_sagemakers_cloudwatch_names() -> None:
    """feature_baseline_drift_<f>, feature_non_null_<f> and feature_data_<f> as labelled gauges of the
    latest data-quality window; its drift violations counted under metric feature_baseline_drift_<f>."""
    from stream.worker.observe import PrometheusMetrics
    from tests.harness import Harness

    base = baseline_of(reference_rows(1500))
    catalog = Catalog(default_quality=base)
    h = Harness("memory", base_settings(), catalog)
    msgs, rows = stream(2, 300, shift_from=1)
    h.feed(msgs)
    gauges = PrometheusMetrics({"inference": "inferences", "label": "labels"}, catalog)
    gauges.published(h.published)
    registry = gauges.registry
    labels = {"model": "churn", "model_version": "1", "feature": "income"}
    latest = quality_records(h)[-1]
    assert registry.get_sample_value("truthstream_feature_baseline_drift", labels) == latest["drift"]["income"]
    assert registry.get_sample_value("truthstream_feature_non_null", labels) == 1.0
    values = [f["income"] for _, f in rows[1]]
    assert registry.get_sample_value("truthstream_feature_data", {**labels, "statistic": "max"}) == max(values)
    assert registry.get_sample_value("truthstream_feature_data", {**labels, "statistic": "sample_count"}) == 300
    drift = {"model": "churn", "model_version": "1", "metric": "feature_baseline_drift_income"}
    assert registry.get_sample_value("truthstream_violations_total", drift) == 1


def test_replays_summary_shows_the_drift_beside_quality() -> None:
    """The replay's report names the drifted features of the span, in how many windows and how far."""
    from connectors.replay_tables import quality_summary
    from tests.harness import Harness

    h = Harness("memory", base_settings(), Catalog(default_quality=baseline_of(reference_rows(1500))))
    msgs, _ = stream(5, 300, shift_from=2)
    h.feed(msgs)
    records = quality_records(h)
    lines = quality_summary(records)
    worst = max(r["drift"]["income"] for r in records)
    assert lines[1] == "data quality churn v1: 5 windows, 3 with violations"
    assert lines[2] == f"  income drifted in 3 windows (distance up to {worst:.3f})"


def test_drift_is_reported_per_segment_and_only_the_segment_that_moved_violates(make) -> None:
    """Segments by features.region: income moves by 2 standard deviations in the north only (a
    third of the rows): the north's segment has baseline_drift_check on income, naming the segment;
    the south's has none; each segment's distance equals the exact KS statistic of its rows."""
    reference = reference_rows(1500)
    base = baseline_of(reference)
    catalog = Catalog(default_quality=base, default_segments=("features.region",))
    h = make(base_settings(), catalog)
    rng, topic = random.Random(6), Topic("inferences")
    msgs, values = [], {"north": [], "south": []}
    for i in range(600):
        region = "north" if i % 3 == 0 else "south"
        income = rng.gauss(70.0 if region == "north" else 50.0, 10.0)
        values[region].append(income)
        features = {"income": income, "plan": rng.choice("abc"), "region": region}
        msgs.append(topic.msg(inference(f"s{i}", T0 + i / 10, "1", 0.7, features=features)))
    msgs.append(topic.msg(inference("end", T0 + WINDOW + 1, "1", 0.7)))
    h.feed(msgs, batch=64)
    (record,) = quality_records(h)
    north, south = record["segments"]["features.region"]["north"], record["segments"]["features.region"]["south"]
    assert north["row_count"] == 200 and south["row_count"] == 400
    assert north["drifted_features"] == ["income"] and south["drifted_features"] == []
    for name, block in (("north", north), ("south", south)):
        ks = stats.ks_2samp([r["income"] for r in reference], values[name]).statistic
        n, m = 1500, len(values[name])
        assert block["drift"]["income"] == pytest.approx(max(0.0, ks - 1.8 * np.sqrt((n + m) / (n * m))), abs=1e-12)
    segment_violations = [v for v in h.records(h.settings.violations_topic) if v.get("segment")]
    assert [(v["segment"], v["feature_name"]) for v in segment_violations] == [
        ({"key": "features.region", "value": "north"}, "income")
    ]
    assert segment_violations[0]["description"].startswith("Segment features.region=north: Baseline drift distance: ")


def test_segments_of_folded_parts_are_capped_the_same_whatever_the_batching(make) -> None:
    """30 regions, at most 5 a window (the rest __other__), parts folded twice: the same segments,
    counts and distances for batches of 300 and 5000; every row is in exactly one region's block."""
    base = baseline_of(reference_rows(500))
    catalog = Catalog(default_quality=base, default_segments=("features.region",))
    rng, topic = random.Random(9), Topic("inferences", 2)
    msgs = []
    n = int(FOLD_ROWS * 2.5) * 2
    for i in range(n):
        region = f"r{min(int(rng.expovariate(0.3)), 29):02d}"
        features = {"income": rng.gauss(50.0, 10.0), "plan": rng.choice("abc"), "region": region}
        event_id = on_partition(f"g{i}-", i % 2, 2)
        msgs.append(topic.msg(inference(event_id, T0 + i * WINDOW / n, "1", 0.7, features=features)))
    for p in range(2):
        msgs.append(topic.msg(inference(on_partition(f"end{p}-", p, 2), T0 + WINDOW + 1, "1", 0.7), partition=p))
    found = []
    for batch in (300, 5000):
        h = make(base_settings(segment_cap=5), catalog, partitions=2)
        h.feed(msgs, batch=batch)
        (record,) = quality_records(h)
        found.append(record["segments"])
    assert found[0] == found[1]
    blocks = found[0]["features.region"]
    assert len(blocks) == 6 and "__other__" in blocks
    assert sum(b["row_count"] for b in blocks.values()) == n


def test_a_quality_violation_names_the_features_that_drifted_in_its_window(make) -> None:
    """Accuracy falls under its constraint in the window where income drifted: the final record's
    accuracy violation lists income, from the data-quality record published before it."""
    from stream.core.constraints import parse_constraints
    from tests.factories import label

    constraints = parse_constraints(
        {
            "binary_classification_constraints": {
                "accuracy": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"}
            }
        },
        "c.json",
    )
    catalog = Catalog(default=constraints, default_quality=baseline_of(reference_rows(1500)))
    h = make(base_settings(), catalog)
    msgs, _ = stream(2, 300, shift_from=1)
    labels, topic = [], Topic("labels")
    for m in msgs:
        doc = json.loads(m.value)
        window = int((parse_time(doc["inference_time"]) - T0) // WINDOW)
        wrong = window == 1 and int(doc["event_id"].split("-")[1]) % 2 == 0  # half wrong in the drifted window
        labels.append(topic.msg(label(doc["event_id"], "0" if wrong else "1")))
    h.feed(msgs + labels)
    h.idle(T0 + 10_000)
    accuracy = [v for v in h.records(h.settings.violations_topic) if v.get("metric_name") == "accuracy"]
    assert [(v["window"]["start"], v["drifted_features"]) for v in accuracy] == [(format_time(T0 + WINDOW), ["income"])]


def test_inputs_without_features_or_unreadable_are_counted_not_lost(make) -> None:
    """A plain inference without `features` is a row with every feature missing (completeness falls);
    a capture whose input cannot be decoded is counted in `unreadable_rows`, apart from the missing;
    a JSON capture input is flattened and named by the baseline's columns, output first."""
    constraints = {
        "version": 0.0,
        "features": [
            {"name": "price", "inferred_type": "Fractional", "completeness": 1.0},
            {"name": "income", "inferred_type": "Fractional", "completeness": 1.0},
            {"name": "plan", "inferred_type": "String", "completeness": 1.0},
        ],
    }
    catalog = Catalog(default_quality=QualityBaseline.of(constraints))
    h = make(base_settings(capture_model="churn"), catalog)
    topic = Topic("inferences")
    row = {"price": 0.5, "income": 50.5, "plan": "a"}
    plain = [topic.msg(inference(f"p{i}", T0 + i, "1", 0.6, version="", features=row)) for i in range(3)]
    bare = topic.msg(inference("bare", T0 + 4, "1", 0.6, version=""))
    json_capture = capture("cj", format_time(T0 + 5), "0.7")
    json_capture["captureData"]["endpointInput"].update(
        data=json.dumps({"income": 61.5, "plan": "b"}), observedContentType="application/json", encoding="JSON"
    )
    broken = capture("cb", format_time(T0 + 6), "0.4")
    broken["captureData"]["endpointInput"].update(data="%%%", encoding="BASE64")
    msgs = [*plain, bare, topic.msg(json_capture), topic.msg(broken)]
    msgs.append(topic.msg(inference("end", T0 + WINDOW + 1, "1", 0.6, version="")))
    h.feed(msgs)
    (record,) = quality_records(h)
    assert record["row_count"] == 5 and record["unreadable_rows"] == 1
    features = {f["name"]: f for f in record["statistics"]["features"]}
    income = features["income"]["numerical_statistics"]
    assert income["common"] == {"num_present": 4, "num_missing": 1}
    assert income["sum"] == 50.5 * 3 + 61.5
    assert features["price"]["numerical_statistics"]["sum"] == 0.5 * 3 + 0.7  # the capture's output, first
    completeness = {
        v["feature_name"] for v in record["violations"] if v["constraint_check_type"] == "completeness_check"
    }
    assert completeness == {"price", "income", "plan"}


def test_rows_a_store_gets_for_a_window_already_out_are_counted_late(make) -> None:
    """A store that finds a window's data-quality record out already (it cannot happen through the
    step: its partition's event time would have passed the end) counts the rows `late_features`
    instead of dropping them."""
    from stream.core.contract import Job
    from stream.core.state import StepResult
    from stream.core.windows import WindowKey
    from tests.factories import label

    h = make(base_settings(), Catalog(default_quality=baseline_of(reference_rows(200))))
    inf, lab = Topic("inferences"), Topic("labels")
    features = {"income": 50.0, "plan": "a"}
    h.feed([inf.msg(inference("a", T0 + 1, "1", 0.6, features=features)), lab.msg(label("a", "1"))])
    h.feed([inf.msg(inference("b", T0 + WINDOW + 5, "1", 0.6, features=features))])
    h.idle(T0 + 10_000)  # the first window's records are out, and it is closed

    def step(view: Any) -> StepResult:
        result = StepResult()
        result.quality[WindowKey.at("churn", "1", T0 + 2, WINDOW)] = ['{"income":1.0}', '{"income":2.0}']
        return result

    async def work(engine: Any) -> None:
        await engine.store.transact([Job(0, set(), set(), step)])
        await engine.account({"churn"}, T0 + 20_000)  # what the engine does after a batch that counted

    h.run(work)
    assert h.counted("late_features") == 2
