"""Replay on a real broker: equal to the live worker, two constraint files, charts, spans, republish."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from connectors import notebook
from connectors.kafka_span import cursors, span_consumer
from connectors.replay import replay
from connectors.replay_split import usable_cores
from connectors.republish import republish
from stream.constraint_files import load_catalog
from stream.core.catalog import Catalog
from stream.core.timefmt import format_time
from stream.errors import InputError
from stream.settings import Settings
from tests.factories import T0, inference
from tests.integration.conftest import PARTITIONS, Deployment, tumbling
from tests.integration.test_worker import produce
from tests.integration.workload import arrival_order, expected_windows, workload

pytestmark = pytest.mark.integration

WINDOW = 60.0
GRACE = 30.0


def constraints_file(path: Path, recall: float) -> str:
    path.write_text(
        json.dumps(
            {
                "binary_classification_constraints": {
                    "recall": {"threshold": recall, "comparison_operator": "LessThanThreshold"}
                }
            }
        )
    )
    return str(path)


def replay_cli(dep: Deployment, *extra: str) -> subprocess.CompletedProcess[str]:
    """`truthstream replay` on the deployment's topics with the tests' window and grace."""
    command = [
        sys.executable,
        "-m",
        "connectors.cli",
        "replay",
        "--broker",
        dep.broker,
        "--inference-topic",
        dep.topic("inferences"),
        "--label-topic",
        dep.topic("labels"),
        "--window",
        str(WINDOW),
        "--label-grace",
        str(GRACE),
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def replay_settings(dep: Deployment, constraints: str) -> Settings:
    env = {k: v for k, v in dep.env.items() if not k.endswith(("REDIS_URL", "APP_ID", "DATA_DIR"))}
    return Settings.from_env({**env, "TRUTHSTREAM_CONSTRAINTS": constraints})


def live_windows(dep: Deployment, pairs: list, constraints: str, windows: int, send: Any) -> dict[str, dict]:
    """Run a worker on the pairs (sent with `send`), close every window, and return the tumbling
    windows it published, by start."""
    dep.configure(window_seconds=WINDOW, label_grace=GRACE, min_samples=50, constraints=constraints, rolling_size=0)
    dep.start_worker()
    send(dep, arrival_order(pairs))
    dep.close_all_windows(pairs[-1].time + 1000)
    return dep.wait_for(f"{windows} windows", lambda: (w := tumbling(dep.read("metrics"))) and len(w) == windows and w)


def test_replay_equals_the_live_worker_and_tries_other_thresholds(deployment: Deployment, tmp_path: Path) -> None:
    """Window for window and violation for violation, the replay equals the worker; a stricter file raises more."""
    current = constraints_file(tmp_path / "current.json", 0.8)
    strict = constraints_file(tmp_path / "strict.json", 0.93)
    pairs = workload(n=1600, per_window=200, window=WINDOW, drift_window=5, seed=11, max_label_delay=20)
    live = live_windows(deployment, pairs, current, 8, produce)
    live_violations = {v["violation_id"] for v in deployment.read("violations")}

    result = replay(replay_settings(deployment, current), load_catalog(current, "BinaryClassification"), None, None)
    replayed = {r["window"]["start"]: r for r in result.records}
    assert sorted(replayed) == sorted(live)
    for start, record in live.items():
        assert json.dumps(replayed[start], sort_keys=True) == json.dumps(record, sort_keys=True)
    # the partitions shared among two processes: the same windows and violations, byte for byte
    catalog = load_catalog(current, "BinaryClassification")
    split = replay(replay_settings(deployment, current), catalog, None, None, processes=2)
    assert split.messages == result.messages and split.dead_letters == result.dead_letters == 0
    assert {r["window"]["start"]: json.dumps(r, sort_keys=True) for r in split.records} == {
        start: json.dumps(record, sort_keys=True) for start, record in live.items()
    }
    assert sorted(json.dumps(v, sort_keys=True) for v in split.violations) == sorted(
        json.dumps(v, sort_keys=True) for v in result.violations
    )
    assert {v["violation_id"] for v in split.violations} == live_violations

    out = tmp_path / "windows.csv"
    plot = tmp_path / "chart.png"
    done = replay_cli(
        deployment,
        "--min-samples",
        "50",
        "--constraints",
        current,
        "--compare",
        strict,
        "--out",
        str(out),
        "--plot",
        str(plot),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 closed windows (1 models)" in done.stdout
    # by default on every core this test may use (forked: the command runs no thread by then)
    used = re.search(r"replayed \d+ records in [\d.]+ s \([\d,]+ records/s, (\d+) process", done.stdout)
    assert used is not None and int(used[1]) == min(usable_cores(), PARTITIONS), done.stdout
    windows = pd.read_csv(out)
    violations = pd.read_csv(tmp_path / "windows.violations.csv")
    expected = expected_windows(pairs, WINDOW)
    for _, row in windows.iterrows():
        start = pd.Timestamp(row["window_start"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row["recall"] == pytest.approx(expected[start]["recall"], abs=1e-9)
    by_file = violations.groupby("constraints")["violation_id"].apply(set).to_dict()
    assert by_file["current.json"] == live_violations  # the change detector's event included
    constraint_rows = violations[violations["constraint_check_type"] != "ChangeDetected"]
    broken = constraint_rows.groupby("constraints")["violation_id"].apply(set).to_dict()
    assert len(broken["current.json"]) == sum(1 for w in expected.values() if w["recall"] < 0.8)
    assert len(broken["strict.json"]) == sum(1 for w in expected.values() if w["recall"] < 0.93)
    assert len(broken["strict.json"]) > len(broken["current.json"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000


def test_time_span_is_inference_time_and_republish_copies_what_it_needs(deployment: Deployment, tmp_path: Path) -> None:
    """--from/--to select windows by inference time (records of every Kafka time); --to-topic copies
    what the span needs, and a replay of the copy equals a replay of the original."""
    current = constraints_file(tmp_path / "c.json", 0.8)
    first = workload(n=600, per_window=150, window=WINDOW, drift_window=99, seed=12, max_label_delay=5)
    second = workload(n=600, per_window=150, window=WINDOW, drift_window=99, seed=13, max_label_delay=5)
    second = [type(p)(p.event_id, p.time + 600, p.label_time + 600, p.y_true, p.y_pred, p.score) for p in second]
    deployment.configure(window_seconds=WINDOW, label_grace=GRACE, min_samples=50, constraints=current)
    produce(deployment, arrival_order(first))
    produce(deployment, arrival_order(second))
    deployment.close_all_windows(second[-1].time + 1000)
    settings = replay_settings(deployment, current)
    catalog = load_catalog(current, "BinaryClassification")
    middle = second[0].time  # an inference time between the two workloads
    later = replay(settings, catalog, middle, None)
    assert sorted(r["window"]["start"] for r in later.records) == sorted(expected_windows(second, WINDOW))
    # from Python: the same windows as DataFrame rows, the span given as ISO 8601 text
    frames = notebook.replay(settings, start=format_time(middle))
    expected = expected_windows(second, WINDOW)
    assert frames.windows["window_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist() == sorted(expected)
    assert frames.windows["recall"].tolist() == pytest.approx([expected[s]["recall"] for s in sorted(expected)])
    # Half-open and window-aligned: from inside a window to inside another one takes both whole.
    inner = replay(settings, catalog, T0 + WINDOW + 1, T0 + 2 * WINDOW + 1)
    assert sorted(r["window"]["start"] for r in inner.records) == sorted(expected_windows(first, WINDOW))[1:3]
    earlier = replay(settings, catalog, None, middle)
    assert sorted(r["window"]["start"] for r in earlier.records) == sorted(expected_windows(first, WINDOW))

    done = replay_cli(deployment, "--model", "fraud")
    assert done.returncode == 2 and "no closed window of model(s) fraud" in done.stderr
    assert "models seen: churn" in done.stderr

    sent = republish(settings, None, middle, "copy-")
    assert sent[f"copy-{deployment.topic('inferences')}"] >= 600
    assert sent[f"copy-{deployment.topic('labels')}"] >= 600
    copy = dataclasses.replace(
        settings,
        inference_topic=f"copy-{deployment.topic('inferences')}",
        label_topic=f"copy-{deployment.topic('labels')}",
    )
    again = replay(copy, catalog, None, middle)
    assert [json.dumps(r, sort_keys=True) for r in again.records] == [
        json.dumps(r, sort_keys=True) for r in earlier.records
    ]
    consumer = span_consumer(copy.kafka())
    try:
        assert len(cursors(consumer, copy.inference_topic)) == 4
    finally:
        consumer.close()


def test_replay_refuses_what_it_cannot_do(deployment: Deployment, tmp_path: Path) -> None:
    """Unknown topics, empty spans, reversed times and bad constraints fail clearly and write nothing."""
    deployment.configure(window_seconds=WINDOW)
    out = tmp_path / "out.csv"
    base = [sys.executable, "-m", "connectors.cli", "replay", "--broker", deployment.broker, "--out", str(out)]
    cases = [
        (["--inference-topic", "no-such-topic-" + deployment.name], "does not exist"),
        (
            ["--inference-topic", deployment.topic("inferences"), "--label-topic", deployment.topic("labels")],
            "no records",
        ),
        (["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], "is not before"),
        (["--from", "last tuesday"], "ISO-8601"),
        (["--constraints", str(tmp_path / "missing.json")], "cannot read"),
        (["--plot", str(tmp_path / "chart.gif")], ".png or .html"),
    ]
    for extra, message in cases:
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        assert message in done.stderr, (extra, done.stderr)
    assert not out.exists()
    # Records, but no window closes (the worker's windows were shorter, say): replay says why and
    # writes nothing, neither the table nor the chart, whatever the model filter.
    deployment.send("inferences", [("a", inference("a", T0, 1)), ("b", inference("b", T0 + 1, 0))])
    topics = ["--inference-topic", deployment.topic("inferences"), "--label-topic", deployment.topic("labels")]
    for extra in ([], ["--model", "churn"]):
        done = subprocess.run(
            [*base, *topics, *extra, "--plot", str(tmp_path / "chart.png")], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert "no window of the span closed" in done.stderr and "--window-seconds" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists() and not (tmp_path / "chart.png").exists()
    with pytest.raises(InputError):
        consumer = span_consumer(deployment.kafka)
        try:
            cursors(consumer, "no-such-topic-" + deployment.name)
        finally:
            consumer.close()


def test_a_span_before_the_retained_records_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    """When retention deleted the start of a partition, --from before it is an error, not a silent gap."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.errors import KafkaError

    deployment.configure(window_seconds=WINDOW)
    produce(
        deployment,
        arrival_order(workload(n=200, per_window=100, window=WINDOW, drift_window=99, seed=14, max_label_delay=5)),
    )
    admin = KafkaAdminClient(**deployment.kafka.kafka_python())
    try:
        admin.delete_records({TopicPartition(deployment.topic("inferences"), p): 10 for p in range(4)})
    except KafkaError as exc:  # tansu keeps everything in memory and has no DeleteRecords
        pytest.skip(f"this broker cannot delete records: {exc!r}")
    finally:
        admin.close()
    settings = replay_settings(deployment, "")
    with pytest.raises(InputError, match="deleted by retention"):
        replay(settings, Catalog(), T0, None)  # the deleted records were stamped after T0
    assert replay(settings, Catalog(), None, None).messages == 400 - 40


