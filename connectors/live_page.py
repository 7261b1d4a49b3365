"""`truthstream dashboard`'s server: follows the metrics and violations topics from a time (outside
any consumer group: it commits nothing, so every start shows the same) and serves a page that draws
them, pushing each new record to open pages as a server-sent event. Nothing is stored but the
records read since the start time, in memory (the newest MAX_RECORDS)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections import deque
from importlib import resources
from typing import Any

from aiohttp import web

from stream.core.catalog import Catalog
from stream.errors import ConfigError
from stream.redact import redact
from stream.settings import Settings

log = logging.getLogger(__name__)

MAX_RECORDS = 50_000  # a week of hourly windows for about 300 model versions, with their violations
KEEPALIVE_S = 15.0


def thresholds(catalog: Catalog) -> dict[str, Any]:
    """The constraints the page draws: per model (and `*` for the default set), metric -> threshold
    and comparison operator."""
    sets = dict(catalog.per_model)
    if catalog.default is not None:
        sets["*"] = catalog.default
    return {
        model: {c.metric_name: {"threshold": c.threshold, "operator": c.comparison_operator} for c in cs.constraints}
        for model, cs in sets.items()
    }


class Feed:
    """The records read so far, and the pages listening for more; fed from a reader thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self.listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self.error: str | None = None

    def add(self, event: dict[str, Any]) -> None:
        """Called from the reader thread."""
        self.loop.call_soon_threadsafe(self._add, event)

    def fail(self, message: str) -> None:
        """Called from the reader thread when it stopped: the pages show why."""
        self.error = message
        self.add({"type": "error", "message": message})

    def _add(self, event: dict[str, Any]) -> None:
        self.records.append(event)
        for queue in self.listeners:
            queue.put_nowait(event)


def read_topics(settings: Settings, from_s: float | None, feed: Feed, stop: threading.Event) -> None:
    """Follow the metrics and violations topics into the feed until `stop` is set."""
    from connectors.consumers import records, topic_reader

    kinds = {settings.metrics_topic: "metrics", settings.violations_topic: "violation"}
    consumer = None
    try:
        consumer = topic_reader(settings, list(kinds), from_s)
        for message in records(consumer, follow=True, from_s=from_s, stop=stop, what="dashboard"):
            try:
                value = json.loads(message.value)
            except ValueError:
                log.warning("skipping a record that is not JSON at %s:%d", message.topic, message.offset)
                continue
            feed.add({"type": kinds[message.topic], "record": value})
    except Exception as exc:
        feed.fail(redact(f"reading Kafka failed: {exc}"))
        # One line; the traceback with --log-level debug.
        log.error("reading the topics failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
    finally:
        if consumer is not None:
            consumer.close()


def application(feed: Feed, constraints: dict[str, Any], title: str) -> web.Application:
    """The page, its event stream and a JSON snapshot."""
    page = resources.files("connectors").joinpath("live_page.html").read_text(encoding="utf-8")

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page.replace("{{title}}", title), content_type="text/html")

    async def snapshot(_: web.Request) -> web.Response:
        return web.json_response(
            _finite({"constraints": constraints, "records": list(feed.records), "error": feed.error})
        )

    async def events(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await reply.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        feed.listeners.add(queue)
        try:
            await reply.write(_event({"type": "constraints", "constraints": constraints}))
            for event in list(feed.records):
                await reply.write(_event(event))
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await reply.write(b": keep-alive\n\n")
                    continue
                await reply.write(_event(event))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feed.listeners.discard(queue)
        return reply

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/events", events), web.get("/api/snapshot", snapshot)])
    return app


def _finite(value: Any) -> Any:
    """JSON for a browser: records may hold NaN (a metric undefined on its window), which it cannot parse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(_finite(data), allow_nan=False, default=str)}\n\n".encode()


async def serve(settings: Settings, host: str, port: int, from_s: float | None, started: Any = None) -> None:
    """Serve the page until cancelled; `started(url)` is called once it listens."""
    loop = asyncio.get_running_loop()
    feed, stop = Feed(loop), threading.Event()
    reader = threading.Thread(target=read_topics, args=(settings, from_s, feed, stop), daemon=True)
    runner = web.AppRunner(application(feed, thresholds(settings.catalog()), settings.metrics_topic), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}; give another --port"
        ) from None
    reader.start()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
    if started is not None:
        started(url)
    try:
        await asyncio.Event().wait()
    finally:
        stop.set()
        await runner.cleanup()


def serve_in_background(settings: Settings, host: str, port: int, from_s: float | None) -> str:
    """Serve the page from a daemon thread (for `truthstream demo --dashboard`); returns its URL."""
    ready: list[str] = []
    started = threading.Event()

    def run() -> None:
        def on_start(url: str) -> None:
            ready.append(url)
            started.set()

        try:
            asyncio.run(serve(settings, host, port, from_s, on_start))
        finally:
            started.set()

    threading.Thread(target=run, daemon=True, name="truthstream-dashboard").start()
    started.wait(30)
    if not ready:
        raise OSError(f"the dashboard could not listen on {host}:{port}")
    return ready[0]
