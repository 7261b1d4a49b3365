"""The Redis store's concurrency guard, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from functools import partial
from typing import Any

import pytest
import redis

from stream.core.catalog import Catalog
from stream.core.contract import Job
from stream.core.engine import Engine
from stream.core.records import RawMessage
from stream.core.state import METRICS, Output
from stream.core.timefmt import format_time
from stream.errors import ConfigError, StateError, StateLost
from stream.settings import Settings
from stream.stores.redis import RedisStore
from stream.stores.redis import scripts as lua
from stream.stores.redis_connect import connect
from tests.factories import T0, Topic, inference, label, on_partition
from tests.harness import CLUSTER, Harness, redis_client

pytestmark = pytest.mark.redis_cluster  # its Redis tests run again on a Redis Cluster in CI

SETTINGS = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0, label_ttl=600.0)


async def _engine_run(redis_url: str, prefix: str, work: Any, partitions: int = 1) -> Any:
    """Run `work(engine, store)` on a fresh client of the shared Redis state under `prefix`."""
    client = redis_client(redis_url)
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
    [record] = [o.value for o in outputs if o.channel == METRICS and o.value["window"]["kind"] == "tumbling"]
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
        pairs = [(on_partition(f"p{p}-{i}", p, 2), T0 + i) for i in range(20)] + [
            (on_partition("end", p, 2), T0 + 1000)
        ]
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
    closed = [o.value for o in outputs if o.channel == METRICS and o.value["window"]["kind"] == "tumbling"]
    assert [(r["window"]["start"], r["sample_count"]) for r in closed] == [(format_time(T0), 40)]


def test_a_sweep_cut_short_by_a_crash_is_finished_by_the_next_batch(redis_url: str) -> None:
    """A worker took expired entries from the expiry index into its work list and died before
    expiring them. The index no longer holds them and no other slot has ended, yet the next batch
    (whose write glanced at the index) must still finish that sweep and count them."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    inf = Topic("inferences")
    waiting = [inf.msg(inference(f"w{i}", T0 + i, 1, 0.9)) for i in range(5)]
    later = [inf.msg(inference("late-comer", T0 + SETTINGS.label_ttl + 2000, 1, 0.9))]
    after = [inf.msg(inference("next", T0 + SETTINGS.label_ttl + 2001, 1, 0.9))]

    async def crash(engine: Engine, store: RedisStore) -> None:
        await engine.process(waiting, time.time())
        # a batch moving event time past them takes them into its work list; then the worker dies
        assert len((await store.expiry_candidates({0}, T0 + 10 * SETTINGS.label_ttl))[0]) == 5

    async def resume(engine: Engine, store: RedisStore) -> Any:
        await engine.process(later, time.time())  # moves event time: nothing left in the index
        await engine.process(after, time.time())
        return await store.pending_outbox()

    asyncio.run(_engine_run(redis_url, prefix, crash))
    outputs = asyncio.run(_engine_run(redis_url, prefix, resume))
    expired = sum(
        o.value["counts"]["expired_inferences"] for o in outputs if o.channel == METRICS and "counts" in o.value
    )
    assert expired == 5


