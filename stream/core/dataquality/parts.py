"""A window's data quality as the stores keep it: the feature rows of its inferences, per input
partition in offset order, folded `FOLD_ROWS` at a time into a profile, and merged in partition order.

A row is the JSON text of an inference's features (by name), preceded by its segments and a
newline when the model has segment keys. A part is (summary, rows): `summary` the profile of its
first k * FOLD_ROWS rows, `rows` the rest. Folding continues the summary row by row, so a part is
the sequential profile of its rows whatever the batches were. Parts merge in ascending partition:
one without a summary row by row, one with a summary as Deequ merges states. A window of up to
2,050 rows has no summary anywhere (FOLD_ROWS is 2,051), so its statistics are those `baseline`
gives for its rows in (partition, offset) order, to the last digit.

Each segment value (of each segment key) has a profile of its own; a part admits at most `cap`
values of a key, in the order they come (later ones count as `__other__`), and a window keeps the
`cap` with most rows (`capped`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream.core.dataquality.capture import capture_rows
from stream.core.dataquality.profile import DataProfile
from stream.core.dataquality.reference import QualityBaseline
from stream.core.segments import OTHER, decode_segments
from stream.errors import RecordError

FOLD_ROWS = 2051  # rows folded at once: more than a sketch's first level, so small windows stay exact
UNREADABLE = "null"  # the row of an instance whose input could not be read
SEGMENTED = "\n"  # between a row's segments and its features (neither holds a newline)
Segment = tuple[str, str]


def feature_row(doc: Mapping[str, Any], baseline: QualityBaseline) -> str:
    """The row of a plain inference record: its `features` object (by name) or array (by position),
    as JSON text; a record without features has every feature missing."""
    features = doc.get("features")
    if isinstance(features, list):
        features = baseline.named(features)
    elif not isinstance(features, dict):
        features = {}
    return json.dumps(features, separators=(",", ":"), ensure_ascii=False)


def capture_feature_rows(doc: dict[str, Any], baseline: QualityBaseline) -> list[str]:
    """The rows of a SageMaker capture record (output columns first, named by position), one per
    instance; an input that cannot be read gives `UNREADABLE` rows, counted apart."""
    try:
        rows = capture_rows(doc)
    except RecordError:
        return [UNREADABLE]
    return [json.dumps(baseline.named(row), separators=(",", ":"), ensure_ascii=False) for row in rows]


def instance_rows(doc: dict[str, Any], baseline: QualityBaseline, capture: bool, count: int) -> list[list[str]]:
    """The feature rows of each of a record's `count` instances (a capture whose input does not hold
    one row per instance gives them all to the first)."""
    if not capture:
        return [[feature_row(doc, baseline)]]
    rows = capture_feature_rows(doc, baseline)
    if len(rows) == count:
        return [[row] for row in rows]
    return [rows] + [[] for _ in range(count - 1)]


def with_segments(rows: list[str], segments: str) -> list[str]:
    """Rows carrying their inference's encoded segments (see `segments.encode_segments`)."""
    return [segments + SEGMENTED + row for row in rows] if segments else rows


def _add(profile: DataProfile, values: Any) -> None:
    if isinstance(values, dict):
        profile.add_record(values)
    else:
        profile.add_unreadable()


@dataclass
class WindowProfile:
    """A window's (or a part's) profile, whole and per segment value."""

    whole: DataProfile = field(default_factory=lambda: DataProfile([]))
    segments: dict[Segment, DataProfile] = field(default_factory=dict)

    def add_rows(self, rows: Iterable[str], cap: int) -> None:
        """Add rows in order (see the module's docstring for their form)."""
        for row in rows:
            segments, _, body = row.rpartition(SEGMENTED)
            values = json.loads(body)
            _add(self.whole, values)
            for key, value in decode_segments(segments) if segments else ():
                profile = self.segments.get((key, value))
                if profile is None:
                    if sum(1 for k, _ in self.segments if k == key) >= cap:
                        value = OTHER
                    profile = self.segments.setdefault((key, value), DataProfile([]))
                _add(profile, values)

    def merge(self, other: WindowProfile) -> None:
        """Another part of the same window, after this one (segments matched by key and value)."""
        self.whole.merge(other.whole)
        for name, profile in sorted(other.segments.items()):
            if name in self.segments:
                self.segments[name].merge(profile)
            else:
                self.segments[name] = profile

    def capped(self, cap: int) -> dict[Segment, DataProfile]:
        """The segments, at most `cap` values a key: those of most rows (ties by value); the rest
        merged, in value order, into `__other__`."""
        out: dict[Segment, DataProfile] = {}
        for key in sorted({k for k, _ in self.segments}):
            values = sorted(((v, p) for (k, v), p in self.segments.items() if k == key and v != OTHER),
                            key=lambda vp: (-vp[1].rows, vp[0]))  # fmt: skip
            rest = [p for v, p in sorted(values[cap:], key=lambda vp: vp[0])]
            if (key, OTHER) in self.segments:
                rest.insert(0, self.segments[key, OTHER])
            out.update(((key, v), p) for v, p in values[:cap])
            if rest:
                other = rest[0]
                for p in rest[1:]:
                    other.merge(p)
                out[key, OTHER] = other
        return out

    def dump(self) -> str:
        """The profile as JSON text (floats round-trip exactly); `load` reads it."""
        state = {"whole": self.whole.state(), "segments": [[k, v, p.state()] for (k, v), p in self.segments.items()]}
        return json.dumps(state, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> WindowProfile:
        """A profile from its `dump`."""
        state = json.loads(text)
        segments = {(k, v): DataProfile.load(p) for k, v, p in state["segments"]}
        return cls(DataProfile.load(state["whole"]), segments)


@dataclass
class QualityPart:
    """One input partition's part of a window: the profile of its folded rows, and the rows after."""

    summary: str | None = None
    rows: list[str] = field(default_factory=list)

    def folded(self, cap: int) -> QualityPart:
        """The part with every whole FOLD_ROWS of its rows folded into its summary."""
        whole = len(self.rows) - len(self.rows) % FOLD_ROWS
        if not whole:
            return self
        return QualityPart(fold(self.summary, self.rows[:whole], cap), self.rows[whole:])


def fold(summary: str | None, rows: list[str], cap: int) -> str:
    """The summary continued with these rows."""
    profile = WindowProfile.load(summary) if summary else WindowProfile()
    profile.add_rows(rows, cap)
    return profile.dump()


def profile_of(parts: Iterable[QualityPart], cap: int) -> WindowProfile:
    """The window's profile from its parts, in ascending partition order."""
    profile: WindowProfile | None = None
    for part in parts:
        if part.summary:
            loaded = WindowProfile.load(part.summary)
            if profile is None:
                profile = loaded
            else:
                profile.merge(loaded)
        if profile is None:
            profile = WindowProfile()
        profile.add_rows(part.rows, cap)
    return profile if profile is not None else WindowProfile()
