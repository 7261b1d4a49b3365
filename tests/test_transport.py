"""The consumer's `wait_first` fast path behaves as mode's own `wait_first` in every case."""

from __future__ import annotations

import asyncio
import inspect
import warnings

import pytest
from mode import Service

from stream.worker.transport import InlineFirstStep


class Stock(Service):
    """mode's `wait_first`, as faust uses it: the oracle."""


class Inline(InlineFirstStep, Stock):
    """The same service with the first step run inline."""


SERVICES = pytest.mark.parametrize("kind", [Stock, Inline], ids=["mode", "inline"])


def run(kind: type[Service], scenario) -> object:
    async def main() -> object:
        service = kind()
        await service.start()
        try:
            return await scenario(service)
        finally:
            await service.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a coroutine left "never awaited" fails the test
        return asyncio.run(main())


@SERVICES
def test_a_callback_with_room_is_delivered_and_the_flow_wait_is_closed(kind) -> None:
    delivered = []
    flow = asyncio.Event

    async def callback(n: int) -> int:
        delivered.append(n)
        return n * 2

    async def scenario(service: Service) -> object:
        suspend = flow()
        other = suspend.wait()
        results = await service.wait_first(callback(21), other)
        await asyncio.sleep(0)  # let mode's cancelled waiters finish
        return results, inspect.getcoroutinestate(other)

    (results, other_state) = run(kind, scenario)
    assert delivered == [21]
    assert results.results == [42] and not results.stopped
    assert other_state == inspect.CORO_CLOSED


@SERVICES
def test_a_callback_that_must_wait_finishes_once_it_can(kind) -> None:
    steps = []

    async def callback(room: asyncio.Event) -> str:
        steps.append("before")
        await room.wait()
        steps.append("after")
        await asyncio.sleep(0)
        return "put"

    async def scenario(service: Service) -> object:
        room, suspend = asyncio.Event(), asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, room.set)
        return await service.wait_first(callback(room), suspend.wait())

    results = run(kind, scenario)
    assert steps == ["before", "after"]
    assert results.results == ["put"] and not results.stopped


@SERVICES
def test_a_rebalance_abandons_a_callback_stuck_on_a_full_stream(kind) -> None:
    seen = []

    async def callback(room: asyncio.Event) -> None:
        try:
            await room.wait()
            seen.append("delivered")
        except asyncio.CancelledError:
            seen.append("abandoned")
            raise

    async def scenario(service: Service) -> object:
        room, suspend = asyncio.Event(), asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, suspend.set)
        results = await service.wait_first(callback(room), suspend.wait())
        await asyncio.sleep(0.01)  # the cancelled callback runs its handler
        return results

    results = run(kind, scenario)
    assert seen == ["abandoned"]
    assert results.results == [True] and not results.stopped


class Poison(Exception):
    pass


@SERVICES
@pytest.mark.parametrize("waits_first", [False, True], ids=["at-once", "after-a-wait"])
def test_a_callbacks_error_reaches_the_caller(kind, waits_first) -> None:
    async def callback() -> None:
        if waits_first:
            await asyncio.sleep(0.01)
        raise Poison("bad message")

    async def scenario(service: Service) -> object:
        return await service.wait_first(callback(), asyncio.Event().wait())

    with pytest.raises(Poison):
        run(kind, scenario)


@SERVICES
def test_a_stopped_service_delivers_nothing_new(kind) -> None:
    delivered = []

    async def callback() -> None:
        await asyncio.sleep(0.01)
        delivered.append(1)

    async def scenario(service: Service) -> object:
        service._stopped.set()
        return await service.wait_first(callback(), asyncio.Event().wait())

    results = run(kind, scenario)
    assert results.stopped and results.results == []