def test_two_workers_flushing_the_shared_outbox_lose_nothing(redis_url: str) -> None:
    """Both workers read the same page and publish it; the first confirms it; a record queued
    after that must survive the second's confirmation of the page it read earlier."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[str]:
        clients = [redis_client(redis_url) for _ in range(2)]
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
    from stream.core.contract import rolling_due
    from stream.core.records import Joined
    from stream.core.state import StepResult

    async def run() -> None:
        client = redis_client(redis_url)
        try:
            for every in (1, 3, 7):
                store = RedisStore(client, f"t-{uuid.uuid4().hex[:8]}", 600.0, rolling_size=5, rolling_every=every)
                total = 0
                for added in (1, 2, 5, 3, 10, 1, 1, 6, 2):
                    samples = [Joined("m", "1", float(total + i), "1", "0", 0.5) for i in range(added)]
                    [(_, due)] = (
                        await store.transact(
                            [Job(0, set(), set(), lambda view, s=samples: StepResult(rolling={"m\x1f1": s}))]
                        )
                    ).results
                    due = await store.rolling_samples(due)
                    total += added
                    assert bool(due) == rolling_due(total, added, every), (every, total, added)
                    if due:
                        assert due[0].sequence == total
                        assert due[0].times == [float(t) for t in range(max(0, total - 5), total)]
        finally:
            await client.aclose()

    asyncio.run(run())


def _keys(redis_url: str, prefix: str) -> dict[str, str]:
    """The keys under a prefix, on every node, with their types."""
    clients = (
        [redis.Redis(host=n.host, port=n.port) for n in redis.RedisCluster.from_url(redis_url).get_primaries()]
        if CLUSTER
        else [redis.Redis.from_url(redis_url)]
    )
    return {k.decode("latin-1"): c.type(k).decode() for c in clients for k in c.scan_iter(match=f"{prefix}:*")}


def test_entries_split_into_more_buckets_as_they_grow_and_every_one_is_found(redis_url: str) -> None:
    """3,000 waiting inferences on one partition grow its buckets by linear hashing to about 3,000/40 small
    hashes (none past the compact encoding's 128 entries); then every label finds its inference."""
    settings = Settings(window_seconds=3600.0, label_grace=30.0, min_samples=1, rolling_size=0, label_ttl=86400.0)
    h = Harness("redis", settings, None, 1, redis_url, prefix=f"t-{uuid.uuid4().hex[:8]}")
    inf, lab = Topic("inferences"), Topic("labels")
    ids = [str(uuid.UUID(int=random.Random(7).getrandbits(128) + i)) for i in range(3000)]
    h.feed([inf.msg(inference(e, T0 + i * 0.1, i % 2, 0.3 + (i % 7) / 10)) for i, e in enumerate(ids)], batch=500)
    buckets = [k for k, t in _keys(redis_url, h.prefix).items() if ":e:" in k and t == "hash"]
    assert 3000 / 80 <= len(buckets) <= 3000 / 20
    client = redis.Redis.from_url(redis_url) if not CLUSTER else redis.RedisCluster.from_url(redis_url)
    assert max(client.hlen(k.encode("latin-1")) for k in buckets) <= 128
    h.feed([lab.msg(label(e, i % 2)) for i, e in enumerate(ids)], batch=500)
    h.idle(T0 + 86400 * 3)
    [record] = h.metrics()
    assert record["sample_count"] == 3000 and record["counts"]["expired_inferences"] == 0
    assert record["binary_classification_metrics"]["accuracy"]["value"] == 1.0


def test_a_long_waiting_label_gets_a_key_of_its_own_until_its_inference_comes(redis_url: str) -> None:
    """A label waiting with a large message is kept beside the buckets (they stay compact) and the key
    goes when the label joins; a label that does not fit its model is dead-lettered with its message."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0)
    h = Harness("redis", settings, Catalog(default_problem_type="Regression"), 1, redis_url, prefix=prefix)
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([lab.msg(label("a", 1, note="n" * 500)), lab.msg(label("b", "not-a-class", note="m" * 500))])
    assert sum(":L:" in k for k in _keys(redis_url, prefix)) == 2
    h.feed([inf.msg(inference("a", T0, 1.5)), inf.msg(inference("b", T0 + 1, 2.5))])
    assert sum(":L:" in k for k in _keys(redis_url, prefix)) == 0
    [dead] = h.records(settings.dead_letter_topic)
    assert dead["key"] == "b" and "m" * 500 in json.loads(dead["value"])["note"]


def test_a_window_closed_by_two_workers_at_once_is_published_once(redis_url: str) -> None:
    """Two workers see the same windows due and close them concurrently: each window's parts of the
    two partitions are merged once, its record queued once, and the counters go with it once; so is
    its provisional record, which they publish concurrently before, and never after the close."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    msgs = [m for i in range(40) for m in (inf.msg(inference(f"e{i}", T0 + i, 1, 0.9)), lab.msg(label(f"e{i}", 1)))] + [
        lab.msg(label("e3", 1))
    ]  # a duplicate

    async def scenario() -> list[Output]:
        clients = [redis_client(redis_url) for _ in range(2)]
        try:
            stores = [RedisStore(c, prefix, SETTINGS.label_ttl, 2) for c in clients]
            engines = [Engine(SETTINGS.core(), Catalog(), s, 2) for s in stores]
            await engines[0].process(msgs, time.time())
            await stores[0].raise_floor(T0 + 3600)
            await asyncio.gather(*(e.provisional_due(T0 + 3600) for e in engines))
            await asyncio.gather(*(e.close_due() for e in engines))
            await asyncio.gather(*(e.provisional_due(T0 + 3600) for e in engines))
            return await stores[0].pending_outbox()
        finally:
            for c in clients:
                await c.aclose()

    outputs = asyncio.run(scenario())
    records = [o.value for o in outputs if o.channel == METRICS and o.value["window"]["kind"] == "tumbling"]
    assert [(r["sample_count"], r["counts"]["duplicates"]) for r in records] == [(40, 1)]
    provisional = [o.value for o in outputs if o.channel == METRICS and o.value["window"]["kind"] == "provisional"]
    assert [(r["inference_count"], r["sample_count"], r["labels"]["coverage"]) for r in provisional] == [(40, 40, 1.0)]


