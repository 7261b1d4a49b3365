"""The worker's service: owns the Redis client and the engine, runs batches, publishes the outbox."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
import mode
from faust.types import TP

from stream.core.catalog import Catalog
from stream.core.engine import BatchReport
from stream.core.records import INFERENCE, LABEL, RawMessage
from stream.errors import ConfigError, StateError
from stream.logs import install_redaction
from stream.settings import Settings
from stream.stores.redis import RedisStore
from stream.stores.redis.sizes import used_memory
from stream.stores.redis_connect import connect
from stream.worker.engine_pool import EnginePool
from stream.worker.engine_process import Batches, EngineProcess, LocalEngine, redis_store
from stream.worker.observe import PrometheusMetrics
from stream.worker.outages import CONFIG_EXIT_CODE, exit_on_bug, retrying
from stream.worker.positions import place
from stream.worker.publish import Publisher
from stream.worker.topics import ensure_topics

log = logging.getLogger("truthstream.worker")

DEFAULT_PARTITIONS = 4  # partitions for topics the worker has to create itself
# Every owned partition's waiting entries are swept this often (seconds), idle ones included: a
# batch sweeps only the partitions it read, so a partition nothing comes to would keep its entries.
SWEEP_SECONDS = 10.0
SIZE_SECONDS = 60.0  # how often the state's size is estimated for Prometheus (see stores.redis.sizes)


def preflight(settings: Settings) -> int:
    """Check, before faust starts (so that a mistake is one line, not a framework traceback), that
    Redis answers and the topics exist (creating missing ones) with co-partitioned inputs; return
    the input topics' partition count."""
    s = settings

    async def check_redis() -> None:
        client = await connect(s.redis_url, s.redis_cluster)
        try:
            await RedisStore(client, s.redis_prefix, s.label_ttl).check_layout()
        finally:
            await client.aclose()

    asyncio.run(check_redis())
    counts = ensure_topics(
        s.kafka(),
        [s.inference_topic, s.label_topic, s.metrics_topic, s.violations_topic, s.dead_letter_topic],
        DEFAULT_PARTITIONS,
    )
    if counts[s.inference_topic] != counts[s.label_topic]:
        raise ConfigError(
            f"topics {s.inference_topic} ({counts[s.inference_topic]} partitions) and "
            f"{s.label_topic} ({counts[s.label_topic]}) must have the same number of "
            "partitions, so that an inference and its label meet in one worker"
        )
    return counts[s.inference_topic]


