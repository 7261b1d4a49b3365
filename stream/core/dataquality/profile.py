"""A feature's statistics over the values it saw, and a data set's over its features, in the shape
of SageMaker's data-quality statistics.json. Values come as text (a CSV cell; a JSON value through
`types.as_text`), in order: the sum is sequential and the sketch keeps the order of its first level,
as the service's single-partition runs do."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from river.sketch import NUnique

from stream.core.dataquality.moments import Moments
from stream.core.dataquality.sketch import QuantileSketch
from stream.core.dataquality.types import FRACTIONAL, INTEGRAL, NUMERIC, TypeCounts, as_text, value_type

# Distinct values counted one by one; past this a column is high-cardinality: no categorical
# distribution nor domain (Deequ's profiler histograms stop at 120 distinct values too).
CATEGORY_CAP = 120
DISTINCT_ERROR, DISTINCT_SEED = 0.05, 0  # one seed: sketches of parts merge register by register


def _number(text: str) -> float:
    # Deequ's patterns allow one space after the sign ("- 5"), which float() refuses.
    return float(text.replace(" ", "", 1)) if text[:1] in "+-" else float(text)


class Distinct(NUnique):
    """river's HyperLogLog with a faster hash of the same quality (64 bits of BLAKE2b): the same
    registers in every process, so parts merge register by register."""

    def _hash(self, x: str) -> int:
        return int.from_bytes(
            hashlib.blake2b(x.encode("utf-8", "surrogatepass"), digest_size=8, salt=self._salt).digest()
        )


@dataclass
class FeatureProfile:
    """What one feature's values were: types, numeric moments and sketch, and category counts."""

    name: str
    types: TypeCounts = field(default_factory=TypeCounts)
    total: float = 0.0  # the sequential sum of the numeric values
    moments: Moments = field(default_factory=Moments)
    minimum: float = math.inf
    maximum: float = -math.inf
    sketch: QuantileSketch = field(default_factory=QuantileSketch)
    categories: Counter[str] = field(default_factory=Counter)
    high_cardinality: bool = False
    # registers of the distinct values past the category cap (below it the categories are exact, and
    # a HyperLogLog's registers depend only on the set of values: they are filled when the cap is passed)
    distinct: NUnique = field(default_factory=lambda: Distinct(error_rate=DISTINCT_ERROR, seed=DISTINCT_SEED))
    appeared: int = 0  # rows that had the column at all (missing values included)

    def add(self, text: str | None) -> None:
        """One value, as text (None or "" when missing)."""
        kind = value_type(text)
        if kind is None or text is None:
            self.types.add(None)
            self.appeared += 1
            return
        self._add(text, kind, _number(text) if kind in NUMERIC else 0.0)

    def add_value(self, value: Any) -> None:
        """One JSON value: a number's type is known without reading its text (the same result as
        `add(as_text(value))`, faster)."""
        kind = type(value)
        if kind is float and math.isfinite(value):
            self._add(repr(value), FRACTIONAL, value)
        elif kind is int:
            self._add(str(value), INTEGRAL, float(value))
        else:
            self.add(as_text(value))

    def _add(self, text: str, kind: str, x: float) -> None:
        self.types.add(kind)
        self.appeared += 1
        if kind in NUMERIC:
            self.total += x
            self.moments.add(x)
            if x < self.minimum:
                self.minimum = x
            if x > self.maximum:
                self.maximum = x
            self.sketch.add(x)
        if self.high_cardinality:
            self.distinct.update(text)
            return
        self.categories[text] += 1
        if len(self.categories) > CATEGORY_CAP:
            self.high_cardinality = True
            for seen in self.categories:
                self.distinct.update(seen)
            self.categories.clear()

    def registers(self) -> list[int]:
        """The distinct-count registers of every value seen (the categories' too, below the cap)."""
        if self.high_cardinality or not self.categories:
            return list(self.distinct.buckets)
        counter = Distinct(error_rate=DISTINCT_ERROR, seed=DISTINCT_SEED)
        counter.buckets = list(self.distinct.buckets)
        for seen in self.categories:
            counter.update(seen)
        return counter.buckets

    def state(self) -> list[Any]:
        """Everything the profile holds, as JSON-able values (floats round-trip exactly); `load` reads it."""
        sketch = self.sketch
        return [
            self.name,
            [self.types.nulls, self.types.fractional, self.types.integral, self.types.boolean, self.types.string],
            self.total,
            [self.moments.n, self.moments.avg, self.moments.m2],
            self.minimum,
            self.maximum,
            [sketch.k, sketch.c, sketch.levels, sketch.compactions, sketch.offsets],
            None if self.high_cardinality else list(self.categories.items()),
            bytes(self.distinct.buckets).hex(),
            self.appeared,
        ]

    @classmethod
    def load(cls, state: list[Any]) -> FeatureProfile:
        """A profile from its `state`."""
        name, types, total, moments, low, high, sketch, categories, registers, appeared = state
        profile = cls(
            name,
            TypeCounts(*types),
            total,
            Moments(*moments),
            low,
            high,
            QuantileSketch(*sketch),
            Counter(dict(categories or ())),
            categories is None,
            appeared=appeared,
        )
        profile.distinct.buckets = list(bytes.fromhex(registers))
        return profile

    def merge(self, other: FeatureProfile) -> None:
        """Another part of the same feature (a partition's, a batch's): counts add, moments and
        sketches merge as Deequ's states do."""
        self.types.merge(other.types)
        self.appeared += other.appeared
        self.total += other.total
        self.moments.merge(other.moments)
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.sketch.merge(other.sketch)
        self.distinct.buckets = [max(a, b) for a, b in zip(self.registers(), other.registers())]
        self.high_cardinality = self.high_cardinality or other.high_cardinality
        if self.high_cardinality:
            self.categories.clear()
        else:
            self.categories.update(other.categories)
            if len(self.categories) > CATEGORY_CAP:
                self.high_cardinality = True
                self.categories.clear()

    @property
    def inferred_type(self) -> str:
        """The column's type (types.TypeCounts.column_type)."""
        return self.types.column_type()

    @property
    def present(self) -> int:
        """Values that were not missing."""
        return self.types.total - self.types.nulls

    def completeness(self) -> float:
        """The share of values present (1.0 for a feature no row had)."""
        return self.present / self.types.total if self.types.total else 1.0

    def doc(self) -> dict[str, Any]:
        """The feature's entry of statistics.json."""
        common = {"num_present": self.present, "num_missing": self.types.nulls}
        kind = self.inferred_type
        out: dict[str, Any] = {"name": self.name, "inferred_type": kind}
        if kind in NUMERIC:
            out["numerical_statistics"] = {
                "common": common,
                "mean": self.total / self.present,
                "sum": self.total,
                "std_dev": self.moments.std_dev,
                "min": self.minimum,
                "max": self.maximum,
                "distribution": {
                    "kll": {"buckets": self.sketch.buckets(self.minimum, self.maximum), "sketch": self.sketch.doc()}
                },
            }
            return out
        strings: dict[str, Any] = {"common": common, "distinct_count": float(self.distinct_count())}
        if not self.high_cardinality and self.categories:
            strings["distribution"] = {"categorical": {"buckets": self.category_buckets()}}
        out["string_statistics"] = strings
        return out

    def distinct_count(self) -> int:
        """Distinct values: exact up to the category cap, else a HyperLogLog estimate (5 % error,
        as the service's)."""
        return len(self.categories) if not self.high_cardinality else max(CATEGORY_CAP + 1, int(self.distinct.get()))

    def category_buckets(self) -> list[dict[str, Any]]:
        """Each value with its count, the most frequent first (ties by value, for a stable order)."""
        return [{"value": v, "count": n} for v, n in sorted(self.categories.items(), key=lambda vn: (-vn[1], vn[0]))]


