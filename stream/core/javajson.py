"""JSON as SageMaker's analyzer writes it: Jackson's default pretty printer (`"key" : value`, two
spaces an object level, arrays on one line, `[ ]` and `{ }` when empty, no final newline) and
numbers as Java's Double.toString prints them (`2048.0`, `1.0E-4`, `1.8463239666666668E7`), so that
files compare byte for byte with the service's."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


def java_double(x: float) -> str:
    """A double as Java prints it: the shortest digits that read back the same, in plain notation
    from 10^-3 to 10^7, else as d.dddE±n.

    >>> [java_double(v) for v in (2048.0, 0.1, 1e-4, 18463239.666666668, -0.0, 1e7, 0.001)]
    ['2048.0', '0.1', '1.0E-4', '1.8463239666666668E7', '-0.0', '1.0E7', '0.001']
    """
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        text = repr(x)
        return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(x)).as_tuple()
    shown = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + int(exponent) - 1
    return f"{'-' if sign else ''}{shown[0]}.{shown[1:] or '0'}E{power}"


def dumps(value: Any, level: int = 0) -> str:
    """`value` in Jackson's pretty-printed form (floats as Java doubles, ints as longs)."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        pad = "  " * (level + 1)
        body = ",\n".join(f"{pad}{json.dumps(k, ensure_ascii=False)} : {dumps(v, level + 1)}" for k, v in value.items())
        return "{\n" + body + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(dumps(v, level) for v in value) + " ]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    return json.dumps(value, ensure_ascii=False)