def test_state_of_the_first_key_layout_is_refused_with_what_to_do(redis_url: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        client = redis_client(redis_url)
        try:
            await client.rpush(f"{prefix}:outbox", "{}")
            with pytest.raises(StateError, match=r"first key layout.*Upgrading"):
                await RedisStore(client, prefix, 600.0).check_layout()
            await client.delete(f"{prefix}:outbox")
            await RedisStore(client, prefix, 600.0).check_layout()
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_the_wrong_cluster_setting_is_one_clear_error(redis_url: str) -> None:
    """A cluster node with cluster mode off, or a single Redis with it on: ConfigError naming the setting."""
    with pytest.raises(ConfigError, match="TRUTHSTREAM_REDIS_CLUSTER=" + ("on" if CLUSTER else "off")):
        asyncio.run(connect(redis_url, cluster=not CLUSTER))


def test_models_past_a_partitions_reference_table_are_written_out(redis_url: str, monkeypatch) -> None:
    """Once a partition's model table is full (65,535 references; 2 here), further models are written
    out in their entries instead of stopping the worker: they wait, join and count duplicates alike."""
    import stream.stores.redis.codec as store_module

    monkeypatch.setattr(store_module, "MODEL_INLINE", 2)
    settings = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0)
    h = Harness("redis", settings, None, 1, redis_url, prefix=f"t-{uuid.uuid4().hex[:8]}")
    inf, lab = Topic("inferences"), Topic("labels")
    models = [f"model-{i}" for i in range(5)]
    h.feed([inf.msg(inference(f"{m}-e", T0 + i, 1, 0.9 if i % 2 else None, model=m)) for i, m in enumerate(models)])
    client = redis.RedisCluster.from_url(redis_url) if CLUSTER else redis.Redis.from_url(redis_url)
    assert client.hlen(f"{h.prefix}:{{{h.prefix}:0}}:m") == 2  # three models are written out
    h.feed([lab.msg(label(f"{m}-e", 1)) for m in models])
    h.feed([lab.msg(label(f"{m}-e", 1)) for m in models])  # duplicates: the tombstones name their models
    h.idle(T0 + 3600)
    records = {r["model"]: r for r in h.metrics()}
    assert sorted(records) == models
    assert all(r["sample_count"] == 1 for r in records.values())
    accounted = {r["model"]: r["counts"]["duplicates"] for r in h.metrics("accounting")}
    assert all(records[m]["counts"]["duplicates"] + accounted.get(m, 0) == 1 for m in models)


def test_every_write_renews_the_safety_ttl_of_the_keys_it_touches(redis_url: str) -> None:
    """Buckets and index lists expire on the wall clock only after twice the label TTL plus a day
    without writes (an abandoned prefix): a key still written to never loses its entries."""
    settings = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0, label_ttl=600.0)
    h = Harness("redis", settings, None, 1, redis_url, prefix=f"t-{uuid.uuid4().hex[:8]}")
    inf = Topic("inferences")
    client = redis.RedisCluster.from_url(redis_url) if CLUSTER else redis.Redis.from_url(redis_url)
    bucket = f"{h.prefix}:{{{h.prefix}:0}}:e:0"  # the partition's only bucket while it holds few entries
    safety = int(600.0 * 2) + 86400
    for i in range(20):
        h.feed([inf.msg(inference(f"e{i}", T0 + i, 1, 0.5))])
        assert safety - 5 <= client.ttl(bucket) <= safety
        client.expire(bucket, 100)
    assert all(0 < client.ttl(k.encode("latin-1")) <= safety for k in _keys(redis_url, h.prefix) if ":x:" in k)


