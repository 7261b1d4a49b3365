"""Event-time parsing and formatting: ISO-8601 or epoch seconds in, epoch floats inside, ISO-8601 UTC out."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def _iso_seconds(text: str) -> float:
    """Epoch seconds of ISO-8601 text; without an offset it is UTC. Raises ValueError.

    >>> _iso_seconds("2025-11-24T16:00:01.230") == _iso_seconds("2025-11-24T16:00:01.230Z") == 1764000001.23
    True
    """
    parsed = datetime.fromisoformat(text)
    try:
        if parsed.tzinfo is not None:
            return parsed.timestamp()
        # what `replace(tzinfo=UTC).timestamp()` computes (microseconds over 10**6, correctly
        # rounded), in a third of its time (many producers send their times without an offset)
        return (parsed - _NAIVE_EPOCH) / _SECOND
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


def _resolution(seconds: float) -> int:
    """Characters of `YYYY-MM-DD HH:MM:SS.mmm` a time needs: to the minute, second or millisecond."""
    if seconds % 60 == 0:
        return 16
    return 19 if seconds % 1 == 0 else 23


def window_times(start: float, end: float) -> tuple[str, str]:
    """A window's start and end as `2026-12-07 01:24:10`, both to the window's own resolution (a
    10-second window's bounds show their seconds, an hour's stop at the minute).

    >>> window_times(60.0, 70.0)
    ('1970-01-01 00:01:00', '1970-01-01 00:01:10')
    >>> window_times(0.0, 3600.0)
    ('1970-01-01 00:00', '1970-01-01 01:00')
    """
    width = max(_resolution(start), _resolution(end))
    return tuple(  # type: ignore[return-value]
        datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:width] for t in (start, end)
    )


def window_span(start: float, end: float) -> str:
    """A window as `2026-12-07 01:24:10 .. 01:24:20` (the end's date only when it differs).

    >>> window_span(86400 - 3600, 86400.0)
    '1970-01-01 23:00 .. 1970-01-02 00:00'
    >>> window_span(0.5, 1.0)
    '1970-01-01 00:00:00.500 .. 00:00:01.000'
    """
    first, last = window_times(start, end)
    return f"{first} .. {last[11:] if last[:10] == first[:10] else last}"
