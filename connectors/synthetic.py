"""A synthetic classification workload with a concept drift, from river's generators.

A Hoeffding tree learns the first concept (Agrawal function 0) and is then frozen;
halfway through the stream the concept drifts (to Agrawal function 4) and the
frozen model's quality falls, which is exactly what truthstream should catch.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from river import tree
from river.datasets import synth

from stream.core.timefmt import format_time

TRAINING_SAMPLES = 5000
LABEL_NOISE = 0.06  # flipped labels, so the model is good but not perfect before the drift


@dataclass(frozen=True)
class Event:
    """One record to produce: topic kind ("inferences" or "labels"), key, value and when to send it."""

    kind: str
    key: str
    value: dict[str, Any]
    at: float  # event time of the record


def drifting_workload(
    events: int, start: float, step: float, max_label_delay: float, seed: int, model: str = "churn"
) -> Iterator[Event]:
    """Inference and label records in event-time order; the concept drifts at the middle event."""
    rng = random.Random(seed)
    learner = tree.HoeffdingTreeClassifier(grace_period=50)
    for x, y in itertools.islice(synth.Agrawal(classification_function=0, seed=seed), TRAINING_SAMPLES):
        learner.learn_one(x, y)
    stream = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=0, seed=seed + 1),
        drift_stream=synth.Agrawal(classification_function=4, seed=seed + 2),
        position=events // 2,
        width=max(1, events // 100),
        seed=seed + 3,
    )
    pending: list[Event] = []
    for i, (x, y) in enumerate(itertools.islice(stream, events)):
        t = start + i * step
        score = float(learner.predict_proba_one(x).get(1, 0.0))
        event_id = f"{model}-{seed}-{i}"
        if rng.random() < LABEL_NOISE:
            y = 1 - y
        label_time = t + rng.uniform(0, max_label_delay)
        pending.append(
            Event(
                "labels",
                event_id,
                {"event_id": event_id, "label": int(y), "label_time": format_time(label_time)},
                label_time,
            )
        )
        pending.sort(key=lambda e: e.at)
        while pending and pending[0].at <= t:
            yield pending.pop(0)
        yield Event(
            "inferences",
            event_id,
            {
                "event_id": event_id,
                "model": model,
                "model_version": "1",
                "inference_time": format_time(t),
                "prediction": int(score >= 0.5),
                "probability": round(score, 6),
                "features": {k: round(v, 3) if isinstance(v, float) else v for k, v in x.items()},
            },
            t,
        )
    yield from pending
