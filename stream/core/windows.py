"""Event-time tumbling windows and the watermark that closes them."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from stream.core.records import SEP, Joined


def model_key(model: str, version: str) -> str:
    """One string naming a model version (an empty key stands for 'no model known')."""
    return f"{model}{SEP}{version}"


def split_model_key(key: str) -> tuple[str, str]:
    """Inverse of `model_key`."""
    model, _, version = key.partition(SEP)
    return model, version


@dataclass(frozen=True, slots=True, order=True)
class WindowKey:
    """A tumbling window of one model version: `[start, start + size)` in event time.

    >>> key = WindowKey.at("churn", "1", 1764000125.0, 60.0)
    >>> key.start, key.end
    (1764000120.0, 1764000180.0)
    >>> WindowKey.decode(key.encode()) == key
    True
    """

    model: str
    version: str
    start: float
    size: float

    @property
    def end(self) -> float:
        """Exclusive end of the window."""
        return self.start + self.size

    @property
    def model_key(self) -> str:
        """The model version the window belongs to (`model_key`)."""
        return model_key(self.model, self.version)

    def encode(self) -> str:
        """A stable string form (used as a storage key)."""
        return f"{self.model}{SEP}{self.version}{SEP}{self.start!r}{SEP}{self.size!r}"

    @classmethod
    def decode(cls, text: str) -> WindowKey:
        """Inverse of `encode`."""
        model, version, start, size = text.split(SEP)
        return cls(model, version, float(start), float(size))

    @classmethod
    def of(cls, sample: Joined, size: float) -> WindowKey:
        """The window that holds a sample, by its inference time (bounds as floats, whatever `size`
        is: `encode` must give one text per window, and `decode` reads floats)."""
        return cls.at(sample.model, sample.model_version, sample.time, size)

    @classmethod
    def at(cls, model: str, version: str, time: float, size: float) -> WindowKey:
        """The window of a model version that holds event time `time`."""
        return _window(model, version, float(math.floor(time / size) * size), float(size))


# Each record of a batch looks its window up in dicts: one object per window makes those lookups
# identity checks, not field-by-field comparisons (a fifth of the cost of counting a pair).
@functools.lru_cache(maxsize=4096)
def _window(model: str, version: str, start: float, size: float) -> WindowKey:
    return WindowKey(model, version, start, size)


def stream_time(watermarks: Mapping[str, float], partitions: int, floor: float) -> float:
    """The stream's event time: the slowest input partition's, or the idle floor if later.

    Watermarks are keyed `i<p>` (inference partitions, by inference time) and `l<p>`
    (label partitions, by label time: a label's own `label_time`, else its record's Kafka
    timestamp). Until every inference partition has shown an event, and, once labels come,
    until every label partition has shown one, the stream time is the floor alone: a
    partition that is merely behind, or not read yet, never sees its windows closed under it.

    >>> stream_time({"i0": 100.0, "i1": 90.0}, 2, 0.0)
    90.0
    >>> stream_time({"i0": 100.0, "i1": 90.0, "l0": 95.0}, 2, 0.0)  # label partition 1 not read yet
    0.0
    >>> stream_time({"i0": 100.0, "i1": 90.0, "l0": 95.0, "l1": 80.0}, 2, 0.0)
    80.0
    """
    sides = ("i", "l") if any(key.startswith("l") for key in watermarks) else ("i",)
    required = [f"{side}{p}" for side in sides for p in range(partitions)]
    if partitions > 0 and all(key in watermarks for key in required):
        return max(min(watermarks.values()), floor)
    return floor


def is_due(window: WindowKey, now: float, grace: float) -> bool:
    """Whether the window is final: event time has passed its end plus the label grace."""
    return window.end + grace <= now
