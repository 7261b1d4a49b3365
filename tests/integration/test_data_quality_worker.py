"""The data-quality monitor end to end: two worker processes on a real broker and Redis profile the
inputs per window, the drift is raised where it starts, and the S3 sink writes the service's files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from connectors.cli import main
from stream.core.javajson import dumps
from tests.factories import T0, inference, on_partition
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.test_connectors import bucket, s3_url  # noqa: F401 - the fixture
from tests.test_data_quality_stream import baseline_of, quality_settings, reference_rows

pytestmark = [pytest.mark.integration, pytest.mark.redis_cluster]

WINDOW = 60.0


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_profile_each_window_as_baseline_does_and_the_sink_writes_its_violations(
    deployment: Deployment,
    s3_url: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    workers: int,
) -> None:
    """Three windows of 600 inferences over 4 partitions, income shifted from the third on, read by one
    worker and by two: each window's statistics equal `baseline` on its rows in (partition, offset) order
    (so one and two workers give the same);
    baseline_drift_check on income in the third window only, on the violations topic with
    feature_name; the S3 sink writes statistics.json and constraint_violations.json in Jackson's layout."""
    base = baseline_of(reference_rows(1500))
    deployment.configure(window_seconds=WINDOW, label_grace=30.0, rolling_size=0, **quality_settings(base, tmp_path))
    for _ in range(workers):
        deployment.start_worker()
    rng = random.Random(8)
    rows: list[list[tuple[int, int, dict[str, Any]]]] = []
    for w in range(3):
        batch, mine = [], []
        for i in range(600):
            features = {"income": rng.gauss(50.0 + (15.0 if w == 2 else 0.0), 10.0), "plan": rng.choice("abc")}
            partition = i % PARTITIONS
            event_id = on_partition(f"dq{w}-{i}-", partition, PARTITIONS)
            doc = inference(event_id, T0 + w * WINDOW + i * WINDOW / 600, "1", 0.7, features=features)
            batch.append((event_id, doc))
            mine.append((partition, i, features))
        deployment.send("inferences", batch)
        rows.append(mine)
    deployment.close_all_windows(T0 + 3 * WINDOW + 1)

    def published() -> list[dict[str, Any]] | None:
        found = [r for r in deployment.read("metrics") if r["window"]["kind"] == "data_quality"]
        return sorted(found, key=lambda r: r["window"]["start"]) if len(found) == 3 else None

    records = deployment.wait_for("3 data-quality records", published)
    for w, record in enumerate(records):
        ordered = [f for _, _, f in sorted(rows[w], key=lambda r: (r[0], r[1]))]
        assert record["statistics"] == baseline_of(ordered).statistics, w
        assert record["drifted_features"] == (["income"] if w == 2 else [])
    violations = [v for v in deployment.read("violations") if v.get("data_quality")]
    assert [(v["feature_name"], v["constraint_check_type"], v["window"]["start"]) for v in violations] == [
        ("income", "baseline_drift_check", records[2]["window"]["start"])
    ]

    name = f"dq-{deployment.name}"
    client = bucket(s3_url, name)
    args = ["sink", "s3", f"s3://{name}/monitoring", "--endpoint-url", s3_url, "--once", "--broker"]
    args += [deployment.broker, "--metrics-topic", deployment.topic("metrics"), "--app-id", deployment.name]
    assert main(args) == 0
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"] if "data-quality/" in o["Key"])
    assert len(keys) == 6 and all(k.startswith("monitoring/data-quality/churn/1/2025/11/24/16/") for k in keys)
    last = client.get_object(Bucket=name, Key=keys[-2])["Body"].read().decode()  # the third window's violations
    assert keys[-2].endswith("0200-60s/constraint_violations.json")
    assert last == dumps({"violations": records[2]["violations"]}) and not last.endswith("\n")
    assert '"feature_name" : "income"' in last
