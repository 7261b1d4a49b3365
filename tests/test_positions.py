"""Where the worker reads each input partition from: the positions Redis holds (see `positions`)."""

from __future__ import annotations

import asyncio

import pytest

from stream.errors import StateError
from stream.worker.positions import RESUME, place, placement


def test_a_partition_is_read_from_the_offset_after_the_one_redis_applied() -> None:
    assert placement("i[0]", applied=41, committed=42, earliest=0).offset == 42
    assert placement("i[0]", applied=41, committed=None, earliest=0).offset == 42
    assert placement("i[0]", applied=41, committed=30, earliest=0).warning is None  # Kafka's commit trails


def test_redis_behind_kafkas_commit_is_read_again_from_redis_with_a_warning() -> None:
    where = placement("i[0]", applied=41, committed=50, earliest=0)
    assert where.offset == 42 and "behind Kafka on i[0] by 8 records" in (where.warning or "")


def test_a_partition_never_applied_nor_committed_starts_at_the_earliest_offset_kafka_holds() -> None:
    assert placement("i[0]", applied=None, committed=None, earliest=7) == placement("i[0]", None, -1, 7)
    assert placement("i[0]", applied=None, committed=None, earliest=7).offset == 7


def test_redis_that_lost_everything_is_recomputed_from_the_start_while_kafka_holds_it() -> None:
    where = placement("i[0]", applied=None, committed=500, earliest=0)
    assert where.offset == 0 and "Redis lost its state" in (where.warning or "")


@pytest.mark.parametrize(
    ("applied", "committed", "gone"),
    [(None, 500, "records before offset 100 were deleted"), (41, 500, "records 42..99 of i[0] were deleted")],
)
def test_state_lost_beyond_retention_stops_or_resumes_from_kafka_as_asked(
    applied: int | None, committed: int, gone: str
) -> None:
    with pytest.raises(StateError, match="TRUTHSTREAM_STATE_LOSS=resume") as raised:
        placement("i[0]", applied, committed, earliest=100)
    assert gone in str(raised.value)
    where = placement("i[0]", applied, committed, earliest=100, policy=RESUME)
    assert where.offset == 500 and gone in (where.warning or "")


def test_place_reads_redis_and_kafka_once_for_every_assigned_partition() -> None:
    inputs = [("i", 0), ("l", 0), ("i", 1)]
    calls: list[list[tuple[str, int]]] = []

    async def applied(keys):
        calls.append(keys)
        return {("i", 0): 9, ("l", 0): None, ("i", 1): 3}

    async def earliest(keys):
        calls.append(keys)
        return dict.fromkeys(keys, 0)

    where = asyncio.run(place(inputs, {("i", 0): 10, ("l", 0): None, ("i", 1): 2}, applied, earliest))
    assert where == {("i", 0): 10, ("l", 0): 0, ("i", 1): 4}
    assert calls == [inputs, inputs]