def test_two_workers_closing_a_models_windows_at_once_feed_its_change_detector_once_in_order(
    redis_url: str,
) -> None:
    """Eight windows of one model, due together, closed by two workers at once (each closing all,
    with the other's claims landing in between): the change detector is fed each window once, in
    order (a claim built on a detector another worker moved is refused and rebuilt), so the events
    are those of the memory store, once."""
    from tests.test_changes import drifting_stream

    settings = Settings(window_seconds=60.0, label_grace=100000.0, min_samples=1, rolling_size=0, label_ttl=1e6)
    msgs = drifting_stream(3)
    memory = Harness("memory", settings, Catalog(), 2)
    memory.feed(msgs, batch=1000)
    memory.idle(T0 + 200000)
    expected = [v for v in memory.records(settings.violations_topic) if v["constraint_check_type"] == "ChangeDetected"]
    assert len(expected) == 1
    prefix = f"t-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[Output]:
        clients = [redis_client(redis_url) for _ in range(2)]
        try:
            stores = [RedisStore(c, prefix, settings.label_ttl, 2) for c in clients]
            engines = [Engine(settings.core(), Catalog(), s, 2) for s in stores]
            await engines[0].process(msgs, time.time())
            await stores[0].raise_floor(T0 + 200000)
            await asyncio.gather(*(e.close_due() for e in engines))
            return await stores[0].pending_outbox()
        finally:
            for c in clients:
                await c.aclose()

    outputs = asyncio.run(scenario())
    windows = [o.value for o in outputs if o.channel == METRICS and o.value["window"]["kind"] == "tumbling"]
    assert len(windows) == 8
    changes = [
        o.value for o in outputs if o.channel == "violation" and o.value["constraint_check_type"] == "ChangeDetected"
    ]
    assert changes == expected


def test_a_redis_that_forgot_the_scripts_has_them_loaded_again(redis_url: str) -> None:
    """Scripts run by SHA1; after SCRIPT FLUSH (a restart, a failover to a fresh node) the store loads
    them again and the batch goes through, its windows exact."""
    h = Harness("redis", SETTINGS, None, 1, redis_url, prefix=f"t-{uuid.uuid4().hex[:8]}")
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference(f"e{i}", T0 + i, i % 2, 0.7)) for i in range(10)])
    client = redis.RedisCluster.from_url(redis_url) if CLUSTER else redis.Redis.from_url(redis_url)
    client.script_flush()
    assert not any(client.script_exists(*(script.sha for script in lua.ALL)))
    h.feed([lab.msg(label(f"e{i}", 1)) for i in range(10)])
    h.idle(T0 + 3600)
    [record] = h.metrics()
    assert record["sample_count"] == 10
    assert record["binary_classification_metrics"]["confusion_matrix"]["1"] == {"0": 5, "1": 5}
    client.close()


def test_outbox_rows_of_0_1_are_read_and_published_as_the_same_bytes(redis_url: str) -> None:
    """An outbox row 0.1.0 left (a JSON document around the record) is read as its output, and its
    payload is the record's JSON as 0.1.0 published it; new rows keep the payload itself."""
    from stream.stores.redis.outbox import rows

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    old = {"kind": "metrics", "key": "churn", "value": {"sample_count": 3, "model": "churn"}}
    new = Output("violation", "fraud", {"metric_name": "recall", "value": 0.5})

    async def scenario() -> list[Output]:
        client = redis_client(redis_url)
        try:
            store = RedisStore(client, prefix, 600.0)
            await client.rpush(store.keys.of(0, "o"), json.dumps(old), *rows([new]))
            pending = await store.pending_outbox()
            await store.confirm_outbox(len(pending))
            assert await store.pending_outbox() == []
            return pending
        finally:
            await client.aclose()

    first, second = asyncio.run(scenario())
    assert (first.channel, first.key, first.value) == ("metrics", "churn", old["value"])
    assert first.payload == json.dumps(old["value"]).encode()
    assert second == new and second.payload == json.dumps(new.value).encode()