def produce_with_defaults(dep: Deployment, records: list[tuple[str, str, dict]]) -> None:
    """Produce as a user's first script would: kafka-python's default producer, one record at a time."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**dep.kafka.kafka_python())
    try:
        for kind, key, value in records:
            producer.send(dep.topic(kind), key=key.encode(), value=json.dumps(value).encode())
        producer.flush()
    finally:
        producer.close()


def test_replay_of_a_default_producers_records_equals_the_live_worker(deployment: Deployment, tmp_path: Path) -> None:
    """600 pairs from a default producer: replay (whole, and an inference-time span through the CLI)
    gives the live worker's windows and violations, on whichever broker runs the tests."""
    current = constraints_file(tmp_path / "current.json", 0.8)
    pairs = workload(n=600, per_window=120, window=WINDOW, drift_window=3, seed=21, max_label_delay=20)
    live = live_windows(deployment, pairs, current, 5, produce_with_defaults)
    live_violations = deployment.read("violations")
    assert live_violations, "the drifted windows violate the constraints"

    result = replay(replay_settings(deployment, current), load_catalog(current, "BinaryClassification"), None, None)
    assert {r["window"]["start"]: json.dumps(r, sort_keys=True) for r in result.records} == {
        start: json.dumps(r, sort_keys=True) for start, r in live.items()
    }
    assert sorted(v["violation_id"] for v in result.violations) == sorted(v["violation_id"] for v in live_violations)

    out = tmp_path / "span.csv"
    span = ("--from", format_time(T0 + 2 * WINDOW), "--to", format_time(T0 + 4 * WINDOW))
    done = replay_cli(deployment, "--min-samples", "50", "--constraints", current, "--out", str(out), *span)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 closed windows (1 models)" in done.stdout
    windows = pd.read_csv(out)
    wanted = sorted(live)[2:4]
    assert [pd.Timestamp(s).strftime("%Y-%m-%dT%H:%M:%SZ") for s in windows["window_start"]] == wanted
    assert list(windows["sample_count"]) == [live[s]["sample_count"] for s in wanted]
    violations = pd.read_csv(tmp_path / "span.violations.csv")
    assert set(violations["violation_id"]) == {
        v["violation_id"] for v in live_violations if v["window"]["start"] in wanted
    }

    # A span the topics do not cover names what they hold.
    done = replay_cli(deployment, "--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T00:00:00Z")
    assert done.returncode == 2
    assert "no records in" in done.stderr and "the newest record is of" in done.stderr, done.stderr
    done = replay_cli(deployment, "--from", format_time(T0 - 86400), "--to", format_time(T0 - 3600))
    assert done.returncode == 2
    assert f"hold inferences of {format_time(T0)} to" in done.stderr, done.stderr


