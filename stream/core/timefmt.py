"""Event-time parsing and formatting: ISO-8601 or epoch seconds in, epoch floats inside, ISO-8601 UTC out."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def _iso_seconds(text: str) -> float:
    """Epoch seconds of ISO-8601 text; without an offset it is UTC. Raises ValueError."""
    parsed = datetime.fromisoformat(text)
    try:
        return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()
    except OverflowError:
        raise ValueError("time is out of range") from None


def parse_time(value: object) -> float:
    """Return epoch seconds for an ISO-8601 string or an epoch number; raise ValueError otherwise."""
    if type(value) is str and len(value) > 10 and value[4] == "-":
        # The common case, extended ISO-8601, parsed without the float attempt's exception
        # (this runs for every record: it was a tenth of the worker's own time).
        try:
            return _iso_seconds(value)
        except ValueError:
            pass
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError("time is out of range") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            seconds = _iso_seconds(text)
    else:
        raise ValueError(f"expected ISO-8601 text or epoch seconds, got {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError("time is not finite")
    return seconds


def format_time(seconds: float) -> str:
    """Format epoch seconds as ISO-8601 UTC with a trailing Z (milliseconds kept when present)."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
