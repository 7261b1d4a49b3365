"""The outbox: each partition's list `o` of records to publish, kept as the bytes that are published.

A row is `<channel> SEP <key length> SEP <key><payload>`: the payload is the record's JSON exactly as it
goes to Kafka, written once when the record is queued and never decoded to be published. Rows of
earlier versions (a JSON object with `kind`, key and value) still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from stream.core.records import SEP
from stream.core.state import Output
from stream.stores.redis import scripts
from stream.stores.redis.codec import text
from stream.stores.redis.partitions import Partitions

PAGE = 1000  # outbox rows read per partition and round


def rows(outputs: Iterable[Output]) -> list[str]:
    """Outbox rows of these outputs."""
    return [f"{o.channel}{SEP}{len(o.key)}{SEP}{o.key}{o.payload.decode()}" for o in outputs]


def output(row: bytes | str) -> Output:
    """The output an outbox row holds."""
    line = row.decode() if isinstance(row, bytes) else row
    if line.startswith("{"):  # a row of truthstream 0.1: the record as JSON
        doc = json.loads(line)
        return Output(doc["kind"], doc["key"], doc["value"])
    channel, length, rest = line.split(SEP, 2)
    size = int(length)
    return Output.published(channel, rest[:size], rest[size:].encode())


class Outbox:
    """Queues, reads and trims the partitions' outboxes."""

    page = PAGE

    def __init__(self, partitions: Partitions) -> None:
        self.partitions = partitions
        self._pages: list[tuple[int, list[bytes]]] = []  # the pages last read, to confirm

    async def enqueue(self, outputs: list[Output]) -> None:
        """Queue outputs (in the first partition's outbox)."""
        queued = rows(outputs)
        if queued:
            await self.partitions.client.rpush(self.partitions.keys.of(0, "o"), *queued)

    async def pending(self) -> list[Output]:
        """Queued outputs not yet confirmed (the first page of every partition's outbox)."""
        keys = self.partitions.keys
        reads: list[Any] = [
            lambda pipe, p=p: pipe.lrange(keys.of(p, "o"), 0, PAGE - 1) for p in range(self.partitions.count)
        ]
        pages = await self.partitions.run([], reads)
        self._pages = [(p, page) for p, page in enumerate(pages) if page]
        return [output(row) for _, page in self._pages for row in page]

    async def confirm(self, count: int) -> None:
        """Drop the first `count` entries of the pages last read: Kafka has them. Workers share
        outboxes, so entries are dropped only if they still head theirs; if another worker published
        and dropped them meanwhile, nothing is dropped (its copies were byte-identical)."""
        calls = []
        for p, page in self._pages:
            if count <= 0:
                break
            head = [text(row) for row in page[:count]]
            count -= len(head)
            calls.append(scripts.Call(scripts.CONFIRM, self.partitions.keys.of(p, "o"), (json.dumps(head),)))
        await self.partitions.run(calls)
