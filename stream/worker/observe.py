"""The worker's Prometheus metrics (prometheus_client), served on TRUTHSTREAM_METRICS_PORT.

Two kinds of series, which aggregate differently over several workers:

- *Per worker* (sum them over instances): what this worker processed (`truthstream_records_total`,
  `truthstream_dead_letters_total`), published (`truthstream_violations_total`), and its own health
  (batch time, freshness, Redis round trips, the lag of the partitions it owns).
- *Global* (never sum them): the latest window's metrics (set by the worker that published the
  window; the rules file's recording rules pick the latest over workers) and the waiting join entries
  (read from Redis, the same on every worker: take `max`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from stream.core.catalog import Catalog
from stream.core.changes import CHANGE_CHECK_TYPE
from stream.core.dataquality.window import QUALITY_KIND
from stream.core.engine import BatchReport
from stream.core.metrics import STATISTICS_KEY, scalar_values
from stream.core.outputs import PROVISIONAL_KIND
from stream.core.records import INFERENCE, LABEL
from stream.core.state import METRICS, VIOLATION, Output
from stream.core.timefmt import parse_time
from stream.errors import ConfigError

log = logging.getLogger("truthstream.worker")

# Latencies on a stream: milliseconds to minutes.
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def field_reason(field: str) -> str:
    """A dead letter's reason label: the field it names up to its first dot (`probabilities.cat` ->
    `probabilities`, so a model's class names cannot grow the series), or `record` for the whole."""
    return field.split(".", 1)[0][:64] or "record"


