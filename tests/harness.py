"""Drives the engine over a memory or a Redis store, the way the worker does, without Kafka."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from stream.core.catalog import Catalog
from stream.core.engine import BatchReport, Engine
from stream.core.records import RawMessage
from stream.core.state import Output
from stream.settings import Settings
from stream.stores.memory import MemoryStore
from stream.stores.redis import RedisStore

# The Redis the tests are given is a node of a Redis Cluster (CI runs the worker's tests on one).
CLUSTER = os.environ.get("TRUTHSTREAM_TEST_REDIS_CLUSTER") == "on"


def redis_client(url: str) -> Any:
    """An asyncio client of the test Redis: redis-py's cluster client when it is a cluster node."""
    return RedisCluster.from_url(url) if CLUSTER else aioredis.from_url(url)


class Harness:
    """Feeds batches to an Engine and collects what it publishes."""

    def __init__(
        self,
        kind: str,
        settings: Settings,
        catalog: Catalog | None = None,
        partitions: int = 1,
        redis_url: str | None = None,
        prefix: str = "test",
    ) -> None:
        self.kind, self.settings, self.partitions = kind, settings, partitions
        self.catalog = catalog or Catalog()
        self.redis_url, self.prefix = redis_url, prefix
        self.memory = MemoryStore(settings.rolling_size, settings.rolling_every, settings.segment_cap)
        self.published: list[Output] = []

    async def _with_engine(self, work: Any) -> Any:
        client = None
        if self.kind == "redis":
            client = redis_client(self.redis_url)
            store: Any = RedisStore(
                client,
                self.prefix,
                self.settings.label_ttl,
                self.partitions,
                self.settings.rolling_size,
                self.settings.rolling_every,
                self.settings.score_resolution,
                self.settings.segment_cap,
            )
        else:
            store = self.memory
        try:
            engine = Engine(self.settings.core(), self.catalog, store, self.partitions)
            result = await work(engine)
            pending = await store.pending_outbox()
            while pending:
                self.published.extend(pending)
                await store.confirm_outbox(len(pending))
                pending = await store.pending_outbox()
            return result
        finally:
            if client is not None:
                await client.aclose()

    def feed(self, messages: list[RawMessage], batch: int = 1000) -> list[BatchReport]:
        """Process messages in batches of `batch`; returns the engine's reports."""

        async def work(engine: Engine) -> list[BatchReport]:
            return [await engine.process(messages[i : i + batch], time.time()) for i in range(0, len(messages), batch)]

        return asyncio.run(self._with_engine(work))

    def run(self, work: Any) -> Any:
        """Run `work(engine)` on an engine over the harness's store; what it publishes is collected."""
        return asyncio.run(self._with_engine(work))

    def idle(self, wall_clock: float) -> None:
        """Simulate the worker's idle timer."""
        asyncio.run(self._with_engine(lambda engine: engine.idle(wall_clock)))

    def records(self, topic: str) -> list[dict[str, Any]]:
        """Values published to a topic so far (outputs go to the topics the settings name for their kinds)."""
        topics = self.settings.output_topics()
        return [o.value for o in self.published if topics[o.channel] == topic]

    def metrics(self, kind: str = "tumbling") -> list[dict[str, Any]]:
        """Metrics records of one window kind."""
        return [r for r in self.records(self.settings.metrics_topic) if r["window"]["kind"] == kind]

    def counted(self, name: str) -> int:
        """A count summed over every record that carries counts (tumbling windows and accounting records)."""
        return sum(
            r["counts"][name]
            for r in self.records(self.settings.metrics_topic)
            if r["window"]["kind"] in ("tumbling", "accounting")
        )


def base_settings(**kw: Any) -> Settings:
    """The core tests' settings: 60-second windows, 30 s of grace, every window judged, no rolling window."""
    defaults: dict[str, Any] = dict(
        window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0, label_ttl=600.0
    )
    defaults.update(kw)
    return Settings(**defaults)
