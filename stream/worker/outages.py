"""How the worker meets failure: wait out an outage of Redis or Kafka, exit on a bug.

Used by the batch path (in faust's process or in the engine's own, see `engine_process`) and by
the publisher alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from redis.exceptions import (
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterUnreachableError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.errors import StateLost
from stream.retry import OUTAGE, Retry

log = logging.getLogger("truthstream.worker")

T = TypeVar("T")

# A Redis Cluster failing over (a master down, its replica not promoted yet) is an outage too.
CLUSTER_OUTAGES = (ClusterDownError, RedisClusterUnreachableError, SlotNotCoveredError, TryAgainError)
OUTAGES = (RedisConnectionError, RedisTimeoutError, ProducerSendError, KafkaError, OSError, *CLUSTER_OUTAGES)
# Redis answers but refuses to write: what to do about each, in the line the worker logs while it waits.
REFUSALS = {
    "OOM": "Redis is full (maxmemory reached): give it more memory, or bound truthstream's waiting state "
    "with TRUTHSTREAM_MAX_PENDING; the worker resumes when Redis accepts writes",
    "READONLY": "Redis is a read-only replica: point TRUTHSTREAM_REDIS_URL at the primary",
    "NOPERM": "the Redis user may not run what truthstream needs (EVAL, and keys under TRUTHSTREAM_REDIS_PREFIX): "
    "grant them in its ACL",
    "NOAUTH": "Redis asks for a password: put it in TRUTHSTREAM_REDIS_URL (or TRUTHSTREAM_REDIS_URL_FILE)",
    "WRONGPASS": "Redis refuses the user or password in TRUTHSTREAM_REDIS_URL",
}
# redis-py raises these for the codes above (it drops the code from the message).
REFUSAL_TYPES = {"OOM": OutOfMemoryError, "READONLY": ReadOnlyError, "NOPERM": NoPermissionError}
BUG_EXIT_CODE = 70  # EX_SOFTWARE
CONFIG_EXIT_CODE = 2  # what every command exits with on a configuration or state it cannot work with
# EX_TEMPFAIL: Redis lost writes; a restart reads the input again from the positions Redis holds.
STATE_LOST_EXIT_CODE = 75
STATE_LOST_ADVICE = (
    "exiting without committing offsets: a restarted worker reads each input partition again from the "
    "position Redis holds and recomputes its windows (see 'Redis persistence' in the docs)"
)


def redis_refusal(exc: ResponseError) -> str | None:
    """What to do about a Redis error that refuses writes (full, read-only, not allowed), or None for
    any other error (a bug). Redis 6 wraps a script's error text, so the code is looked for inside."""
    text = str(exc)
    for code, advice in REFUSALS.items():
        if isinstance(exc, REFUSAL_TYPES.get(code, ())) or f"-{code} " in text or text.startswith(f"{code} "):
            return f"{advice} ({text[:200]})"
    return None


def exit_on_bug(message: str, exc_info: bool = True, code: int = BUG_EXIT_CODE) -> None:
    """Log `message` (with the current exception) and end the process at once, before faust can
    commit the offsets of a batch that was not handled (a restart reads it again: nothing is lost)."""
    log.critical(message, exc_info=exc_info)
    logging.shutdown()
    os._exit(code)


def exit_on_state_lost(exc: StateLost) -> None:
    """End the process because Redis lost writes (one line, no traceback: it is no bug)."""
    exit_on_bug(f"{exc}; {STATE_LOST_ADVICE}", exc_info=False, code=STATE_LOST_EXIT_CODE)


async def retrying(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` until it succeeds while Redis or Kafka are unreachable; stop the process on a bug.

    Faust acknowledges a batch even when the agent raises, so raising would lose it:
    an outage blocks the stream instead, and an unexpected error ends the process
    before the batch's offsets can be committed (restart it; nothing is lost).
    """
    retry = Retry("Redis or Kafka", OUTAGE)
    while True:
        try:
            return await work()
        except OUTAGES as exc:
            await asyncio.sleep(retry.failed(exc))
        except StateLost as exc:
            exit_on_state_lost(exc)
        except ResponseError as exc:
            refusal = redis_refusal(exc)
            if refusal is None:
                exit_on_bug("unexpected error from Redis; exiting without committing offsets")
            await asyncio.sleep(retry.failed(RuntimeError(refusal)))
        except Exception:  # noqa: BLE001 - anything else is a bug: exit without committing
            exit_on_bug("unexpected error; exiting without committing offsets")
