"""The worker's Prometheus endpoint, scraped over HTTP from a worker on a real broker and Redis:
its values equal what the worker published on its topics."""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.embedded import free_port
from stream.core.catalog import Catalog
from stream.core.timefmt import parse_time
from stream.errors import ConfigError
from stream.worker.observe import PrometheusMetrics
from tests.integration.conftest import Deployment, tumbling
from tests.integration.test_worker import CONSTRAINTS, produce, settings, write_calibration
from tests.integration.workload import arrival_order, label_doc, workload

pytestmark = pytest.mark.integration

WINDOW = 60.0


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of the endpoint: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_scraped_metrics_equal_the_published_records(deployment: Deployment, tmp_path: Path) -> None:
    port = free_port()
    pairs = workload(n=1200, per_window=150, window=WINDOW, drift_window=4, seed=3, max_label_delay=20)
    deployment.configure(**settings(tmp_path, calibration=write_calibration(tmp_path)), metrics_port=port)
    deployment.start_worker()
    records = arrival_order(pairs)
    produce(deployment, records)
    deployment.send("inferences", [("bad-1", b"{not json"), ("bad-2", {"event_id": "bad-2", "model": "churn"})])
    first, second = pairs[0], pairs[1]
    other = {**label_doc(second), "label": 1 - second.y_true}
    # the same label again: a duplicate; another label for a joined event: a conflict (a dead letter)
    deployment.send("labels", [(first.event_id, label_doc(first)), (second.event_id, other)])
    deployment.close_all_windows(pairs[-1].time + 1000)
    windows = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w
    )
    last = windows[max(windows)]
    inferences, labels = deployment.topic("inferences"), deployment.topic("labels")
    key = {"model": "churn", "model_version": last["model_version"], "window_kind": "tumbling"}

    def settled() -> dict | None:
        samples = scrape(port)
        done = value(samples, "truthstream_window_end_seconds", **key) == parse_time(last["window"]["end"])
        lags = [v for (name, _), v in samples.items() if name == "truthstream_consumer_lag"]
        waiting = value(samples, "truthstream_pending_join_entries", side="label")
        return samples if done and lags and all(v == 0 for v in lags) and waiting == 4 else None

    samples = deployment.wait_for("the endpoint to show the last window and no lag", settled, timeout=60)

    stats = last["binary_classification_metrics"]
    for metric in ("accuracy", "recall", "precision", "f1", "auc"):
        assert value(samples, "truthstream_window_metric", metric=metric, **key) == stats[metric]["value"]
    assert value(samples, "truthstream_window_samples", **key) == last["sample_count"]
    estimates = [r for r in deployment.read("metrics") if r["window"]["kind"] == "provisional"]
    assert len(estimates) == len(windows)  # one label-free estimate per window, before its labels
    newest = max(estimates, key=lambda r: r["window"]["end"])
    estimate_key = {**key, "window_kind": "provisional", "model_version": newest["model_version"]}
    for metric in ("accuracy", "recall", "precision", "f1", "auc"):
        shown = value(samples, "truthstream_window_metric", metric=f"estimated_{metric}", **estimate_key)
        assert shown == newest["binary_classification_metrics"][f"estimated_{metric}"]["value"]
    coverage = value(samples, "truthstream_window_label_coverage", model="churn", model_version=last["model_version"])
    assert coverage == last["labels"]["coverage"]
    for metric, c in CONSTRAINTS["binary_classification_constraints"].items():
        shown = value(
            samples,
            "truthstream_constraint_threshold",
            model="churn",
            metric=metric,
            comparison=c["comparison_operator"],
        )
        assert shown == c["threshold"]

    events = deployment.read("violations")
    violations = Counter(
        (v["model_version"], v["metric_name"]) for v in events if v["constraint_check_type"] != "ChangeDetected"
    )
    assert violations  # the drift broke the constraints
    for (version, metric), n in violations.items():
        assert value(samples, "truthstream_violations_total", model="churn", model_version=version, metric=metric) == n
    changes = Counter(v["model_version"] for v in events if v["constraint_check_type"] == "ChangeDetected")
    for version in {w["model_version"] for w in windows.values()}:
        shown = value(samples, "truthstream_changes_total", model="churn", model_version=version, segment="")
        assert shown == changes[version]

    joined = sum(w["sample_count"] for w in windows.values())
    assert joined == len(pairs)  # every pair joined in time: no late ones in this stream
    assert value(samples, "truthstream_records_total", topic=inferences, outcome="joined") == joined
    assert value(samples, "truthstream_records_total", topic=labels, outcome="joined") == joined
    assert value(samples, "truthstream_records_total", topic=inferences, outcome="rejected") == 2
    assert value(samples, "truthstream_records_total", topic=labels, outcome="duplicate") == 1
    assert value(samples, "truthstream_records_total", topic=labels, outcome="conflict") == 1
    counted = sum(w["counts"]["rejected"] for w in windows.values()) + sum(
        r["counts"]["rejected"] for r in deployment.read("metrics") if r["window"]["kind"] == "accounting"
    )
    assert counted == 2  # the published counts agree
    dead = Counter(d["field"] or "record" for d in deployment.read("dead-letters"))
    for reason, n in dead.items():
        assert value(samples, "truthstream_dead_letters_total", reason=reason) == n
    # close_all_windows left one inference and one label per partition waiting
    assert value(samples, "truthstream_pending_join_entries", side="inference") == 4
    assert value(samples, "truthstream_batch_seconds_count") > 0
    assert value(samples, "truthstream_redis_roundtrip_seconds_count") > 0
    assert value(samples, "truthstream_label_to_metric_seconds_count") > 0


def test_a_busy_metrics_port_is_a_config_error_naming_the_setting() -> None:
    """Two workers given one port: the second is told which setting to change, not shown a bare OSError."""
    port = free_port()
    first = PrometheusMetrics({"inference": "inferences", "label": "labels"}, Catalog())
    first.serve(port, "127.0.0.1")
    second = PrometheusMetrics({"inference": "inferences", "label": "labels"}, Catalog())
    with pytest.raises(ConfigError, match=f"port {port}.*TRUTHSTREAM_METRICS_PORT"):
        second.serve(port, "127.0.0.1")
