"""Several engines sharing a worker's partitions (TRUTHSTREAM_ENGINE_PROCESSES): each partition goes
to one engine, in order; the windows equal scikit-learn's; reports add up."""

from __future__ import annotations

import asyncio

import pytest

from stream.core.catalog import Catalog
from stream.core.engine import BatchReport, Engine
from stream.core.records import RawMessage
from stream.core.state import METRICS
from stream.errors import ConfigError
from stream.settings import Settings
from stream.stores.memory import MemoryStore
from stream.worker.engine_pool import EnginePool, merge_reports
from stream.worker.engine_process import LocalEngine
from tests.factories import T0, Topic
from tests.harness import base_settings
from tests.integration.workload import arrival_order, expected_windows, workload

PARTITIONS = 4


class NoRedis:
    """LocalEngine's client, for an engine over the memory store."""

    async def aclose(self) -> None:
        return None


class Recording(LocalEngine):
    """A LocalEngine that remembers the partitions of every message it was handed, in order."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, NoRedis())
        self.seen: list[tuple[str, int, int]] = []  # (topic, partition, offset)

    async def process(self, messages: list[RawMessage], wall_clock: float) -> BatchReport:
        self.seen += [(m.topic, m.partition, m.offset) for m in messages]
        return await super().process(messages, wall_clock)


def messages() -> tuple[list[RawMessage], dict[str, dict[str, float]]]:
    pairs = workload(n=2400, per_window=300, window=60.0, drift_window=5, seed=3, max_label_delay=20)
    topics = {"inferences": Topic("inferences", PARTITIONS), "labels": Topic("labels", PARTITIONS)}
    return [topics[kind].msg(doc) for kind, _, doc in arrival_order(pairs)], expected_windows(pairs, 60.0)


def test_each_partition_goes_to_one_engine_in_order_and_the_windows_are_exact() -> None:
    batch, expected = messages()
    settings = base_settings(label_ttl=3600.0)
    store = MemoryStore(segment_cap=settings.segment_cap)  # the shared state, as Redis is between processes
    engines = [Recording(Engine(settings.core(), Catalog(), store, PARTITIONS)) for _ in range(2)]
    pool = EnginePool(engines)

    async def run() -> list[BatchReport]:
        reports = []
        for start in range(0, len(batch), 500):
            reports.append(await (await pool.begin(batch[start : start + 500], T0 + 86400)))
        reports.append(await pool.sweep(set(range(PARTITIONS))))
        await pool.close()
        return reports

    reports = asyncio.run(run())
    for i, engine in enumerate(engines):
        assert {p for _, p, _ in engine.seen} == {p for p in range(PARTITIONS) if p % 2 == i}
        for topic in ("inferences", "labels"):
            for p in range(PARTITIONS):
                offsets = [o for t, q, o in engine.seen if (t, q) == (topic, p)]
                assert offsets == sorted(offsets)  # each input partition's messages in order
    total = merge_reports(reports)
    assert total.messages == len(batch) and total.joined == len(batch) // 2
    records = [o.value for o in store.outbox if o.channel == METRICS and o.value["window"]["kind"] == "tumbling"]
    published = {r["window"]["start"]: r for r in records}
    closed = {start: want for start, want in expected.items() if start in published}
    assert len(closed) == len(published) >= len(expected) - 1  # the last window may still be open
    for start, want in closed.items():
        stats = published[start]["binary_classification_metrics"]
        assert published[start]["sample_count"] == want["sample_count"]
        for name in ("recall", "precision", "accuracy", "f1", "auc"):
            assert stats[name]["value"] == pytest.approx(want[name], abs=1e-9), (start, name)


def test_merged_reports_add_up() -> None:
    one = BatchReport(messages=3, joined=1, dead_letters=1, queued=2, inference_times=(10.0, 20.0), stream_time=5.0)
    two = BatchReport(messages=4, joined=2, late=1, closed_windows=1, inference_times=(5.0, 15.0), stream_time=7.0)
    one.outcomes["inference", "joined"] += 1
    two.outcomes["inference", "joined"] += 2
    both = merge_reports([one, two])
    assert (both.messages, both.joined, both.dead_letters, both.late, both.closed_windows, both.queued) == (
        7,
        3,
        1,
        1,
        1,
        2,
    )
    assert both.inference_times == (5.0, 20.0) and both.stream_time == 7.0
    assert both.outcomes["inference", "joined"] == 3


def test_several_engine_processes_need_the_engine_process_on() -> None:
    with pytest.raises(ConfigError, match="ENGINE_PROCESSES=2 needs the engine in processes of its own"):
        Settings(engine_processes=2, engine_process=False).validate()
    with pytest.raises(ConfigError, match="ENGINE_PROCESSES must be positive"):
        Settings(engine_processes=0).validate()
    assert Settings(engine_processes=3).validate().engine_processes == 3