class PrometheusMetrics:
    """The worker's series in a registry of their own; the worker feeds them batch reports, published
    outputs and readings of its state, and `serve` exposes them over HTTP."""

    def __init__(self, topics: Mapping[str, str], catalog: Catalog) -> None:
        self.topics, self.catalog = topics, catalog  # topics: side -> input topic name
        self._ends: dict[tuple[str, str, str], float] = {}
        self._lagging: set[tuple[str, str]] = set()
        self.registry = r = CollectorRegistry()
        self.window_metric = Gauge(
            "truthstream_window_metric",
            "Latest value of each metric of the latest window published by this worker (global: see the "
            "recording rule truthstream:window_metric:latest)",
            ["model", "model_version", "metric", "window_kind"],
            registry=r,
        )
        self.window_samples = Gauge(
            "truthstream_window_samples",
            "Joined samples of the latest window published by this worker",
            ["model", "model_version", "window_kind"],
            registry=r,
        )
        self.window_end = Gauge(
            "truthstream_window_end_seconds",
            "End (event time, Unix seconds) of the latest window published by this worker",
            ["model", "model_version", "window_kind"],
            registry=r,
        )
        self.label_coverage = Gauge(
            "truthstream_window_label_coverage",
            "Share of the newest closed tumbling window's inferences that were joined with their label in time",
            ["model", "model_version"],
            registry=r,
        )
        # data quality, by SageMaker's CloudWatch names (feature_baseline_drift_<f> is
        # truthstream_feature_baseline_drift{feature="<f>"}), of the baseline's features only
        self.feature_drift = Gauge(
            "truthstream_feature_baseline_drift",
            "Drift distance of each feature in the latest data-quality window (feature_baseline_drift_<f>)",
            ["model", "model_version", "feature"],
            registry=r,
        )
        self.feature_non_null = Gauge(
            "truthstream_feature_non_null",
            "Share of the latest data-quality window's rows with the feature present (feature_non_null_<f>)",
            ["model", "model_version", "feature"],
            registry=r,
        )
        self.feature_data = Gauge(
            "truthstream_feature_data",
            "A numeric feature's min, max, sum, average and sample_count in the latest data-quality window "
            "(feature_data_<f>)",
            ["model", "model_version", "feature", "statistic"],
            registry=r,
        )
        self.threshold = Gauge(
            "truthstream_constraint_threshold",
            "Threshold of each constrained metric of a model the worker published a window of",
            ["model", "metric", "comparison"],
            registry=r,
        )
        self.violations = Counter(
            "truthstream_violations",
            "Violation records this worker published (constraints broken; changes are counted apart)",
            ["model", "model_version", "metric"],
            registry=r,
        )
        self.changes = Counter(
            "truthstream_changes",
            "Changes in accuracy the change detectors found (segment: key=value, or empty for the whole window)",
            ["model", "model_version", "segment"],
            registry=r,
        )
        self.records = Counter(
            "truthstream_records",
            "Input records this worker settled, by outcome: joined, late, duplicate, rejected, expired, evicted",
            ["topic", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "truthstream_dead_letters",
            "Dead letters this worker queued, by the field found wrong (record: the whole message; "
            "undeliverable: an output the broker refused for good)",
            ["reason"],
            registry=r,
        )
        self.pending = Gauge(
            "truthstream_pending_join_entries",
            "Inferences and labels waiting for their other side (global, read from Redis: take max)",
            ["side"],
            registry=r,
        )
        self.lag = Gauge(
            "truthstream_consumer_lag",
            "Messages behind the end of each input partition this worker owns",
            ["topic", "partition"],
            registry=r,
        )
        self.state_bytes = Gauge(
            "truthstream_state_bytes",
            "Redis memory of truthstream's state by family, estimated from a few keys of each (global: take max)",
            ["family"],
            registry=r,
        )
        self.redis_memory = Gauge(
            "truthstream_redis_used_memory_bytes",
            "Redis's used_memory (summed over a cluster's masters; global: take max)",
            registry=r,
        )
        self.state_limit = Gauge(
            "truthstream_state_limit_bytes",
            "TRUTHSTREAM_STATE_LIMIT_MIB in bytes: the bound of the TruthstreamStateTooLarge alert (0: none)",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "truthstream_batch_seconds", "Time to process one batch", buckets=SECONDS, registry=r
        )
        self.freshness = Histogram(
            "truthstream_label_to_metric_seconds",
            "From a batch's oldest label (its Kafka timestamp) to Kafka acknowledging the metrics record "
            "that first includes it",
            buckets=SECONDS,
            registry=r,
        )
        self.redis_seconds = Histogram(
            "truthstream_redis_roundtrip_seconds", "Round-trip time of a Redis PING", buckets=SECONDS, registry=r
        )
        for side in (INFERENCE, LABEL):  # present from the start, so that rate() sees the first ones
            for outcome in ("joined", "late", "duplicate", "rejected", "expired", "evicted"):
                self.records.labels(topics[side], outcome)

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Expose the registry over HTTP at /metrics, in a thread of its own."""
        try:
            start_http_server(port, address, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on port {port} ({exc.strerror}); set TRUTHSTREAM_METRICS_PORT to a free port "
                "or 0 to turn the endpoint off"
            ) from exc

    def batch(self, report: BatchReport, seconds: float) -> None:
        """Count a processed batch's outcomes."""
        self.batch_seconds.observe(seconds)
        self.outcomes(report)

    def outcomes(self, report: BatchReport) -> None:
        """Count the records a batch or a sweep settled, and its dead letters."""
        for (side, outcome), n in report.outcomes.items():
            self.records.labels(self.topics.get(side, side), outcome).inc(n)
        for field, n in report.dead_letter_fields.items():
            self.dead_letters.labels(field_reason(field)).inc(n)

    def published(self, outputs: Iterable[Output]) -> None:
        """Follow what Kafka acknowledged: the latest window of each model version, and violations."""
        for output in outputs:
            record = output.value
            try:
                if output.channel == VIOLATION and record.get("constraint_check_type") == CHANGE_CHECK_TYPE:
                    segment = record.get("segment") or {}
                    where = f"{segment['key']}={segment['value']}" if segment else ""
                    self.changes.labels(record["model"], record["model_version"], where).inc()
                elif output.channel == VIOLATION:
                    self.violations.labels(record["model"], record["model_version"], record["metric_name"]).inc()
                elif output.channel == METRICS and record["window"]["kind"] in (
                    "tumbling",
                    "rolling",
                    PROVISIONAL_KIND,
                ):
                    self._window(record)
                elif output.channel == METRICS and record["window"]["kind"] == QUALITY_KIND:
                    self._quality(record)
            except (KeyError, TypeError, ValueError) as exc:  # a record of another shape: never stop publishing
                log.warning("metrics: skipped a %s record the metrics cannot read (%r)", output.channel, exc)

    def _window(self, record: Mapping[str, Any]) -> None:
        model, version, kind = record["model"], record["model_version"], record["window"]["kind"]
        end = parse_time(record["window"]["end"])
        if end < self._ends.get((model, version, kind), -math.inf):  # an older window published late
            return
        self._ends[model, version, kind] = end
        self.window_end.labels(model, version, kind).set(end)
        self.window_samples.labels(model, version, kind).set(record["sample_count"])
        if kind != PROVISIONAL_KIND and isinstance(record.get("labels"), Mapping):  # an estimate's: so far
            self.label_coverage.labels(model, version).set(record["labels"]["coverage"])
        for metric, value in scalar_values(record[STATISTICS_KEY[record["problem_type"]]]).items():
            self.window_metric.labels(model, version, metric, kind).set(value)
        constraints = self.catalog.constraints(model)
        for c in constraints.constraints if constraints else ():
            self.threshold.labels(model, c.metric_name, c.comparison_operator).set(c.threshold)
            # from 0 before the first violation, so that increase() sees the first ones
            self.violations.labels(model, version, c.reported_name)
        if kind == "tumbling":
            self.changes.labels(model, version, "")  # from 0 too

    def _quality(self, record: Mapping[str, Any]) -> None:
        """A data-quality window's drift, completeness and numeric summaries, per baseline feature."""
        model, version = record["model"], record["model_version"]
        end = parse_time(record["window"]["end"])
        if end < self._ends.get((model, version, QUALITY_KIND), -math.inf):
            return
        self._ends[model, version, QUALITY_KIND] = end
        baseline = self.catalog.quality(model)
        known = set(baseline.names) if baseline is not None else set()
        for name, distance in record.get("drift", {}).items():
            self.feature_drift.labels(model, version, name).set(distance)
        for feature in record["statistics"]["features"]:
            name = feature["name"]
            if name not in known:
                continue  # extra columns: named in violations, not given series of their own
            body = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
            common = body.get("common", {})
            total = common.get("num_present", 0) + common.get("num_missing", 0)
            self.feature_non_null.labels(model, version, name).set(common.get("num_present", 0) / total if total else 1)
            if "numerical_statistics" in feature:
                numbers = feature["numerical_statistics"]
                for statistic, value in (
                    ("min", numbers["min"]),
                    ("max", numbers["max"]),
                    ("sum", numbers["sum"]),
                    ("average", numbers["mean"]),
                    ("sample_count", common.get("num_present", 0)),
                ):
                    self.feature_data.labels(model, version, name, statistic).set(value)

    def state(self, pending: Mapping[str, int], lag: Mapping[tuple[str, int], int | None]) -> None:
        """Set the readings of the state: waiting entries by side, lag by owned partition."""
        for side, n in pending.items():
            self.pending.labels(side).set(n)
        owned = {(topic, str(partition)) for topic, partition in lag}
        for gone in self._lagging - owned:  # partitions move between workers: show only those owned now
            self.lag.remove(*gone)
        self._lagging = owned
        for (topic, partition), behind in lag.items():
            self.lag.labels(topic, str(partition)).set(math.nan if behind is None else behind)

    def state_size(self, families: Mapping[str, float], used_memory: float) -> None:
        """Set the readings of the state's size: bytes by family, and Redis's used_memory."""
        for family, size in families.items():
            self.state_bytes.labels(family).set(size)
        self.redis_memory.set(used_memory)

    def labels_published(self, label_times: list[float]) -> None:
        """Observe freshness for batches whose metrics records Kafka acknowledged now."""
        now = time.time()
        for oldest in label_times:
            self.freshness.observe(max(0.0, now - oldest))
