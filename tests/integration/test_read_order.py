"""Labels without `label_time`, as SageMaker's ground truth comes: each takes its record's Kafka
timestamp, so a backlog read after the fact gives the windows a live run gives, whatever the order
the worker reads the topics in."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.kafka import json_producer
from tests.factories import on_partition
from tests.integration.conftest import PARTITIONS, Deployment, tumbling
from tests.integration.test_worker import WINDOW, assert_matches_sklearn, settings
from tests.integration.workload import Pair, expected_windows, inference_doc, workload

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

GRACE = 5.0  # seconds: a label comes 0 to 4 s after its inference


def untimed(p: Pair) -> dict:
    return {"event_id": p.event_id, "label": p.y_true}


def produce(dep: Deployment, pairs: list[Pair], sides: tuple[str, ...] = ("inferences", "labels")) -> None:
    """Each record with the Kafka timestamp a live producer would have given it (its inference's
    time, or its label's), labels without `label_time`."""
    producer = json_producer(dep.kafka)
    for p in pairs:
        if "inferences" in sides:
            producer.send(
                dep.topic("inferences"), key=p.event_id, value=inference_doc(p), timestamp_ms=int(p.time * 1000)
            )
        if "labels" in sides:
            producer.send(dep.topic("labels"), key=p.event_id, value=untimed(p), timestamp_ms=int(p.label_time * 1000))
    producer.flush()
    producer.close()


def provisional(dep: Deployment) -> int:
    return sum(r["window"]["kind"] == "provisional" for r in dep.read("metrics"))


def final_windows(dep: Deployment, count: int) -> dict[str, dict]:
    return dep.wait_for(
        f"{count} closed windows", lambda: (w := tumbling(dep.read("metrics"))) and len(w) == count and w, timeout=240
    )


@pytest.mark.parametrize("order", ["backlog", "inferences read first"])
def test_a_backlog_of_labels_without_label_time_gives_the_live_windows(
    deployment: Deployment, tmp_path: Path, order: str
) -> None:
    """8,000 pairs, labels 0-4 s after their inferences and carrying no time: produced before the
    worker starts (a backlog), or with every inference read before any label is produced: every
    window equals scikit-learn's on the whole data, none late."""
    pairs = workload(n=8000, per_window=1000, window=WINDOW, drift_window=5, seed=21, max_label_delay=4)
    deployment.configure(**settings(tmp_path, label_grace=GRACE, batch_size=500))
    later = pairs[-1].time + 1000  # a pair on every partition, past the last window's grace
    end = [Pair(on_partition("end", p, PARTITIONS), later, later, 0, 0, 0.5) for p in range(PARTITIONS)]
    if order == "backlog":
        produce(deployment, pairs + end)
        deployment.start_worker()
    else:
        produce(deployment, pairs + end, sides=("inferences",))
        deployment.start_worker()
        deployment.wait_for("every inference read (8 provisional records)", lambda: provisional(deployment) >= 8)
        produce(deployment, pairs + end, sides=("labels",))
    published = final_windows(deployment, 8)
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
    assert sum(r["counts"]["late"] for r in published.values()) == 0
