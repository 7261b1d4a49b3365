"""Connectors on a real broker, a real S3 API (moto's server on loopback) and a real HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest

from connectors.cli import main
from connectors.embedded import free_port
from connectors.kafka_span import read_records, read_topic
from tests.integration.conftest import Deployment, tumbling
from tests.sagemaker_factories import capture, ground_truth

pytestmark = pytest.mark.integration

WINDOW = 3600.0


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """moto's S3-compatible server on a loopback port, reached by boto3 through its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield f"http://127.0.0.1:{port}"
    server.stop()


def bucket(s3_url: str, name: str) -> Any:
    client = boto3.client("s3", endpoint_url=s3_url)
    client.create_bucket(Bucket=name)
    return client


def put_jsonl(client: Any, name: str, key: str, docs: list[Any]) -> None:
    body = "\n".join(d if isinstance(d, str) else json.dumps(d) for d in docs) + "\n"
    client.put_object(Bucket=name, Key=key, Body=body.encode())


def ingest_args(dep: Deployment, *extra: str, topics: tuple[str, ...] = ("inferences", "labels")) -> list[str]:
    """The broker and the deployment's input topics (those the ingest command takes) as flags."""
    flags = {"inferences": "--inference-topic", "labels": "--label-topic"}
    return ["--broker", dep.broker, *(x for t in topics for x in (flags[t], dep.topic(t))), *extra]


def test_sagemaker_capture_and_ground_truth_from_s3_reach_the_worker(
    deployment: Deployment, s3_url: str, tmp_path: Path, capsys
) -> None:
    """Captures in all three encodings (with and without inferenceId) and labels from S3 are joined by the
    worker; a malformed line is reported with its file and line; a second run sends nothing again."""
    name = f"capture-{deployment.name}"
    client = bucket(s3_url, name)
    hour1, hour2 = "2025/11/24/16", "2025/11/24/17"
    captures_1 = [capture(f"e{i}", f"2025-11-24T16:{i:02d}:00Z", f"{0.9 if i % 2 else 0.1}") for i in range(20)]
    captures_1 += [
        capture("e20", "2025-11-24T16:30:00Z", "0.8", "JSON", "inf-20", "application/json"),
        capture("e21", "2025-11-24T16:31:00Z", "0.2", "BASE64", content_type="text/csv"),
    ]
    captures_2 = [capture(f"e{i}", f"2025-11-24T17:{i - 30:02d}:00Z", "0.7") for i in range(30, 40)]
    put_jsonl(client, name, f"capture/churn-ep/AllTraffic/{hour1}/a.jsonl", [*captures_1, "{not json"])
    put_jsonl(client, name, f"capture/churn-ep/AllTraffic/{hour2}/b.jsonl", captures_2)
    labels = [ground_truth(f"e{i}", i % 2) for i in range(20)] + [ground_truth("inf-20", 1), ground_truth("e21", 0)]
    labels += [ground_truth(f"e{i}", 1) for i in range(30, 40)]
    put_jsonl(client, name, f"gt/{hour2}/labels.jsonl", labels)
    deployment.configure(window_seconds=WINDOW, label_grace=60, min_samples=1, rolling_size=0)
    state = tmp_path / "capture-state.json"
    args = ingest_args(deployment, "--endpoint-url", s3_url, "--state", str(state), topics=("inferences",))
    assert main(["ingest", "capture", f"s3://{name}/capture", *args]) == 0
    out = capsys.readouterr().out
    assert "32 records sent from 2 files" in out and "1 lines rejected" in out
    assert f"s3://{name}/capture/churn-ep/AllTraffic/{hour1}/a.jsonl:23" in out
    assert (
        main(
            [
                "ingest",
                "labels",
                f"s3://{name}/gt",
                *ingest_args(
                    deployment, "--endpoint-url", s3_url, "--state", str(tmp_path / "l.json"), topics=("labels",)
                ),
            ]
        )
        == 0
    )
    assert "32 records sent from 1 files" in capsys.readouterr().out
    assert main(["ingest", "capture", f"s3://{name}/capture", *args]) == 0
    assert "0 records sent from 0 files (2 already sent before)" in capsys.readouterr().out

    inferences = list(read_topic(deployment.kafka, deployment.topic("inferences")))
    assert {i["model"] for i in inferences} == {"churn-ep"} and {i["model_version"] for i in inferences} == {
        "AllTraffic"
    }
    assert {i["event_id"] for i in inferences} >= {"inf-20", "e21"}
    deployment.start_worker()
    deployment.close_all_windows(1_764_010_000.0)
    windows = deployment.wait_for(
        "2 windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 2 and w
    )
    first = windows["2025-11-24T16:00:00Z"]["binary_classification_metrics"]["confusion_matrix"]
    # e0..e19: score 0.9 for odd i (label 1), 0.1 for even (label 0); inf-20 score 0.8 label 1; e21 0.2 label 0.
    assert first == {"0": {"0": 11, "1": 0}, "1": {"0": 0, "1": 11}}
    assert windows["2025-11-24T17:00:00Z"]["sample_count"] == 10


