"""Following the output topics in a terminal: one line per closed window, one per violation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from connectors.kafka import topic_partitions
from stream.core.changes import CHANGE_CHECK_TYPE
from stream.core.timefmt import parse_time, window_span
from stream.kafka_clients import KafkaConnection

# The metrics worth a column, per problem type (the record has them all).
COLUMNS = {
    "binary_classification_metrics": ("accuracy", "precision", "recall", "f1", "auc"),
    "multiclass_classification_metrics": ("accuracy", "weighted_precision", "weighted_recall", "weighted_f1"),
    "regression_metrics": ("mae", "rmse", "r2"),
}


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def window_line(record: dict[str, Any]) -> str:
    """A metrics record as one line: window, model, samples, the main metrics, status and counts."""
    window = record["window"]
    where = window_span(parse_time(window["start"]), parse_time(window["end"]))
    model = record["model"] + (f" v{record['model_version']}" if record["model_version"] else "")
    key = next((k for k in COLUMNS if k in record), "")
    values = "  ".join(
        f"{name} {_number(record[key].get(name, {}).get('value', '-'))}" for name in COLUMNS.get(key, ())
    )
    counts = ", ".join(f"{n} {name}" for name, n in record.get("counts", {}).items() if n)
    return f"{where}  {model:<14} n={record['sample_count']:<6} {values}  [{record['status']}]" + (
        f"  ({counts})" if counts else ""
    )


class Watcher:
    """Reads the metrics and violations topics from their beginning and prints what is new."""

    def __init__(
        self,
        kafka: KafkaConnection,
        metrics_topic: str,
        violations_topic: str,
        rolling: bool = False,
        line: Callable[[dict[str, Any]], str] = window_line,
    ) -> None:
        self.metrics_topic, self.violations_topic, self.rolling = metrics_topic, violations_topic, rolling
        self.line = line
        self.consumer = KafkaConsumer(
            **kafka.require_reachable().kafka_python(), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        tps = [
            TopicPartition(t, p) for t in (metrics_topic, violations_topic) for p in topic_partitions(self.consumer, t)
        ]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.windows = self.violations = 0

    def poll(self, timeout_ms: int = 100) -> list[str]:
        """The lines for what was published since the last call."""
        lines = []
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for message in records:
                doc = json.loads(message.value)
                kind = doc["window"]["kind"]
                if message.topic == self.metrics_topic:
                    if kind == "tumbling" or (kind == "rolling" and self.rolling):
                        self.windows += 1
                        lines.append(self.line(doc))
                elif kind in ("tumbling", "provisional") or self.rolling:
                    self.violations += 1
                    version = f" v{doc['model_version']}" if doc["model_version"] else ""
                    if doc.get("constraint_check_type") == CHANGE_CHECK_TYPE:
                        what = "change"
                    elif doc.get("estimated"):
                        what = "estimated violation (no labels yet)"
                    else:
                        what = "violation"
                    lines.append(f"  ! {what} {doc['model']}{version}: {doc['description']}")
        return lines

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()
