"""Where each input partition is read from: the position Redis holds, not Kafka's commit.

Redis keeps each input partition's applied offset in the same atomic write as the state it
produced (see `stores.redis.transactions`), so the state and its input position are one unit, as
in a Flink or quix-streams checkpoint. On every assignment the worker seeks there. Kafka's
committed offset is only a witness: normally it trails Redis (the worker commits after Redis
wrote); ahead of Redis, or present where Redis holds nothing, it shows that Redis lost writes,
and the records since Redis's position are read again to recompute what was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from stream.errors import StateError

log = logging.getLogger("truthstream.worker")

STOP, RESUME = "stop", "resume"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where to read an input partition from, and a warning to log about it (if any)."""

    offset: int
    warning: str | None = None


def placement(name: str, applied: int | None, committed: int | None, earliest: int, policy: str = STOP) -> Placement:
    """Where to read input partition `name` from, given the last offset Redis applied, the group's
    committed offset (the next to read, None: none) and the earliest offset Kafka still holds.
    Raises StateError where Redis lost state that Kafka no longer holds, unless `policy` is resume.

    >>> placement("inferences[0]", 41, 42, 0)
    Placement(offset=42, warning=None)
    >>> placement("inferences[0]", 41, 50, 0).warning.split(":")[0]
    'Redis is behind Kafka on inferences[0] by 8 records'
    """
    if applied is not None:
        start = applied + 1
        if start < earliest:
            gone = f"records {start}..{earliest - 1} of {name} were deleted by retention before they were applied"
            return _lost(gone, committed, earliest, policy)
        if committed is not None and start < committed:
            return Placement(
                start,
                f"Redis is behind Kafka on {name} by {committed - start} records: it lost writes (a restart "
                f"without persistence, its last second, a failover to a lagging replica); reading them again "
                f"from offset {start} to recompute their windows",
            )
        return Placement(start)
    if committed is None or committed <= 0:
        return Placement(earliest)  # nothing was ever applied from this partition
    if earliest > 0:
        gone = (
            f"Redis holds no position for {name}, though this app committed offset {committed} there: Redis "
            f"lost its state, and records before offset {earliest} were deleted by retention"
        )
        return _lost(gone, committed, earliest, policy)
    return Placement(
        earliest,
        f"Redis holds no position for {name}, though this app committed offset {committed} there: Redis lost "
        f"its state (a restart without persistence, a flush, an eviction); reading {name} again from offset "
        f"{earliest} to recompute its windows (those already published are published again, identical)",
    )


def _lost(what: str, committed: int | None, earliest: int, policy: str) -> Placement:
    """Redis lost state that cannot be recomputed: stop, or resume from Kafka's commit if asked."""
    if policy != RESUME:
        raise StateError(
            f"{what}; the windows they belong to cannot be recomputed exactly. To go on from Kafka's committed "
            "offsets anyway (those windows are incomplete), start once with TRUTHSTREAM_STATE_LOSS=resume; to "
            "start over, use a new TRUTHSTREAM_APP_ID and TRUTHSTREAM_REDIS_PREFIX"
        )
    offset = max(committed if committed is not None else earliest, earliest)
    return Placement(offset, f"{what}; resuming at offset {offset} as TRUTHSTREAM_STATE_LOSS=resume asks")


Key = tuple[str, int]


async def place(
    inputs: list[Key],
    committed: Mapping[Key, int | None],
    applied: Callable[[list[Key]], Awaitable[Mapping[Key, int | None]]],
    earliest: Callable[[list[Key]], Awaitable[Mapping[Key, int]]],
    policy: str = STOP,
) -> dict[Key, int]:
    """The offset to read each input partition from (see `placement`), its warnings logged."""
    if not inputs:
        return {}
    held, first = await applied(inputs), await earliest(inputs)
    out = {}
    for key in inputs:
        done = committed.get(key)
        where = placement(
            f"{key[0]}[{key[1]}]", held.get(key), done if done is not None and done >= 0 else None, first[key], policy
        )
        if where.warning:
            log.warning("%s", where.warning)
        out[key] = where.offset
    return out
