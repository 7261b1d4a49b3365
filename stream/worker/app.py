"""The Faust app: one agent over the inference and label topics, feeding batches to the worker service."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from typing import Any

import faust
from faust.types import Message

from stream.core.catalog import Catalog
from stream.core.records import INFERENCE, LABEL, RawMessage, Side
from stream.settings import Settings
from stream.worker.batching import acknowledge, take_ahead
from stream.worker.runtime import collect_garbage_rarely, use_fast_event_loop
from stream.worker.service import WorkerService, preflight
from stream.worker.transport import App

# Faust's defaults (60 s session) make a restarted worker wait a minute for its dead
# predecessor to leave the group; 10 s keeps a SIGKILL-and-restart within seconds.
SESSION_TIMEOUT_S = 10.0
HEARTBEAT_S = 2.0


def faust_app(settings: Settings) -> App:
    """A Faust app configured as truthstream runs it (raw bytes, earliest offsets, short sessions)."""
    return App(
        settings.app_id,
        fetch_wait=settings.fetch_wait,
        broker=settings.broker,
        broker_credentials=settings.kafka().faust_credentials(),
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


def create_app(
    settings: Settings, catalog: Catalog, partitions: int, log_level: str = "info"
) -> tuple[faust.App, WorkerService]:
    """The Faust app, one agent over the inference and label topics (co-partitioned by event id),
    and the service to start beside it (pass both to `faust.Worker`)."""
    app = faust_app(settings)
    service = WorkerService(app, settings, catalog, partitions, log_level)
    app.place_inputs = service.place_inputs
    inputs = input_topics(app, settings)
    side_of: dict[str, Side] = {settings.inference_topic: INFERENCE, settings.label_topic: LABEL}

    @app.agent(inputs, name="monitor")
    async def monitor_agent(stream: faust.StreamT[Any]) -> None:
        # At most two batches are with the engine: it can start on the next while this process
        # records and acknowledges the last (each batch is acknowledged once handled).
        previous: asyncio.Future[None] | None = None
        async for events in take_ahead(stream, settings.batch_size, settings.batch_timeout, acks=False):
            messages = [_raw(e.message, side_of) for e in events]
            handled = await service.submit(messages, functools.partial(acknowledge, stream, events))
            if previous is not None:
                await previous
            previous = handled

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust's timer carries no types
    async def housekeeping() -> None:
        await service.tick()

    return app, service


def _raw(message: Message, side_of: dict[str, Side]) -> RawMessage:
    """A Kafka message as the core reads it (a timestamp of 0 or less is no timestamp)."""
    stamp = message.timestamp
    return RawMessage(
        side_of[message.topic],
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        stamp if stamp and stamp > 0 else None,
    )


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT (connectors.exits.INTERRUPTED)


def run_worker(settings: Settings, log_level: str = "info") -> int:
    """Load the catalog (constraints), then run a Faust worker until it is stopped."""
    catalog = settings.catalog()
    partitions = preflight(settings)
    use_fast_event_loop()
    app, service = create_app(settings, catalog, partitions, log_level)
    worker = _Worker(app, service, loglevel=log_level, quiet=True)
    collect_garbage_rarely()
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if worker.interrupted:
            return INTERRUPTED_EXIT_CODE  # Ctrl-C, as every command; SIGTERM stays 0
        raise
    return 0


class _Worker(faust.Worker):
    """Faust's worker, remembering whether Ctrl-C (SIGINT) stopped it."""

    interrupted = False

    def _on_sigint(self) -> None:
        self.interrupted = True
        super()._on_sigint()