def test_multi_instance_and_batch_captures_dry_run_then_join_completely(
    deployment: Deployment, tmp_path: Path, capsys
) -> None:
    """A 300-instance JSON capture, JSON Lines and a batch transform: --dry-run prints exactly what a
    real ingest then puts on the topic (no broker needed for it), and the worker joins every instance
    with its ground truth's `instances`."""
    scores = [round((i * 37 % 300) / 300, 4) for i in range(300)]
    truth = [int(s > 0.4) for s in scores]
    hour = tmp_path / "capture" / "churn-ep" / "AllTraffic" / "2025" / "11" / "24" / "16"
    batch_hour = tmp_path / "capture" / "churn-ep" / "AllTraffic" / "2025" / "11" / "24" / "17"
    hour.mkdir(parents=True)
    batch_hour.mkdir(parents=True)
    big = capture(
        "big", "2025-11-24T16:10:00Z", json.dumps({"predictions": [{"score": s} for s in scores]}), "JSON",
        content_type="application/json",
    )  # fmt: skip
    lines = capture(
        "jl", "2025-11-24T16:20:00Z", '{"score": 0.9}\n{"score": 0.1}', "JSON", content_type="application/jsonlines"
    )
    (hour / "a.jsonl").write_text(json.dumps(big) + "\n" + json.dumps(lines) + "\n")
    batch = {
        "captureData": {
            "batchTransformOutput": {
                "observedContentType": "application/jsonlines",
                "mode": "OUTPUT",
                "data": '{"SageMakerOutput": {"score": 0.8}, "features": [1]}',
                "encoding": "JSON",
            }
        },
        "eventMetadata": {"eventId": "bt"},
        "eventVersion": "0",
    }
    (batch_hour / "b.jsonl").write_text(json.dumps(batch) + "\n")
    # labels come up to 2 hours after their window (the ground truth's hour folder is 18): the grace covers it
    deployment.configure(window_seconds=WINDOW, label_grace=7200, min_samples=1, rolling_size=0)
    capture_args = [
        "ingest", "capture", str(tmp_path / "capture"), "--probability-attribute", "predictions[*].score",
    ]  # fmt: skip
    # The JSON Lines and batch captures name their score differently: one attribute per run, as in SageMaker.
    dry = main([*capture_args, "--dry-run", "--broker", "kafka://127.0.0.1:1", "--state", str(tmp_path / "dry")])
    out, err = capsys.readouterr()
    assert dry == 0 and "300 records printed (dry run: nothing sent) from 2 files" in err and "2 lines rejected" in err
    printed = [json.loads(line) for line in out.splitlines()]
    assert [r["event_id"] for r in printed] == [f"big:{i}" for i in range(300)]
    assert not (tmp_path / "dry").exists()  # a dry run remembers nothing

    for attribute, state in (("predictions[*].score", "s1"), ("score", "s2"), ("SageMakerOutput.score", "s3")):
        flags = ["--probability-attribute", attribute, "--state", str(tmp_path / state)]
        assert main([*capture_args[:3], *flags, *ingest_args(deployment, topics=("inferences",))]) == 0
    capsys.readouterr()
    sent = {r["event_id"]: r for r in read_topic(deployment.kafka, deployment.topic("inferences"))}
    assert {k: v for k, v in sent.items() if k.startswith("big:")} == {r["event_id"]: r for r in printed}
    assert {"jl:0", "jl:1", "bt"} <= set(sent) and len(sent) == 303
    assert sent["bt"]["inference_time"] == "2025-11-24T17:00:00Z"  # the batch file's hour

    labels = tmp_path / "gt" / "2025" / "11" / "24" / "18"
    labels.mkdir(parents=True)
    gt_big = ground_truth("big", "", "JSON")
    gt_big["groundTruthData"]["data"] = json.dumps({"instances": [{"label": y} for y in truth]})
    gt_lines = ground_truth("jl", "", "CSV")
    gt_lines["groundTruthData"]["data"] = "1\n0"
    (labels / "l.jsonl").write_text("\n".join(json.dumps(d) for d in (gt_big, gt_lines, ground_truth("bt", 1))))
    flags = ["--state", str(tmp_path / "gt-state"), *ingest_args(deployment, topics=("labels",))]
    assert main(["ingest", "labels", str(tmp_path / "gt"), *flags]) == 0
    assert "303 records sent from 1 files" in capsys.readouterr().out
    # the ground truth's hour folder is the labels' time; their Kafka timestamps stay the producer's clock
    sent_labels = list(read_records(deployment.kafka, deployment.topic("labels")))
    assert {json.loads(r.value)["label_time"] for r in sent_labels} == {"2025-11-24T18:00:00Z"}
    assert min(r.timestamp for r in sent_labels) > (time.time() - 3600) * 1000
    deployment.start_worker()
    deployment.close_all_windows(1_764_020_000.0)
    windows = deployment.wait_for(
        "2 windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 2 and w
    )
    first = windows["2025-11-24T16:00:00Z"]
    assert first["sample_count"] == 302
    matrix = first["binary_classification_metrics"]["confusion_matrix"]
    predicted = [int(s >= 0.5) for s in scores] + [1, 0]
    actual = [*truth, 1, 0]
    for a in (0, 1):
        for p in (0, 1):
            want = sum(1 for x, y in zip(actual, predicted) if x == a and y == p)
            assert matrix[str(a)][str(p)] == want
    assert windows["2025-11-24T17:00:00Z"]["sample_count"] == 1


