"""The framework's limit: a faust-streaming agent over the same topics that only counts.

It batches exactly as the truthstream worker does (`take_ahead`) and reports its count to
Redis once per batch, so the benchmark measures both the same way.
Run: python bench/noop_app.py (settings from TRUTHSTREAM_* variables).
"""

from __future__ import annotations

import faust
import redis.asyncio as aioredis

from stream.settings import Settings
from stream.worker.app import faust_app, input_topics
from stream.worker.batching import take_ahead
from stream.worker.runtime import collect_garbage_rarely, use_fast_event_loop


def main() -> None:
    settings = Settings.from_env()
    use_fast_event_loop()  # the same event loop as the worker's
    app = faust_app(settings)  # configured exactly as the worker's
    topics = input_topics(app, settings)
    counter = f"{settings.redis_prefix}:noop-count"

    @app.agent(topics)
    async def count(stream: faust.StreamT) -> None:
        client = aioredis.from_url(settings.redis_url)
        async for events in take_ahead(stream, settings.batch_size, settings.batch_timeout):
            await client.incrby(counter, len(events))

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    collect_garbage_rarely()  # and the same garbage collection
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
