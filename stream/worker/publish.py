"""Publishing the outbox: every queued output goes to its topic, and one the broker will never take
(too large, a topic that cannot exist or is forbidden) is reported as undeliverable instead of
blocking the outbox forever. Transient errors stop the flush, to be retried as an outage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from stream.core.contract import StateStore
from stream.core.state import DEAD_LETTER, Output

log = logging.getLogger("truthstream.worker")

SIZE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError)
# Errors after which sending the same record again can never succeed.
PERMANENT = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    CorruptRecordException,
)


def permanent_cause(exc: BaseException) -> KafkaError | None:
    """The Kafka error behind a failed send if retrying cannot help (faust wraps the client's own)."""
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, PERMANENT):
            return candidate
    return None


def undeliverable(output: Output, topic: str, payload: bytes, cause: BaseException) -> dict[str, Any]:
    """The small dead letter that stands for an output the broker refused for good."""
    return {
        "reason": f"undeliverable {output.channel} record for topic {topic}: {type(cause).__name__}: {cause}"[:500],
        "field": None,
        "topic": topic,
        "partition": None,
        "offset": None,
        "key": output.key[:1024],
        "value": None,
        "value_base64": "",
        "value_bytes": len(payload),
        "value_sha256": hashlib.sha256(payload).hexdigest(),
        "value_truncated": True,
        "undeliverable": True,
    }


class Publisher:
    """Sends the store's outbox with the app's producer, a page at a time, and trims what was sent."""

    def __init__(
        self,
        producer: Any,
        store: StateStore,
        topics: dict[str, str],
        observe: Callable[[list[Output]], None] | None = None,
        refused: Callable[[], None] | None = None,
    ) -> None:
        self.producer, self.store, self.topics = producer, store, topics
        self.observe = observe  # told of every page Kafka acknowledged
        self.refused = refused  # told of every output replaced by an undeliverable dead letter
        self.undeliverable = 0

    def topic(self, output: Output) -> str:
        """Where an output goes; a channel the settings do not name is a topic (outbox rows of truthstream 0.1)."""
        return self.topics.get(output.channel, output.channel)

    async def _hand_over(self, topic: str, key: str, payload: bytes) -> Awaitable[Any]:
        """Queue one record in the producer; the awaitable returned gives Kafka's answer."""
        answer: Awaitable[Any] = await self.producer.send(topic, key.encode(), payload, None, None, None)
        return answer

    async def _send(self, topic: str, key: str, payload: bytes) -> Any:
        return await (await self._hand_over(topic, key, payload))

    async def flush(self) -> int:
        """Publish the outbox and drop what Kafka acknowledged (or refused for good); returns how many."""
        sent = 0
        while True:
            pending = await self.store.pending_outbox()
            if not pending:
                return sent
            payloads = [o.payload for o in pending]
            results = await self._send_page(pending, payloads)
            for output, payload, result in zip(pending, payloads, results):
                if isinstance(result, BaseException):
                    cause = permanent_cause(result)
                    if cause is None:
                        raise result  # transient: the caller retries the page (duplicates are byte-identical)
                    if isinstance(cause, SIZE_ERRORS):
                        # the broker's limit is on a batch: a small record batched with a large one
                        # is refused with it, so each is tried once more on its own first
                        cause = await self._alone(output, payload)
                    if cause is not None:
                        await self._report(output, payload, cause)
            await self.store.confirm_outbox(len(pending))
            if self.observe is not None:
                self.observe(pending)
            sent += len(pending)
            if len(pending) < self.store.outbox_page:  # the last page; what came since goes with the next flush
                return sent

    async def _send_page(self, pending: list[Output], payloads: list[bytes]) -> list[Any]:
        """Hand a page's records to the producer in order, then wait for all of Kafka's answers: per
        record, its metadata or the error that stopped it (one future each; a task per record cost
        more than the send)."""
        loop = asyncio.get_running_loop()
        answers: list[Awaitable[Any]] = []
        for output, payload in zip(pending, payloads):
            try:
                answers.append(await self._hand_over(self.topic(output), output.key, payload))
            except Exception as exc:  # noqa: BLE001 - sorted with the errors of the answers
                refused = loop.create_future()
                refused.set_exception(exc)
                answers.append(refused)
        return await asyncio.gather(*answers, return_exceptions=True)

    async def _alone(self, output: Output, payload: bytes) -> KafkaError | None:
        """Send one record by itself, awaited before anything else is sent from here; None once
        Kafka acknowledged it, else the error that refuses it for good."""
        try:
            await self._send(self.topic(output), output.key, payload)
        except Exception as exc:
            cause = permanent_cause(exc)
            if cause is None:
                raise
            return cause
        return None

    async def _report(self, output: Output, payload: bytes, cause: BaseException) -> None:
        """Dead-letter a stand-in for an output the broker refused for good, and say so loudly."""
        topic = self.topic(output)
        self.undeliverable += 1
        if self.refused is not None:
            self.refused()
        log.error(
            "the broker refused a %s record of %d bytes for topic %s for good (%s): "
            "it is replaced by an 'undeliverable' dead letter (%d so far)",
            output.channel,
            len(payload),
            topic,
            cause,
            self.undeliverable,
        )
        letter = undeliverable(output, topic, payload, cause)
        try:
            await self._send(self.topics[DEAD_LETTER], output.key[:1024], json.dumps(letter).encode())
        except Exception as exc:
            if permanent_cause(exc) is None:
                raise
            log.critical("the dead-letter topic refused the undeliverable record too (%s); it is dropped", exc)
