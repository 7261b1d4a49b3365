"""Where the worker's engine runs: in faust's process, or in a process of its own beside it.

faust's per-message work (fetching, decoding, the stream's bookkeeping) keeps one core busy and
holds the GIL while it does; the engine's work (the join step, the state's encoding, the Redis
client) is the rest of a worker's cost. In one process the two take turns; with the engine in a
second process they overlap on two cores: faust's process hands each batch over as plain tuples and
waits for the engine's report without holding the GIL, while the next batch fills (`take_ahead`).

Either way a batch is handled exactly as before: the engine waits out Redis outages, and a bug ends
the worker before faust can commit the batch's offsets (the engine process's end ends faust's
process too; a restart reads the batch again).
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import signal
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Protocol

from stream.core.catalog import Catalog
from stream.core.engine import BatchReport, Engine
from stream.core.records import RawMessage
from stream.logs import setup_logging
from stream.settings import Settings
from stream.stores.redis import RedisStore
from stream.stores.redis_connect import connect
from stream.worker.outages import STATE_LOST_ADVICE, STATE_LOST_EXIT_CODE, exit_on_bug, retrying
from stream.worker.runtime import collect_garbage_rarely, use_fast_event_loop

READY, PROCESS, IDLE, SWEEP = "ready", "process", "idle", "sweep"


def redis_store(settings: Settings, redis: Any, partitions: int) -> RedisStore:
    """The worker's state store over a connected Redis client."""
    s = settings
    return RedisStore(
        redis,
        s.redis_prefix,
        s.label_ttl,
        partitions,
        s.rolling_size,
        s.rolling_every,
        s.score_resolution,
        s.segment_cap,
    )


class Batches(Protocol):
    """Runs the engine's batches, waiting out outages; what `WorkerService` drives."""

    async def begin(self, messages: list[RawMessage], wall_clock: float) -> Awaitable[BatchReport]:
        """Hand one batch over (see `Engine.process`); the awaitable returned gives its report.
        Batches are handled in the order they were handed over."""

    async def idle(self, wall_clock: float) -> int:
        """Close what is due after idleness (see `Engine.idle`)."""

    async def sweep(self, partitions: set[int]) -> BatchReport:
        """Expire what event time passed in these partitions (see `Engine.sweep`)."""

    async def close(self) -> None:
        """Release the engine's connections (and process)."""


class LocalEngine:
    """The engine in this process, over a Redis client of its own."""

    def __init__(self, engine: Engine, redis: Any) -> None:
        self.engine, self.redis = engine, redis

    @classmethod
    async def open(cls, settings: Settings, catalog: Catalog, partitions: int) -> LocalEngine:
        """Connect to Redis and build the engine over it."""
        redis = await connect(settings.redis_url, settings.redis_cluster)
        store = redis_store(settings, redis, partitions)
        return cls(Engine(settings.core(), catalog, store, partitions), redis)

    async def process(self, messages: list[RawMessage], wall_clock: float) -> BatchReport:
        """Handle one batch (see `Engine.process`), waiting out outages."""
        return await retrying(lambda: self.engine.process(messages, wall_clock))

    async def begin(self, messages: list[RawMessage], wall_clock: float) -> Awaitable[BatchReport]:
        """Handle one batch now; the awaitable returned gives its report."""
        done = asyncio.get_running_loop().create_future()
        done.set_result(await self.process(messages, wall_clock))
        return done

    async def idle(self, wall_clock: float) -> int:
        """Close what is due after idleness (see `Engine.idle`), waiting out outages."""
        return await retrying(lambda: self.engine.idle(wall_clock))

    async def sweep(self, partitions: set[int]) -> BatchReport:
        """Expire what event time passed in these partitions (see `Engine.sweep`), waiting out outages."""
        return await retrying(lambda: self.engine.sweep(partitions))

    async def close(self) -> None:
        """Close the Redis client."""
        await self.redis.aclose()


