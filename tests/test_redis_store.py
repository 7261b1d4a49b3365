"""The Redis store's concurrency guard, against a real Redis."""

from __future__ import annotations

import asyncio
import time
import threading
import uuid
from functools import partial
from typing import Any

import redis.asyncio as aioredis

from stream.core.catalog import Catalog
from stream.core.state import METRICS, Job, Output
from stream.core.engine import Engine
from stream.core.records import RawMessage
from stream.stores.redis import RedisStore
from stream.settings import Settings
from stream.core.timefmt import format_time
from tests.factories import T0, Topic, inference, label

SETTINGS = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0, label_ttl=600.0)


async def _engine_run(redis_url: str, prefix: str, work: Any, partitions: int = 1) -> Any:
    """Run `work(engine, store)` on a fresh client of the shared Redis state under `prefix`."""
    client = aioredis.from_url(redis_url)
    try:
        store = RedisStore(client, prefix, SETTINGS.label_ttl, partitions)
        return await work(Engine(SETTINGS.core(), Catalog(), store, partitions), store)
    finally:
        await client.aclose()


def _interleaved(store: RedisStore, between: Any, steps: list[dict]) -> None:
    """Make `store`'s next batches run `between()` (in a thread, with its own event loop) after
    their first read and before their write; `steps` collects the offsets each read saw."""
    original = store.transact

    async def transact(jobs: list[Job]) -> Any:
        def interleaved(step: Any, view: Any) -> Any:
            steps.append(dict(view.checkpoints))
            if len(steps) == 1:
                thread = threading.Thread(target=between)
                thread.start()
                thread.join()
            return step(view)

        return await original([job._replace(step=partial(interleaved, job.step)) for job in jobs])

    store.transact = transact  # type: ignore[method-assign]


def test_a_batch_whose_offsets_moved_meanwhile_is_rerun_on_the_new_state(redis_url: str) -> None:
    """Worker A reads its state; before it writes, worker B (a zombie, or the new owner after a
    rebalance) applies part of the same messages. A's write is refused and its batch runs again
    on B's state: every pair is counted once, none twice, none lost."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    inf, lab = Topic("inferences"), Topic("labels")
    inferences = [inf.msg(inference(f"e{i}", T0 + i, i % 2, 0.9 if i % 2 else 0.1)) for i in range(10)]
    labels = [lab.msg(label(f"e{i}", i % 2)) for i in range(10)]
    b_part: list[RawMessage] = inferences + labels[:5]

    def run_b() -> None:
        asyncio.run(_engine_run(redis_url, prefix, lambda engine, store: engine.process(b_part, time.time())))

    steps: list[dict] = []

    async def run_a(engine: Engine, store: RedisStore) -> Any:
        _interleaved(store, run_b, steps)
        await engine.process(inferences + labels, time.time())
        await engine.idle(T0 + 3600)  # close the window
        return await store.pending_outbox()

    outputs = asyncio.run(_engine_run(redis_url, prefix, run_a))
    assert len(steps) == 2, "A's first write must be refused and its batch run again"
    assert steps[0] == {} and steps[1] == {("inferences", 0): 9, ("labels", 0): 4}
    [record] = [o.value for o in outputs if o.kind == METRICS]
    assert record["sample_count"] == 10
    assert record["counts"]["duplicates"] == 0 and record["counts"]["late"] == 0
    assert record["binary_classification_metrics"]["accuracy"]["value"] == 1.0


def test_two_workers_finishing_together_close_the_windows(redis_url: str) -> None:
    """A and B own one partition each and run their last batches at the same time (B's whole
    batch between A's read and A's write). Whichever reads the clock last sees both partitions
    past the window and closes it: nothing waits for more input."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    inf, lab = Topic("inferences", 2), Topic("labels", 2)

    def partition(p: int) -> list[RawMessage]:
        pairs = [(f"p{p}-{i}", T0 + i) for i in range(20)] + [(f"p{p}-end", T0 + 1000)]
        return [inf.msg(inference(e, t, 1, 0.9), p) for e, t in pairs] + [
            lab.msg(label(e, 1, label_time=format_time(t)), p) for e, t in pairs
        ]

    a_batch, b_batch = partition(0), partition(1)

    def run_b() -> None:
        asyncio.run(
            _engine_run(redis_url, prefix, lambda engine, store: engine.process(b_batch, time.time()), partitions=2)
        )

    async def run_a(engine: Engine, store: RedisStore) -> Any:
        _interleaved(store, run_b, [])
        await engine.process(a_batch, time.time())
        return await store.pending_outbox()

    outputs = asyncio.run(_engine_run(redis_url, prefix, run_a, partitions=2))
    closed = [o.value for o in outputs if o.kind == METRICS]
    assert [(r["window"]["start"], r["sample_count"]) for r in closed] == [(format_time(T0), 40)]


def test_two_workers_flushing_the_shared_outbox_lose_nothing(redis_url: str) -> None:
    """Both workers read the same page and publish it; the first confirms it; a record queued
    after that must survive the second's confirmation of the page it read earlier."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[str]:
        clients = [aioredis.from_url(redis_url) for _ in range(2)]
        try:
            one, two = (RedisStore(c, prefix, SETTINGS.label_ttl) for c in clients)
            await one.enqueue([Output("metrics", k, {"n": k}) for k in ("a", "b", "c")])
            assert [o.key for o in await one.pending_outbox()] == ["a", "b", "c"]
            assert [o.key for o in await two.pending_outbox()] == ["a", "b", "c"]
            await two.confirm_outbox(3)
            await two.enqueue([Output("metrics", "d", {"n": "d"})])
            await one.confirm_outbox(3)  # its page is gone from the head: nothing is dropped
            return [o.key for o in await one.pending_outbox()]
        finally:
            for c in clients:
                await c.aclose()

    assert asyncio.run(scenario()) == ["d"]


def test_the_lua_rolling_arithmetic_matches_the_contracts(redis_url: str) -> None:
    """The apply script's copy of `rolling_due` (Lua) says due exactly when the Python one does,
    and keeps the last `rolling_size` samples."""
    from stream.core.records import Joined
    from stream.core.state import StepResult, rolling_due

    async def run() -> None:
        client = aioredis.from_url(redis_url)
        try:
            for every in (1, 3, 7):
                store = RedisStore(client, f"t-{uuid.uuid4().hex[:8]}", 600.0, rolling_size=5, rolling_every=every)
                total = 0
                for added in (1, 2, 5, 3, 10, 1, 1, 6, 2):
                    samples = [Joined("m", "1", float(total + i), "1", "0", 0.5) for i in range(added)]
                    [(_, due)] = await store.transact(
                        [Job(0, set(), set(), lambda view, s=samples: StepResult(rolling={"m\x1f1": s}))]
                    )
                    total += added
                    assert bool(due) == rolling_due(total, added, every), (every, total, added)
                    if due:
                        assert due[0].sequence == total
                        assert due[0].times == [float(t) for t in range(max(0, total - 5), total)]
        finally:
            await client.aclose()

    asyncio.run(run())