def test_a_redis_that_lost_writes_is_found_before_anything_is_computed_from_it(redis_url: str) -> None:
    """Applied offsets only move forward: one that Redis holds lower than this process saw (Redis
    restarted empty, or older) stops the batch, and the clock read of an idle close, with StateLost."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    inf = Topic("inferences")
    first = [inf.msg(inference(f"e{i}", T0 + i, 1, 0.9)) for i in range(5)]
    later = [inf.msg(inference(f"f{i}", T0 + 10 + i, 1, 0.9)) for i in range(5)]

    async def work(engine: Engine, store: RedisStore) -> None:
        await engine.process(first, time.time())
        await engine.process(later[:2], time.time())
        ck = store.keys.of(0, "ck")
        await store.redis.hset(ck, "inferences", 1)  # as if Redis came back from an older snapshot
        with pytest.raises(StateLost, match=r"inferences\[0\] applied up to offset 1, but offset 6 was applied"):
            await engine.process(later[2:], time.time())
        with pytest.raises(StateLost):
            await engine.idle(T0 + 3600)
        await store.redis.delete(ck)  # as if Redis came back empty
        with pytest.raises(StateLost, match="applied up to no offset"):
            await engine.process(later[2:], time.time())

    asyncio.run(_engine_run(redis_url, prefix, work))


def test_past_windows_leave_no_state_behind_whatever_their_number(redis_url: str) -> None:
    """Closing 20 or 40 windows of 3 models with segments leaves the same keys: per model version and
    partition one number says which windows are past (no per-window index, no admitted segment values,
    no provisional marker, no part of what unlabelled inferences added); a pair for a window closed
    long ago is counted late, not published again."""
    from stream.core.calibration import Calibration

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    calibrated = Calibration((0.0, 0.5, 1.0), (0.05, 0.45, 0.95), 10)  # provisional records, with markers
    catalog = Catalog(default_calibration=calibrated, default_segments=("features.country",))
    h = Harness("redis", SETTINGS, catalog, 2, redis_url, prefix=prefix)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)

    def windows(first: int, last: int) -> None:
        for w in range(first, last):
            # model c's inferences of odd windows are never labelled: those windows no pair opens
            pairs = [(f"w{w}-{m}-{i}", m) for m in ("a", "b", "c")[: 3 - w % 2] for i in range(4)]
            alone = [(f"w{w}-c-alone{i}", "c") for i in range(4 * (w % 2))]
            t = T0 + 60 * w
            h.feed(
                [inf.msg(inference(e, t + 1, 1, 0.9, model=m, features={"country": f"c{w % 3}"})) for e, m in pairs]
                + [inf.msg(inference(e, t + 1, 1, 0.9, model=m)) for e, m in alone]
                + [lab.msg(label(e, 1, label_time=format_time(t + 2))) for e, _ in pairs]
            )

    def state() -> dict[str, int]:
        kinds: dict[str, int] = {}
        for key in _keys(redis_url, prefix):
            kind = h_keys.kind(key) or key
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    from stream.stores.redis.keys import Keys

    h_keys = Keys(prefix)
    client = redis.Redis.from_url(redis_url) if not CLUSTER else redis.RedisCluster.from_url(redis_url)

    def entries() -> int:
        return sum(int(client.hget(h_keys.meta(p), "n")) for p in range(2))

    windows(0, 21)  # joined-pair markers are kept the label TTL, 10 windows
    after_20, entries_20 = state(), entries()
    windows(21, 41)
    after_40 = state()
    # as the open windows fall in partitions
    open_parts = {"window part", "admitted segment values", "bucket", "unopened windows", "provisional done"}
    assert {k: n for k, n in after_40.items() if k not in open_parts} == {
        k: n for k, n in after_20.items() if k not in open_parts
    }
    assert abs(entries() - entries_20) <= 0.1 * entries_20
    kinds = {"window part", "admitted segment values", "provisional done"}
    parts = [k for k in _keys(redis_url, prefix) if h_keys.kind(k) in kinds]
    assert any(h_keys.kind(k) == "provisional done" for k in parts)
    assert {float(k.split("\x1f")[2]) for k in parts} == {T0 + 60 * 39, T0 + 60 * 40}  # the 2 still open
    assert len(h.metrics()) == 3 * 39 - 19  # model c's 19 odd windows up to 38 had no pair
    assert client.hgetall(h_keys.of(0, "cl")) == {f"{m}\x1f1".encode(): repr(T0 + 60 * 39).encode() for m in "abc"}
    h.feed([inf.msg(inference("old", T0 + 5, 1, model="a")), lab.msg(label("old", 1, label_time=format_time(T0 + 6)))])
    h.idle(T0 + 86400)
    assert len(h.metrics()) == 3 * 41 - 20 and h.counted("late") == 1


def test_the_closed_windows_of_key_layout_2_are_folded_into_one_number_per_model(redis_url: str) -> None:
    """A prefix that key layout 2 wrote keeps its windows closed: the first script to see the sorted set
    of closed windows folds it into the model version's sealed- and published-through ends."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url) if not CLUSTER else redis.RedisCluster.from_url(redis_url)
    from stream.core.windows import WindowKey
    from stream.stores.redis.keys import Keys

    keys = Keys(prefix)
    closed = [WindowKey("churn", "1", T0 + 60 * w, 60.0) for w in range(3)]
    client.zadd(keys.of(0, "closed"), {k.encode(): k.end for k in closed})
    h = Harness("redis", SETTINGS, None, 1, redis_url, prefix=prefix)
    inf, lab = Topic("inferences"), Topic("labels")
    h.feed([inf.msg(inference("x", T0 + 61, 1)), lab.msg(label("x", 1, label_time=format_time(T0 + 62)))])
    assert not client.exists(keys.of(0, "closed"))
    assert float(client.hget(keys.of(0, "cl"), "churn\x1f1")) == T0 + 180
    assert float(client.hget(keys.of(0, "cp"), "churn\x1f1")) == T0 + 180
    h.idle(T0 + 86400)
    assert h.metrics() == [] and h.counted("late") == 1


