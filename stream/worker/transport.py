"""faust-streaming's Kafka transport with a configurable broker-side fetch wait.

faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and no setting to
change it. Apache Kafka answers a waiting fetch as soon as data arrives, so the wait
costs nothing there; some Kafka-compatible brokers (tansu, the embedded default) hold
every fetch for the full wait, which then becomes the floor of the monitor's freshness
(measured: 400 ms median, 750 ms p99 at 1.5 s; 28 / 55 ms at 0.1 s). A short wait costs
an empty fetch round trip per wait while the topics are idle.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this attribute to its Fetcher in start(), which comes after this call.
        consumer._fetch_max_wait_ms = self.transport.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport, its consumer waiting at most `fetch_max_wait_ms` per fetch."""

    Consumer = _Consumer
    fetch_max_wait_ms = 100


class App(faust.App):
    """A faust App whose `kafka://` transport takes `fetch_wait` (seconds) as its fetch wait."""

    def __init__(self, *args: Any, fetch_wait: float = 0.1, **kwargs: Any) -> None:
        self.fetch_wait = fetch_wait
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        url = self.conf.broker_consumer[0]
        if drivers.by_url(url) is not faust_aiokafka.Transport:
            return super()._new_transport()
        transport = Transport(self.conf.broker_consumer, self)
        transport.fetch_max_wait_ms = max(1, int(self.fetch_wait * 1000))
        return transport