class EngineProcess:
    """The engine in a child process. Requests go through one pipe in order, so the engine handles
    them in the order they were made; a new batch can be handed over while the previous one is
    still being handled (its bytes wait in the pipe), so the engine need not wait for Faust's
    process between batches."""

    def __init__(self, settings: Settings, catalog: Catalog, partitions: int, log_level: str) -> None:
        context = multiprocessing.get_context("spawn")  # a fork would copy faust's running event loop
        self.conn, child_end = context.Pipe()
        self.child = context.Process(
            target=serve,
            args=(child_end, settings, catalog, partitions, log_level),
            name="truthstream-engine",
            daemon=True,
        )
        self.child_end = child_end
        self.closing = False
        # Sending and receiving run on a thread each, in order: they wait on the pipe without
        # holding the GIL, and a large batch's send may wait for the engine to finish the last one.
        self.sender = ThreadPoolExecutor(1, thread_name_prefix="truthstream-engine-send")
        self.receiver = ThreadPoolExecutor(1, thread_name_prefix="truthstream-engine-receive")

    async def start(self) -> None:
        """Start the process and wait until it connected to Redis."""
        self.child.start()
        self.child_end.close()  # the child's end lives in the child only: its death reads as EOF here
        # Should this process exit without stopping its services, multiprocessing's exit handler
        # would wait for the child, which ignores SIGTERM and waits for EOF: give it its EOF first.
        atexit.register(self._hang_up)
        threading.Thread(target=self._watch, name="truthstream-engine-watch", daemon=True).start()
        await self._request(None)

    def _watch(self) -> None:
        """End this process as soon as the engine's ends (killed, out of memory, a bug), also between
        batches: a worker whose engine is gone must not look alive."""
        self.child.join()
        if not self.closing:
            self._ended()

    async def begin(self, messages: list[RawMessage], wall_clock: float) -> Awaitable[BatchReport]:
        """Hand one batch to the engine process; the awaitable returned gives its report."""
        rows = [(m.side, m.topic, m.partition, m.offset, m.key, m.value, m.timestamp) for m in messages]
        return self._request((PROCESS, rows, wall_clock))

    async def idle(self, wall_clock: float) -> int:
        """Ask the engine process to close what is due after idleness."""
        closed: int = await self._request((IDLE, wall_clock))
        return closed

    async def sweep(self, partitions: set[int]) -> BatchReport:
        """Ask the engine process to expire what event time passed in these partitions."""
        report: BatchReport = await self._request((SWEEP, sorted(partitions)))
        return report

    def _hang_up(self) -> None:
        self.closing = True
        self.conn.close()

    async def close(self) -> None:
        """End the engine process (it ends when its pipe closes) and wait for it briefly."""
        self._hang_up()
        atexit.unregister(self._hang_up)
        await asyncio.get_running_loop().run_in_executor(None, self.child.join, 5.0)
        self.sender.shutdown(wait=False)
        self.receiver.shutdown(wait=False)

    def _send(self, request: Any) -> None:
        try:
            self.conn.send(request)
        except OSError:
            pass  # the engine process is gone: the answer's receipt says so

    def _request(self, request: Any) -> Awaitable[Any]:
        """Send `request` (None: send nothing) and queue the receipt of its answer, both now, so
        that answers are matched to requests in order; the awaitable returned gives the answer."""
        if request is not None:
            self.sender.submit(self._send, request)
        return self._answer(asyncio.wrap_future(self.receiver.submit(self.conn.recv)))

    async def _answer(self, reply: Awaitable[Any]) -> Any:
        try:
            return await reply
        except (EOFError, OSError):
            if self.closing:
                raise  # the worker is stopping: the batch stays unacknowledged
            self._ended()
            raise  # not reached: _ended ends the process

    def _ended(self) -> None:
        # Its exit code says why it ended. The watching thread may be reaping it at this moment: a
        # second waitpid then finds no child and reads no code, so wait for that thread's to show.
        deadline = time.monotonic() + 5.0
        while self.child.exitcode is None and time.monotonic() < deadline:
            self.child.join(0.05)
        if self.child.exitcode == STATE_LOST_EXIT_CODE:
            exit_on_bug(
                f"the engine process found that Redis lost writes (its log line above says where); {STATE_LOST_ADVICE}",
                exc_info=False,
                code=STATE_LOST_EXIT_CODE,
            )
        exit_on_bug(
            f"the engine process ended (exit code {self.child.exitcode}; its log lines above say why); "
            "exiting without committing offsets (a restart reads the unfinished batch again)",
            exc_info=False,
        )


def serve(conn: Connection, settings: Settings, catalog: Catalog, partitions: int, log_level: str) -> None:
    """The engine process's main: answer requests until faust's process closes the pipe.

    Signals of a stop (Ctrl-C reaches the whole process group) are faust's process's to handle: it
    stops after the current batch, and its end closes the pipe, which ends this process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging(log_level)
    use_fast_event_loop()
    collect_garbage_rarely()
    asyncio.run(_serve(conn, settings, catalog, partitions))


async def _serve(conn: Connection, settings: Settings, catalog: Catalog, partitions: int) -> None:
    engine = await LocalEngine.open(settings, catalog, partitions)
    try:
        conn.send(READY)
        while True:
            # Blocking is right here: this process has nothing else to do between batches.
            request = conn.recv()
            if request[0] == PROCESS:
                _, rows, wall_clock = request
                report = await engine.process([RawMessage(*row) for row in rows], wall_clock)
            elif request[0] == SWEEP:
                report = await engine.sweep(set(request[1]))
            else:
                conn.send(await engine.idle(request[1]))
                continue
            conn.send(report)
    except (EOFError, BrokenPipeError):
        pass  # faust's process ended
    finally:
        await engine.close()