@dataclass
class DataProfile:
    """A data set's (or a window's) features, in column order, and its row count."""

    names: list[str]
    features: dict[str, FeatureProfile] = field(default_factory=dict)
    rows: int = 0
    extra: dict[str, FeatureProfile] = field(default_factory=dict)  # columns beyond the names
    unreadable: int = 0  # rows whose input could not be read (a capture's undecodable payload)

    def __post_init__(self) -> None:
        for name in self.names:
            self.features.setdefault(name, FeatureProfile(name))

    def add_row(self, values: list[str | None]) -> None:
        """A row of values by position: the first len(names) are the named features, any beyond
        are extra columns (`_c<i>`, as Spark names them)."""
        self.rows += 1
        for i, value in enumerate(values):
            if i < len(self.names):
                self.features[self.names[i]].add(value)
            else:
                name = f"_c{i}"
                self.extra.setdefault(name, FeatureProfile(name)).add(value)
        for name in self.names[len(values) :]:
            self.features[name].types.add(None)  # the row was short: missing, and the column absent

    def add_record(self, values: dict[str, Any]) -> None:
        """A row of values by name (a JSON record): names not seen before become features."""
        self.rows += 1
        for name in values:
            if name not in self.features:
                self.names.append(name)
                profile = self.features[name] = FeatureProfile(name)
                profile.types.nulls = self.rows - 1  # missing from the rows before
        for name in self.names:
            if name in values:
                self.features[name].add_value(values[name])
            else:
                self.features[name].types.add(None)

    def add_unreadable(self) -> None:
        """A row whose input could not be read at all (counted apart: its features are not missing)."""
        self.unreadable += 1

    def state(self) -> dict[str, Any]:
        """Everything the profile holds, as JSON-able values; `load` reads it back."""
        return {
            "rows": self.rows,
            "unreadable": self.unreadable,
            "features": [self.features[name].state() for name in self.names],
            "extra": [profile.state() for profile in self.extra.values()],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> DataProfile:
        """A profile from its `state`."""
        features = [FeatureProfile.load(f) for f in state["features"]]
        extra = [FeatureProfile.load(f) for f in state["extra"]]
        return cls(
            [f.name for f in features],
            {f.name: f for f in features},
            state["rows"],
            {f.name: f for f in extra},
            state["unreadable"],
        )

    def reordered(self, names: list[str]) -> DataProfile:
        """The same profile with these features first, in this order (the rest after, as seen)."""
        order = [n for n in names if n in self.features] + [n for n in self.names if n not in names]
        return DataProfile(order, {n: self.features[n] for n in order}, self.rows, self.extra, self.unreadable)

    def merge(self, other: DataProfile) -> None:
        """Another part of the same data, after this one (features matched by name; a feature one
        part never saw was missing from each of its rows, as `add_record` counts it)."""
        before = self.rows
        for name in other.names:
            if name not in self.features:  # taken over as it is (merging into nothing may move a last digit)
                self.names.append(name)
                self.features[name] = other.features[name]
                self.features[name].types.nulls += before
            else:
                self.features[name].merge(other.features[name])
        for name in self.names:
            if name not in other.features:
                self.features[name].types.nulls += other.rows
        for name, extra in other.extra.items():
            if name in self.extra:
                self.extra[name].merge(extra)
            else:
                self.extra[name] = extra
        self.rows += other.rows
        self.unreadable += other.unreadable

    def statistics(self) -> dict[str, Any]:
        """statistics.json."""
        return {
            "version": 0.0,
            "dataset": {"item_count": self.rows},
            "features": [self.features[name].doc() for name in self.names],
        }


def column_names(count: int) -> list[str]:
    """Spark's names of header-less columns: _c0, _c1, ..."""
    return [f"_c{i}" for i in range(count)]