class WorkerService(mode.Service):
    """Owns the Redis client and the engine for the life of the worker."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        catalog: Catalog,
        partitions: int,
        log_level: str = "info",
        **kwargs: Any,
    ) -> None:
        self.app, self.settings, self.catalog, self.partitions = app, settings, catalog, partitions
        self.log_level = log_level
        self.topics = settings.output_topics()
        self.engine: Batches | None = None
        self.publisher: Publisher | None = None
        self.redis: Any = None  # redis-py's client, or its cluster client
        self.last_input = self.last_sweep = time.monotonic()
        self.last_size = -math.inf
        self.lock = asyncio.Lock()  # one batch (or idle close, or sweep) at a time
        self.ready = asyncio.Event()
        self.publish_wanted = asyncio.Event()
        self.prometheus: PrometheusMetrics | None = None
        self.store: RedisStore | None = None
        self.positions: dict[tuple[str, int], int] = {}  # next offset to process, per input partition
        self.unpublished_labels: list[float] = []  # oldest label time of batches whose records wait
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        """Start the engine (in a process of its own unless TRUTHSTREAM_ENGINE_PROCESS=off) and connect
        to Redis for the outbox (`preflight` checked Redis and the topics before faust started)."""
        install_redaction()  # faust's worker set up logging of its own by now
        s = self.settings
        if s.engine_process:
            engines = [
                EngineProcess(s, self.catalog, self.partitions, self.log_level) for _ in range(s.engine_processes)
            ]
            for engine in engines:
                await engine.start()
            self.engine = engines[0] if len(engines) == 1 else EnginePool(engines)
        else:
            self.engine = await LocalEngine.open(s, self.catalog, self.partitions)
        self.redis = await connect(s.redis_url, s.redis_cluster)
        store = self.store = redis_store(s, self.redis, self.partitions)
        if s.metrics_port:
            self.prometheus = PrometheusMetrics({INFERENCE: s.inference_topic, LABEL: s.label_topic}, self.catalog)
            self.prometheus.state_limit.set(s.state_limit_mib * 2**20)
            self.prometheus.serve(s.metrics_port)
            log.info("Prometheus metrics on port %d at /metrics", s.metrics_port)
        observe = self.prometheus.published if self.prometheus else None
        refused = self.prometheus.dead_letters.labels("undeliverable").inc if self.prometheus else None
        self.publisher = Publisher(self.app.producer, store, self.topics, observe, refused)
        self.ready.set()
        log.info("truthstream worker ready: %s", json.dumps(s.masked(), default=str))

    async def place_inputs(self, consumer: Any, committed: Mapping[TP, int]) -> dict[TP, int]:
        """Where to read the assigned input partitions from: the positions Redis holds (see
        `positions`). Ends the worker with one line (exit code 2) where Redis lost state Kafka no
        longer holds, unless TRUTHSTREAM_STATE_LOSS=resume."""
        s = self.settings
        inputs = {tp: (tp.topic, tp.partition) for tp in committed if tp.topic in (s.inference_topic, s.label_topic)}
        if not inputs:
            return {}
        await self.ready.wait()
        store = self.store
        if store is None:
            raise RuntimeError("the worker service is used before it started")

        async def earliest(_: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
            found = await consumer.earliest_offsets(*inputs)
            return {inputs[tp]: int(offset) for tp, offset in found.items() if tp in inputs}

        async def decide() -> dict[tuple[str, int], int]:
            try:
                return await place(
                    list(inputs.values()),
                    {key: committed[tp] for tp, key in inputs.items()},
                    store.positions,
                    earliest,
                    s.state_loss,
                )
            except StateError as exc:  # no bug, and no outage to wait out: one line, and stop
                exit_on_bug(str(exc), exc_info=False, code=CONFIG_EXIT_CODE)
                raise  # not reached: exit_on_bug ends the process

        where = await retrying(decide)
        return {tp: where[key] for tp, key in inputs.items()}

    async def on_stop(self) -> None:
        """Close the Redis client and the engine."""
        if self.redis is not None:
            await self.redis.aclose()
        if self.engine is not None:
            await self.engine.close()

    def _engine(self) -> Batches:
        if self.engine is None:
            raise RuntimeError("the worker service is used before it started")
        return self.engine

    async def submit(self, messages: list[RawMessage], handled: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        """Hand one batch to the engine; the future returned is done once the engine handled it,
        its outcome was recorded and `handled` (the batch's acknowledgement) ran."""
        await self.ready.wait()  # agents may start consuming before this service finished starting
        engine = self._engine()
        self.last_input = time.monotonic()
        started = time.perf_counter()
        async with self.lock:
            reply = await engine.begin(messages, time.time())
        return asyncio.ensure_future(self._handled(messages, reply, started, handled))

    async def _handled(
        self,
        messages: list[RawMessage],
        reply: Awaitable[BatchReport],
        started: float,
        handled: Callable[[], Awaitable[None]],
    ) -> None:
        report = await reply
        if self.prometheus is not None:  # the readings only Prometheus needs stay off the batch path otherwise
            for msg in messages:
                self.positions[msg.topic, msg.partition] = msg.offset + 1
            self.prometheus.batch(report, time.perf_counter() - started)
            label_times = [m.timestamp for m in messages if m.side == LABEL and m.timestamp is not None]
            if report.queued and label_times and report.outcomes[LABEL, "joined"]:
                self.unpublished_labels.append(min(label_times))
        if report.queued:  # else nothing new to publish; what others left, the next tick (1 s) sends
            self.publish_wanted.set()
        if report.closed_windows or report.dead_letters or report.accounting_records:
            log.info("batch: %s", report)
        if report.late:
            log.warning(
                "%d pairs were late: their windows had already closed%s; they are counted as late",
                report.late,
                " (TRUTHSTREAM_IDLE_CLOSE moves event time to the wall clock after idleness: data of the past "
                "arriving after it is late)"
                if self.settings.idle_close
                else "",
            )
        await handled()

    async def flush(self) -> int:
        """Publish the outbox (see `Publisher`)."""
        if self.publisher is None:
            raise RuntimeError("the worker service is used before it started")
        return await self.publisher.flush()

    @mode.Service.task
    async def _publishing(self) -> None:
        """Publish the outbox whenever a batch queued records (or a tick asks), beside the batches:
        the outbox is in Redis, so the next batch need not wait for Kafka's acknowledgements."""
        await self.ready.wait()
        while not self.should_stop:
            await self.publish_wanted.wait()
            self.publish_wanted.clear()
            waiting, self.unpublished_labels = self.unpublished_labels, []
            await retrying(self.flush)  # publishes every record queued before it started
            if self.prometheus is not None:
                self.prometheus.labels_published(waiting)

    async def tick(self) -> None:
        """Periodic: republish a leftover outbox, close windows after idleness, sweep every owned
        partition's waiting entries that event time passed."""
        if not self.ready.is_set():
            return
        async with self.lock:
            idle_for = time.monotonic() - self.last_input
            if self.settings.idle_close and idle_for >= self.settings.idle_close:
                engine = self._engine()
                await engine.idle(time.time())
            if time.monotonic() - self.last_sweep >= SWEEP_SECONDS:
                self.last_sweep = time.monotonic()
                await self._sweep()
        self.publish_wanted.set()
        if self.prometheus is not None:
            await self._observe_state(self.prometheus)

    async def _sweep(self) -> None:
        owned = {tp.partition for tp in self.app.consumer.assignment()}
        if not owned:
            return
        report = await self._engine().sweep(owned)
        if self.prometheus is not None:
            self.prometheus.outcomes(report)
        if report.outcomes or report.queued:
            log.info("sweep of partitions %s: %s", sorted(owned), report)

    async def _observe_state(self, prometheus: PrometheusMetrics) -> None:
        """Readings for Prometheus: a Redis round trip, waiting entries, lag of owned partitions.
        Best effort: a failed reading leaves the last one (the batches report outages loudly)."""
        if self.store is None:
            return
        try:
            started = time.perf_counter()
            await self.redis.ping()
            prometheus.redis_seconds.observe(time.perf_counter() - started)
            waiting = await self.store.waiting()
            if time.monotonic() - self.last_size >= SIZE_SECONDS:
                self.last_size = time.monotonic()
                prometheus.state_size(await self.store.sizes(), await used_memory(self.redis))
        except Exception as exc:  # noqa: BLE001 - a reading must never stop the worker; batches say why loudly
            log.debug("prometheus: reading Redis failed (%s)", exc)
            return
        lag: dict[tuple[str, int], int | None] = {}
        consumer = self.app.consumer
        for tp in consumer.assignment():
            try:
                end = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not known yet (no fetch answered), or no longer assigned
                end = None
            done = self.positions.get((tp.topic, tp.partition))
            # brokers whose offset answers are wrong (tansu) can give an end before what was read: unknown
            lag[tp.topic, tp.partition] = end - done if end is not None and done is not None and end >= done else None
        prometheus.state(waiting, lag)
