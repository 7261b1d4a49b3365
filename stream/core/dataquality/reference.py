"""A model's data-quality reference: its baseline's constraints.json and statistics.json, and the
column names positional inputs are read by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QualityBaseline:
    """A model's data-quality baseline: constraints.json, statistics.json (None: no drift check),
    the feature names in column order, and the rows under which a window's drift is not judged."""

    constraints: Mapping[str, Any]
    statistics: Mapping[str, Any] | None = None
    names: tuple[str, ...] = ()
    min_rows: int = 0

    @classmethod
    def of(
        cls, constraints: Mapping[str, Any], statistics: Mapping[str, Any] | None = None, min_rows: int = 0
    ) -> QualityBaseline:
        """The baseline of these files; the names come from the statistics, else the constraints."""
        source = statistics if statistics is not None else constraints
        names = tuple(str(f["name"]) for f in source.get("features", []) if isinstance(f, Mapping) and "name" in f)
        return cls(constraints, statistics, names, min_rows)

    def named(self, values: list[Any]) -> dict[str, Any]:
        """A positional row by name: the baseline's names, then `_c<i>` beyond them (Spark's)."""
        names = self.names
        return {(names[i] if i < len(names) else f"_c{i}"): v for i, v in enumerate(values)}

    def feature(self, name: str) -> dict[str, Any]:
        """The baseline statistics of one feature (empty when it has none)."""
        found = (f for f in (self.statistics or {}).get("features", []) if f.get("name") == name)
        return dict(next(found, {}))