def test_ingest_resumes_after_a_kill_without_skipping(deployment: Deployment, tmp_path: Path) -> None:
    """An ingest killed mid-file and restarted sends every record; repeats stay within one flush."""
    deployment.configure(window_seconds=WINDOW)
    source = tmp_path / "capture" / "ep" / "v1" / "2025" / "11" / "24" / "16"
    source.mkdir(parents=True)
    n = 40_000
    with open(source / "big.jsonl", "w") as handle:
        for i in range(n):
            handle.write(json.dumps(capture(f"k{i}", "2025-11-24T16:00:00Z", "0.5")) + "\n")
    state = tmp_path / "state.json"
    command = [
        sys.executable,
        "-m",
        "connectors.cli",
        "ingest",
        "capture",
        str(tmp_path / "capture"),
        "--state",
        str(state),
        *ingest_args(deployment, topics=("inferences",)),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["partial"]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["done"] == []  # killed inside the file
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    assert json.loads(state.read_text())["done"] == ["ep/v1/2025/11/24/16/big.jsonl"]
    ids = [i["event_id"] for i in read_topic(deployment.kafka, deployment.topic("inferences"))]
    assert set(ids) == {f"k{i}" for i in range(n)}
    assert len(ids) - n <= 5000


def test_ingest_table_sends_inferences_and_labels(deployment: Deployment, tmp_path: Path, capsys) -> None:
    """A warehouse export with a column mapping becomes inference and label records; bad rows are reported."""
    import pandas as pd

    table = tmp_path / "export.parquet"
    pd.DataFrame(
        {
            "id": ["a", "b", None],
            "ts": ["2025-11-24T16:00:00Z"] * 3,
            "pred": [1, 0, 1],
            "p": [0.9, 0.2, 0.8],
            "y": [1, 1, 0],
        }
    ).to_parquet(table)
    deployment.configure(window_seconds=WINDOW)
    code = main(
        [
            "ingest",
            "table",
            str(table),
            "--event-id-column",
            "id",
            "--model",
            "churn",
            "--time-column",
            "ts",
            "--prediction-column",
            "pred",
            "--probability-column",
            "p",
            "--label-column",
            "y",
            *ingest_args(deployment),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "4 records sent" in out and "1 lines rejected" in out and "row 3" in out
    inferences = list(read_topic(deployment.kafka, deployment.topic("inferences")))
    assert sorted((i["event_id"], i["prediction"], i["probability"]) for i in inferences) == [
        ("a", 1, 0.9),
        ("b", 0, 0.2),
    ]
    labels = list(read_topic(deployment.kafka, deployment.topic("labels")))
    assert sorted((d["event_id"], d["label"]) for d in labels) == [("a", 1), ("b", 1)]


def produce_windows(dep: Deployment, tmp_path: Path) -> dict[str, dict]:
    """A worker's two closed windows, the second with recall violations."""
    from tests.integration.test_worker import CONSTRAINTS, produce
    from tests.integration.workload import arrival_order, workload

    path = tmp_path / "c.json"
    path.write_text(json.dumps(CONSTRAINTS))
    pairs = workload(n=400, per_window=200, window=60.0, drift_window=1, seed=21, max_label_delay=5)
    dep.configure(window_seconds=60.0, label_grace=30.0, min_samples=50, constraints=str(path), rolling_size=0)
    dep.start_worker()
    produce(dep, arrival_order(pairs))
    dep.close_all_windows(pairs[-1].time + 1000)
    return dep.wait_for("2 windows", lambda: (w := tumbling(dep.read("metrics"))) and len(w) == 2 and w)


def test_s3_sink_writes_sagemaker_reports_once(deployment: Deployment, s3_url: str, tmp_path: Path) -> None:
    """Each closed window gets statistics.json and constraint_violations.json in SageMaker's shapes, once."""
    windows = produce_windows(deployment, tmp_path)
    name = f"reports-{deployment.name}"
    client = bucket(s3_url, name)
    args = [
        "sink",
        "s3",
        f"s3://{name}/monitoring",
        "--endpoint-url",
        s3_url,
        "--once",
        "--broker",
        deployment.broker,
        "--metrics-topic",
        deployment.topic("metrics"),
        "--app-id",
        deployment.name,
    ]
    assert main(args) == 0
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"])
    assert keys == [
        f"monitoring/churn/1/2025/11/24/16/{mmss}-60s/{f}"
        for mmss in ("0000", "0100")
        for f in ("constraint_violations.json", "statistics.json")
    ]
    for key in keys:
        doc = json.loads(client.get_object(Bucket=name, Key=key)["Body"].read())
        window = "2025-11-24T16:00:00Z" if "/0000-" in key else "2025-11-24T16:01:00Z"
        if key.endswith("statistics.json"):
            assert doc["version"] == 0.0 and doc["dataset"]["item_count"] == windows[window]["sample_count"]
            stats = doc["binary_classification_metrics"]
            # SageMaker's shape: the record's statistics without truthstream's confidence intervals
            expected = {
                name: {k: v for k, v in entry.items() if k != "confidence_interval"}
                if isinstance(entry, dict)
                else entry
                for name, entry in windows[window]["binary_classification_metrics"].items()
            }
            assert "confidence_interval" in windows[window]["binary_classification_metrics"]["recall"]
            assert stats == expected
            for metric in ("recall", "precision", "accuracy", "f1", "f2", "auc", "true_negative_rate"):
                assert set(stats[metric]) == {"value", "standard_deviation"}
        else:
            assert set(doc) == {"violations"}
            for v in doc["violations"]:
                assert set(v) == {"metric_name", "constraint_check_type", "description"}
            assert bool(doc["violations"]) == (window == "2025-11-24T16:01:00Z")
    client.delete_object(Bucket=name, Key=keys[0])
    assert main(args) == 0  # offsets were committed: nothing is written again
    assert len(client.list_objects_v2(Bucket=name)["Contents"]) == len(keys) - 1


class Hook(BaseHTTPRequestHandler):
    """Fails the first `failures` POSTs with 503, then records bodies."""

    failures = 0
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Hook.failures > 0:
            Hook.failures -= 1
            self.send_response(503)
        else:
            Hook.received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_webhook_down_then_up_loses_nothing(deployment: Deployment, tmp_path: Path, capsys) -> None:
    """While the endpoint fails the sink retries; every violation arrives once, with a Slack text."""
    produce_windows(deployment, tmp_path)
    violations = deployment.wait_for("violations", lambda: deployment.read("violations"))
    Hook.failures, Hook.received = 4, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
        assert (
            main(
                [
                    "sink",
                    "webhook",
                    url,
                    "--once",
                    "--broker",
                    deployment.broker,
                    "--violations-topic",
                    deployment.topic("violations"),
                    "--app-id",
                    deployment.name,
                ]
            )
            == 0
        )
    finally:
        server.shutdown()
    shown = capsys.readouterr()
    assert "retrying" in shown.err and "retrying" not in shown.out  # diagnostics on stderr, results on stdout
    assert sorted(v["violation_id"] for v in Hook.received) == sorted(v["violation_id"] for v in violations)
    assert all(v["text"].startswith(":rotating_light: churn v1: ") for v in Hook.received)
    assert any(v["text"].startswith(":rotating_light: churn v1: Metric ") for v in Hook.received)

    # The violations reader prints them too, from a time, as JSON lines.
    assert (
        main(
            [
                "violations",
                "--json",
                "--from",
                "2000-01-01T00:00:00Z",
                "--group",
                f"cli-{deployment.name}",
                "--broker",
                deployment.broker,
                "--violations-topic",
                deployment.topic("violations"),
            ]
        )
        == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert sorted(v["violation_id"] for v in printed) == sorted(v["violation_id"] for v in violations)

    # Without a group it commits nothing: two runs print the same table, with each window's kind and end.
    tables = []
    for _ in range(2):
        started = time.monotonic()
        args = ["violations", "--broker", deployment.broker, "--violations-topic", deployment.topic("violations")]
        assert main(args) == 0
        assert time.monotonic() - started < 10
        tables.append(capsys.readouterr().out)
    assert tables[0] == tables[1] and f"{len(violations)} violations" in tables[0]
    assert "tumbling" in tables[0] and "2025-11-24 16:02" in tables[0]  # the end of the 16:01 window


def test_a_missing_broker_is_one_line_within_seconds(capsys) -> None:
    """Every command that needs Kafka answers a broker that is not there with one line and exit 2."""
    for args in (["violations"], ["replay"], ["sink", "webhook", "http://127.0.0.1:1/", "--once"]):
        started = time.monotonic()
        assert main([*args, "--broker", "kafka://127.0.0.1:1"]) == 2
        assert time.monotonic() - started < 15
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            "truthstream: error: no Kafka broker answers at 127.0.0.1:1; check TRUTHSTREAM_BROKER (or --broker)"
        ]
