"""Flag values shared by several commands, parsed one way with one kind of error."""

from __future__ import annotations

from stream.core.timefmt import parse_time
from stream.errors import ConfigError


def time_option(value: str | None, flag: str) -> float | None:
    """Epoch seconds of a time flag (ISO-8601 or epoch seconds), None when it was not given."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} {value!r}: {exc}; use ISO-8601 (2026-11-24T10:00:00Z) or epoch seconds") from None
