"""Waiting entries expire on the worker's timer, in partitions nothing comes to as well: after an
idle close moves event time past the label TTL, the inferences that never got a label are counted
`expired_inferences` (in an accounting record) and in Prometheus, though no batch read their
partition again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.embedded import free_port
from tests.factories import inference, on_partition
from tests.integration.conftest import PARTITIONS, Deployment, counted
from tests.integration.test_metrics_endpoint import scrape, value
from tests.integration.test_worker import settings

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.redis_cluster]


def test_inferences_in_a_quiet_partition_expire_on_the_timer(deployment: Deployment, tmp_path: Path) -> None:
    port = free_port()
    deployment.configure(
        **settings(tmp_path, min_samples=1, rolling_size=0), label_ttl=20, idle_close=2, metrics_port=port
    )
    deployment.start_worker()
    now = time.time()
    waiting = [on_partition(f"quiet-{i}-", i % PARTITIONS, PARTITIONS) for i in range(8)]
    deployment.send("inferences", [(e, inference(e, now, 1, 0.9)) for e in waiting])
    # nothing more comes: event time moves with the wall clock (idle close), past the 20 s TTL
    found = deployment.wait_for("8 expired inferences", lambda: counted(deployment, "expired_inferences") == 8, 90)
    assert found
    metrics = scrape(port)
    assert value(metrics, "truthstream_records_total", outcome="expired", topic=deployment.topic("inferences")) == 8
