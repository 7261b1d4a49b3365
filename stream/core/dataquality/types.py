"""The type of each value and of a column, as Deequ decides them (StatefulDataType and
DataTypeHistogram.determineType): every value is read as text and matched against patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass

FRACTIONAL, INTEGRAL, BOOLEAN, STRING, UNKNOWN = "Fractional", "Integral", "Boolean", "String", "Unknown"
NUMERIC = (FRACTIONAL, INTEGRAL)

# Java's \d is ASCII unless asked otherwise; so is ours.
_FRACTIONAL = re.compile(r"^(-|\+)? ?\d+((\.\d+)|((?:\.\d+)?[Ee][-+]?\d+))$", re.ASCII)
_INTEGRAL = re.compile(r"^(-|\+)? ?\d+$", re.ASCII)
_BOOLEAN = re.compile(r"^(true|false)$")


def value_type(text: str | None) -> str | None:
    """Fractional, Integral, Boolean or String; None for a missing value (null or empty).

    >>> [value_type(v) for v in ("296.0", "1", "-4.98", "1e5", "true", "abc", "", None)]
    ['Fractional', 'Integral', 'Fractional', 'Fractional', 'Boolean', 'String', None, None]
    """
    if text is None or text == "":
        return None
    if _FRACTIONAL.match(text):
        return FRACTIONAL
    if _INTEGRAL.match(text):
        return INTEGRAL
    if _BOOLEAN.match(text):
        return BOOLEAN
    return STRING


def as_text(value: object) -> str | None:
    """A JSON value as the text the analyzer would read for it (a CSV cell is text already)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return None  # NaN: how pandas and Parquet say missing
        return repr(value) if abs(value) != float("inf") else str(value)
    return str(value)


@dataclass
class TypeCounts:
    """How many values of each type a column held (mergeable: counts add)."""

    nulls: int = 0
    fractional: int = 0
    integral: int = 0
    boolean: int = 0
    string: int = 0

    def add(self, kind: str | None) -> None:
        """Count one value of type `kind` (None: missing)."""
        if kind is None:
            self.nulls += 1
        elif kind == FRACTIONAL:
            self.fractional += 1
        elif kind == INTEGRAL:
            self.integral += 1
        elif kind == BOOLEAN:
            self.boolean += 1
        else:
            self.string += 1

    def merge(self, other: TypeCounts) -> None:
        """Add another part's counts."""
        self.nulls += other.nulls
        self.fractional += other.fractional
        self.integral += other.integral
        self.boolean += other.boolean
        self.string += other.string

    @property
    def total(self) -> int:
        """Every value, missing ones included."""
        return self.nulls + self.fractional + self.integral + self.boolean + self.string

    def of(self, kind: str) -> int:
        """The count of one type (Unknown: the missing values)."""
        return {
            FRACTIONAL: self.fractional,
            INTEGRAL: self.integral,
            BOOLEAN: self.boolean,
            STRING: self.string,
            UNKNOWN: self.nulls,
        }[kind]

    def column_type(self) -> str:
        """The column's type: any text makes it String, as do booleans mixed with numbers; any
        fractional value makes a numeric column Fractional; only missing values, Unknown."""
        if self.total == self.nulls:
            return UNKNOWN
        if self.string or (self.boolean and (self.integral or self.fractional)):
            return STRING
        if self.boolean:
            return BOOLEAN
        return FRACTIONAL if self.fractional else INTEGRAL
