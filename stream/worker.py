"""The Faust worker: a thin shell that feeds Kafka batches to the engine and publishes its outbox."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from typing import Any

import faust
import mode
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.kafka import ensure_topics
from stream.catalog import Catalog
from stream.engine import Engine
from stream.errors import ConfigError
from stream.faust_transport import App
from stream.records import RawMessage
from stream.redis_store import OUTBOX_PAGE, RedisStore
from stream.settings import Settings

log = logging.getLogger("truthstream.worker")

# Faust's defaults (60 s session) make a restarted worker wait a minute for its dead
# predecessor to leave the group; 10 s keeps a SIGKILL-and-restart within seconds.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_S = 2.0
DEFAULT_PARTITIONS = 4  # partitions for topics the worker has to create itself
RETRY_FIRST_S = 0.5  # first back-off while Redis or Kafka is down; doubles up to RETRY_MAX_S
RETRY_MAX_S = 10.0
OUTAGES = (RedisConnectionError, RedisTimeoutError, ProducerSendError, KafkaError, OSError)


class Monitor(mode.Service):
    """Owns the Redis client and the engine for the life of the worker."""

    def __init__(self, app: faust.App, settings: Settings, catalog: Catalog, **kwargs: Any) -> None:
        self.app, self.settings, self.catalog = app, settings, catalog
        self.engine: Engine | None = None
        self.redis: aioredis.Redis | None = None
        self.last_input = time.monotonic()
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        """Connect to Redis and learn the input topics' layout."""
        s = self.settings
        self.redis = aioredis.from_url(s.redis_url)
        try:
            await self.redis.ping()
        except Exception as exc:
            raise ConfigError(
                f"Redis at {s.masked()['redis_url']} does not answer ({exc}); check TRUTHSTREAM_REDIS_URL"
            ) from None
        counts = await asyncio.to_thread(
            ensure_topics,
            s.bootstrap_servers,
            [s.inference_topic, s.label_topic, s.metrics_topic, s.violations_topic, s.dead_letter_topic],
            DEFAULT_PARTITIONS,
        )
        if counts[s.inference_topic] != counts[s.label_topic]:
            raise ConfigError(
                f"topics {s.inference_topic} ({counts[s.inference_topic]} partitions) and "
                f"{s.label_topic} ({counts[s.label_topic]}) must have the same number of "
                "partitions, so that an inference and its label meet in one worker"
            )
        store = RedisStore(self.redis, s.redis_prefix, s.label_ttl, s.rolling_size, s.rolling_every, s.score_resolution)
        self.engine = Engine(s, self.catalog, store, counts[s.inference_topic])
        self.ready.set()
        log.info("truthstream monitor ready: %s", json.dumps(s.masked(), default=str))

    async def on_stop(self) -> None:
        """Close the Redis client."""
        if self.redis is not None:
            await self.redis.aclose()

    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the monitor is used before it started")
        return self.engine

    async def handle(self, messages: list[RawMessage]) -> None:
        """Process one batch and publish what it produced."""
        await self.ready.wait()  # agents may start consuming before this service finished starting
        engine = self._engine()
        self.last_input = time.monotonic()
        async with self.lock:
            report = await self._retrying(lambda: engine.process(messages))
            await self._retrying(self.flush)
        if report.closed_windows or report.dead_letters:
            log.info("batch: %s", report)

    async def _retrying(self, work: Any) -> Any:
        """Run `work` until it succeeds while Redis or Kafka are unreachable; stop the process on a bug.

        Faust acknowledges a batch even when the agent raises, so raising would lose it:
        an outage blocks the stream instead, and an unexpected error ends the process
        before the batch's offsets can be committed (restart it; nothing is lost).
        """
        delay = RETRY_FIRST_S
        while True:
            try:
                return await work()
            except OUTAGES as exc:
                log.warning("Redis or Kafka unavailable (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception:  # noqa: BLE001 - anything else is a bug: exit without committing
                log.critical("unexpected error; exiting without committing offsets", exc_info=True)
                logging.shutdown()
                os._exit(70)

    async def flush(self) -> int:
        """Publish the outbox and drop what Kafka acknowledged."""
        store = self._engine().store
        sent = 0
        while True:
            pending = await store.pending_outbox()
            if not pending:
                return sent
            futures = [
                await self.app.producer.send(o.topic, o.key.encode(), json.dumps(o.value).encode(), None, None, None)
                for o in pending
            ]
            await asyncio.gather(*futures)
            await store.confirm_outbox(len(pending))
            sent += len(pending)
            if len(pending) < OUTBOX_PAGE:  # the last page; what came since goes with the next flush
                return sent

    async def tick(self) -> None:
        """Periodic: republish a leftover outbox, close windows after idleness."""
        if not self.ready.is_set():
            return
        async with self.lock:
            idle_for = time.monotonic() - self.last_input
            if self.settings.idle_close and idle_for >= self.settings.idle_close:
                engine = self._engine()
                await self._retrying(lambda: engine.idle(time.time()))
            await self._retrying(self.flush)


def faust_app(settings: Settings) -> faust.App:
    """A Faust app configured as truthstream runs it (raw bytes, earliest offsets, short sessions)."""
    return App(
        settings.app_id,
        fetch_wait=settings.fetch_wait,
        broker=settings.broker,
        datadir=settings.data_dir or tempfile.mkdtemp(prefix="truthstream-"),
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_S,
        producer_acks=-1,
        topic_disable_leader=True,
    )


def input_topics(app: faust.App, settings: Settings) -> faust.TopicT:
    """The inference and label topics as one channel (co-partitioned by event id)."""
    return app.topic(settings.inference_topic, settings.label_topic, key_type=bytes, value_type=bytes)


def create_app(settings: Settings, catalog: Catalog) -> tuple[faust.App, Monitor]:
    """The Faust app, one agent over the inference and label topics (co-partitioned by event id),
    and the Monitor service to start beside it (pass both to `faust.Worker`)."""
    app = faust_app(settings)
    monitor = Monitor(app, settings, catalog)
    inputs = input_topics(app, settings)

    @app.agent(inputs, name="monitor")
    async def monitor_agent(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            await monitor.handle(
                [
                    RawMessage(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                    for e in events
                ]
            )

    @app.timer(interval=1.0)
    async def housekeeping() -> None:
        await monitor.tick()

    return app, monitor
