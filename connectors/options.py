"""Flag values shared by several commands, parsed one way with one kind of error."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from stream.core.timefmt import parse_time
from stream.errors import ConfigError

RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def time_option(value: str | None, flag: str, now: float | None = None) -> float | None:
    """Epoch seconds of a time flag (ISO-8601, epoch seconds, or a span before now such as -24h,
    -7d, -30m), None when it was not given."""
    if value is None:
        return None
    relative = RELATIVE.fullmatch(value.strip())
    if relative:
        return (time.time() if now is None else now) - float(relative.group(1)) * UNIT_SECONDS[relative.group(2)]
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ConfigError(
            f"{flag} {value!r}: {exc}; use ISO-8601 (2026-11-24T10:00:00Z), epoch seconds or a span before now (-24h)"
        ) from None


def _number(kind: type[float] | type[int], low: float, inclusive: bool, high: float | None = None) -> Any:
    """An argparse `type=` that reads `kind` and refuses values outside [low, high) (or (low, high))."""
    bounds = (">= " if inclusive else "> ") + f"{low:g}" + (f" and < {high:g}" if high is not None else "")

    def read(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (value >= low if inclusive else value > low) or (high is not None and not value < high):
            raise argparse.ArgumentTypeError(f"must be {bounds}, not {text}")
        return value

    read.__name__ = kind.__name__  # argparse names the type in its own messages
    return read


non_negative_float = _number(float, 0, inclusive=True)
positive_float = _number(float, 0, inclusive=False)
non_negative_int = _number(int, 0, inclusive=True)
positive_int = _number(int, 0, inclusive=False)
probability = _number(float, 0, inclusive=False, high=1)
port_number = _number(int, 1, inclusive=True, high=65536)
port_or_any = _number(int, 0, inclusive=True, high=65536)  # 0: any free port


def add_dashboard_flag(parser: argparse.ArgumentParser, what: str) -> None:
    """`--dashboard [PORT]`: also serve the live page (`truthstream dashboard`); `what` says when."""
    parser.add_argument(
        "--dashboard",
        nargs="?",
        type=port_number,
        const=8050,
        metavar="PORT",
        help=f"serve the live page (truthstream dashboard) on PORT (default 8050) {what}",
    )
