"""A labelled workload with a known drift, and its expected metrics computed with scikit-learn."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from sklearn import metrics as skm

from stream.core.timefmt import format_time
from tests.factories import T0


@dataclass(frozen=True)
class Pair:
    """One inference and its label."""

    event_id: str
    time: float
    label_time: float
    y_true: int
    y_pred: int
    score: float


def workload(
    n: int, per_window: int, window: float, drift_window: int, seed: int, max_label_delay: float
) -> list[Pair]:
    """`n` pairs, `per_window` per window; from window `drift_window` on, the model is often wrong."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        t = T0 + (i // per_window) * window + (i % per_window) * (window / per_window)
        y = 1 if rng.random() < 0.4 else 0
        drifted = (i // per_window) >= drift_window
        correct = rng.random() < (0.55 if drifted else 0.95)
        pred = y if correct else 1 - y
        score = min(1.0, max(0.0, (0.75 if pred else 0.25) + rng.uniform(-0.24, 0.24)))
        pairs.append(Pair(f"ev-{seed}-{i}", t, t + rng.uniform(0, max_label_delay), y, pred, score))
    return pairs


def inference_doc(p: Pair, model: str = "churn") -> dict[str, Any]:
    return {
        "event_id": p.event_id,
        "model": model,
        "model_version": "1",
        "inference_time": format_time(p.time),
        "prediction": p.y_pred,
        "probability": p.score,
        "features": {"x": 1},
    }


def label_doc(p: Pair) -> dict[str, Any]:
    return {"event_id": p.event_id, "label": p.y_true, "label_time": format_time(p.label_time)}


def arrival_order(pairs: list[Pair]) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic kind, key, value) of every record, in the order a live system would produce them."""
    events = [(p.time, "inferences", p.event_id, inference_doc(p)) for p in pairs]
    events += [(p.label_time, "labels", p.event_id, label_doc(p)) for p in pairs]
    events.sort(key=lambda e: e[0])
    return [(kind, key, value) for _, kind, key, value in events]


def expected_windows(pairs: list[Pair], window: float, resolution: float = 1e-4) -> dict[str, dict[str, float]]:
    """scikit-learn's metrics per tumbling window (keyed by ISO start)."""
    groups: dict[float, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(math.floor(p.time / window) * window, []).append(p)
    out = {}
    for start, group in sorted(groups.items()):
        y = [p.y_true for p in group]
        pred = [p.y_pred for p in group]
        scores = [round(p.score / resolution) * resolution for p in group]
        out[format_time(start)] = {
            "sample_count": len(group),
            "recall": skm.recall_score(y, pred, zero_division=0),
            "precision": skm.precision_score(y, pred, zero_division=0),
            "accuracy": skm.accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred, zero_division=0),
            "auc": skm.roc_auc_score(y, scores),
        }
    return out