def test_the_state_size_estimate_is_near_a_full_count_by_family(redis_url: str) -> None:
    """The two-round-trip estimate Prometheus shows (a few keys measured per family and partition) is
    within 30 % of a full SCAN and MEMORY USAGE of every key for the families of many keys, and the
    fixed keys are counted exactly."""
    from stream.stores.redis import sizes
    from stream.stores.redis.keys import Keys

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=50, label_ttl=86400.0)
    from stream.core.dataquality.reference import QualityBaseline

    quality = QualityBaseline.of({"features": [{"name": "country", "inferred_type": "String"}]})
    catalog = Catalog(default_segments=("features.country",), default_quality=quality)
    h = Harness("redis", settings, catalog, 2, redis_url, prefix=prefix)
    inf, lab = Topic("inferences", 2), Topic("labels", 2)
    rng = random.Random(9)
    msgs = []
    for i in range(6000):
        e, m = f"ev-{i:05d}-{rng.getrandbits(64):x}", f"m{i % 7}"
        msgs.append(inf.msg(inference(e, T0 + i * 0.5, 1, model=m, features={"country": "ABC"[i % 3]})))
        if i % 3:
            msgs.append(lab.msg(label(e, i % 2, label_time=format_time(T0 + i * 0.5 + 1))))
    h.feed(msgs, batch=500)
    keys = Keys(prefix)
    family = {
        "bucket": sizes.ENTRIES,
        "expiry slot": sizes.EXPIRY,
        "window part": sizes.WINDOWS,
        "change detectors": sizes.DETECTORS,
        "rolling part": sizes.ROLLING,
        "quality rows": sizes.QUALITY,
    }
    client = redis.Redis.from_url(redis_url) if not CLUSTER else redis.RedisCluster.from_url(redis_url)
    exact: dict[str, float] = {}
    for key in _keys(redis_url, prefix):
        kind = keys.kind(key)
        if kind in family:
            exact[family[kind]] = exact.get(family[kind], 0) + client.memory_usage(key.encode("latin-1"), samples=0)

    estimated = asyncio.run(_engine_run(redis_url, prefix, lambda engine, store: store.sizes(), partitions=2))
    assert set(exact) == set(family.values())
    for name, size in exact.items():
        assert abs(estimated[name] - size) <= 0.3 * size, (name, estimated[name], size)
    assert estimated[sizes.BOOKKEEPING] > 0 and estimated[sizes.OUTBOX] >= 0


def test_a_model_no_label_reaches_keeps_a_bounded_list_of_its_windows(redis_url: str) -> None:
    """A model whose inferences never get a label never has a window sealed: the list of its windows
    that only inferences reached keeps those within the safety TTL of event time, not every one."""
    from stream.stores.redis.keys import Keys

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    h = Harness("redis", SETTINGS, None, 1, redis_url, prefix=prefix)
    inf, lab = Topic("inferences"), Topic("labels")
    safety_ttl = RedisStore(None, prefix, SETTINGS.label_ttl).safety_ttl
    windows = int(3 * safety_ttl / 60)  # three safety TTLs of one-minute windows
    for w in range(0, windows, 60):
        msgs = []
        for j in range(w, min(w + 60, windows)):
            t = T0 + 60 * j
            msgs += [inf.msg(inference(f"a{j}", t + 1, 1)), lab.msg(label(f"a{j}", 1, label_time=format_time(t + 2)))]
            msgs.append(inf.msg(inference(f"d{j}", t + 1, 1, 0.9, model="d")))
        h.feed(msgs)
    client = redis.Redis.from_url(redis_url) if not CLUSTER else redis.RedisCluster.from_url(redis_url)
    listed = client.zcard(Keys(prefix).of(0, "u:d\x1f1"))
    assert 0 < listed <= safety_ttl / 60 + 1