def test_replay_reads_a_long_span_whole(deployment: Deployment) -> None:
    """200,000 records, far more than one fetch per partition: every one is read, and the windows
    equal scikit-learn's metrics of the data. On the embedded broker, whose fetches stalled
    readers before (Apache Kafka's long reads are the worker tests' and the benchmark's)."""
    if os.environ.get("TRUTHSTREAM_TEST_BROKER"):
        pytest.skip("the long span is read on the embedded broker (CI's last run); this run has another")
    pairs = workload(n=100_000, per_window=25_000, window=WINDOW, drift_window=2, seed=22, max_label_delay=5)
    deployment.configure(window_seconds=WINDOW, label_grace=GRACE)
    produce(deployment, arrival_order(pairs), chunk=20_000)
    deployment.close_all_windows(pairs[-1].time + 1000)
    result = replay(replay_settings(deployment, ""), Catalog(), None, None)
    assert result.messages == 200_000 + 8
    assert result.dead_letters == 0
    expected = expected_windows(pairs, WINDOW)
    published = {r["window"]["start"]: r for r in result.records}
    assert sorted(published) == sorted(expected)
    for start, want in expected.items():
        got = published[start]["binary_classification_metrics"]
        assert published[start]["sample_count"] == want["sample_count"]
        assert got["accuracy"]["value"] == pytest.approx(want["accuracy"], abs=1e-12)
        assert got["recall"]["value"] == pytest.approx(want["recall"], abs=1e-12)


