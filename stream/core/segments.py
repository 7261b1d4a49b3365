"""Segments: metrics split by the values of chosen inference fields (`features.country`).

A segment key is a JMESPath into the inference record. Its value, read when the inference
arrives, is kept with the waiting inference (nothing else of the features is stored) and, once
joined, the sample counts in its window twice: in the window's own counters and in those of its
segment (`key`, `value`). A value that is missing or null is `__missing__`; one that is not a
scalar, or not plain text of at most MAX_VALUE_CHARS characters, is `__other__`.

Cardinality is bounded twice: a window part (one input partition's share of a window) admits at
most `cap` values per key, the first it sees, and counts the rest under `__other__`, so its state
never grows past `cap + 1` segments per key whatever the traffic; when the window closes, the
merged parts keep the `cap` values with the most samples (ties: the smaller value) and fold the
others into `__other__`. Below the cap every value is exact; above it, which values were folded
can depend on arrival order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from stream.core.aggregate import WindowAggregate
from stream.core.per_model import parse_per_model
from stream.errors import ConfigError

OTHER = "__other__"
MISSING = "__missing__"
MAX_VALUE_CHARS = 64
PAIR_SEP = "\x1e"  # between segments in a stored entry (values are plain text: no control characters)
KEY_SEP = "\x1d"  # between a segment's key and value

Segments = tuple[tuple[str, str], ...]  # (key, value) pairs, in the order of the setting's keys


@functools.lru_cache(maxsize=256)
def _compiled(path: str) -> Any:
    try:
        return jmespath.compile(path)
    except JMESPathError as exc:
        raise ConfigError(f"segment key {path!r} is not a JMESPath expression: {exc}") from None


def parse_segment_keys(text: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """`TRUTHSTREAM_SEGMENTS`: keys for every model (`features.country|features.device`) or per model
    (`churn=features.country|features.device;fraud=features.region`), see `per_model`. Returns
    (default, per model)."""
    default, per_model = parse_per_model(text, "TRUTHSTREAM_SEGMENTS")
    for key in (*default, *(k for keys in per_model.values() for k in keys)):
        _check_key(key)
    return default, per_model


def _check_key(key: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in key) or len(key) > 200:
        raise ConfigError(f"segment key {key!r}: at most 200 characters, no control characters")
    _compiled(key)


def segment_values(doc: Mapping[str, Any], keys: tuple[str, ...]) -> Segments:
    """The inference record's value of each segment key."""
    return tuple((key, segment_value(_compiled(key).search(doc))) for key in keys)


def segment_value(found: Any) -> str:
    """The segment a field's value puts a sample in (see the module's doc)."""
    if found is None:
        return MISSING
    if isinstance(found, bool):
        text = "true" if found else "false"
    elif isinstance(found, (int, float, str)):
        text = str(found)
    else:
        return OTHER
    if not text or len(text) > MAX_VALUE_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return OTHER
    return text


def encode_segments(segments: Segments) -> str:
    """Segments as text for a stored entry."""
    return PAIR_SEP.join(f"{k}{KEY_SEP}{v}" for k, v in segments)


def decode_segments(text: str) -> Segments:
    """Inverse of `encode_segments`."""
    if not text:
        return ()
    return tuple(tuple(pair.split(KEY_SEP, 1)) for pair in text.split(PAIR_SEP))  # type: ignore[misc]


def admit(admitted: set[str], value: str, cap: int) -> str:
    """The segment a window part counts `value` under, given the values it admitted so far (updated)."""
    if value in admitted:
        return value
    if len(admitted) < cap:
        admitted.add(value)
        return value
    return OTHER


def capped(segments: Mapping[tuple[str, str], WindowAggregate], cap: int) -> dict[tuple[str, str], WindowAggregate]:
    """A closed window's segments with at most `cap` values per key besides `__other__`: the values
    with the most samples (ties: the smaller value) stay, the rest merge into `__other__`."""
    by_key: dict[str, list[tuple[str, WindowAggregate]]] = {}
    for (key, value), aggregate in segments.items():
        by_key.setdefault(key, []).append((value, aggregate))
    out: dict[tuple[str, str], WindowAggregate] = {}
    for key, values in by_key.items():
        ranked = sorted((v for v in values if v[0] != OTHER), key=lambda v: (-v[1].sample_count, v[0]))
        folded = [aggregate for value, aggregate in values if value == OTHER] + [
            aggregate for _, aggregate in ranked[cap:]
        ]
        for value, aggregate in ranked[:cap]:
            out[key, value] = aggregate
        if folded:
            other = WindowAggregate(folded[0].resolution)
            for aggregate in folded:
                other.merge(aggregate)
            out[key, OTHER] = other
    return out