def test_a_replay_split_among_processes_equals_one_process(deployment: Deployment, tmp_path: Path) -> None:
    """Segments, label-free estimates, change events and data quality over 4 partitions: shared among 2
    and 3 processes, the replay gives the windows, violations and data-quality records of one process,
    byte for byte (each window's counts aside: they are summed, not compared window by window)."""
    from stream.core.calibration import Calibration
    from tests.test_data_quality_stream import baseline_of, quality_settings, reference_rows

    rng = random.Random(21)
    pairs = workload(n=2400, per_window=300, window=WINDOW, drift_window=5, seed=21, max_label_delay=20)
    records = []
    for kind, key, value in arrival_order(pairs):
        if kind == "inferences":
            shifted = value["inference_time"] >= format_time(pairs[0].time + 6 * WINDOW)
            value["features"] = {"income": rng.gauss(65.0 if shifted else 50.0, 10.0), "plan": rng.choice("abc")}
        records.append((kind, key, value))
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps(Calibration((0.0, 1.0), (0.0, 1.0)).to_doc()))
    current = constraints_file(tmp_path / "current.json", 0.8)
    deployment.configure(window_seconds=WINDOW, label_grace=GRACE, rolling_size=0)
    produce(deployment, records)
    deployment.close_all_windows(pairs[-1].time + 1000)
    env = {
        **{k: v for k, v in deployment.env.items() if not k.endswith(("REDIS_URL", "APP_ID", "DATA_DIR"))},
        "TRUTHSTREAM_CONSTRAINTS": current,
        "TRUTHSTREAM_MIN_SAMPLES": "50",
        "TRUTHSTREAM_SEGMENTS": "features.plan",
        "TRUTHSTREAM_CALIBRATION": str(calibration),
        **{
            f"TRUTHSTREAM_{k.upper()}": v
            for k, v in quality_settings(baseline_of(reference_rows(1500)), tmp_path).items()
        },
    }
    settings = Settings.from_env(env)
    one = replay(settings, settings.catalog(), None, None)
    assert len(one.records) == 8 and len(one.quality) == 8
    assert any(v["constraint_check_type"] == "ChangeDetected" for v in one.violations)
    assert any(q["drifted_features"] == ["income"] for q in one.quality)
    assert all(r["segments"] for r in one.records)
    assert all("estimated_accuracy" in r["binary_classification_metrics"] for r in one.records)

    def shown(records: list[dict[str, Any]]) -> dict[str, str]:
        return {
            r["window"]["start"]: json.dumps({k: v for k, v in r.items() if k != "counts"}, sort_keys=True)
            for r in records
        }

    def counted(records: list[dict[str, Any]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for r in records:
            for name, n in r["counts"].items():
                total[name] = total.get(name, 0) + n
        return total

    for processes in (2, 3):
        split = replay(settings, settings.catalog(), None, None, processes=processes)
        assert shown(split.records) == shown(one.records), processes
        assert shown(split.quality) == shown(one.quality), processes
        assert sorted(json.dumps(v, sort_keys=True) for v in split.violations) == sorted(
            json.dumps(v, sort_keys=True) for v in one.violations
        )
        assert counted(split.records) == counted(one.records)
        assert (split.messages, split.dead_letters, split.inference_times) == (
            one.messages,
            one.dead_letters,
            one.inference_times,
        )
