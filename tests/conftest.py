"""Shared fixtures: services come from TRUTHSTREAM_TEST_* variables, else embedded ones are started."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from connectors.embedded import embedded_kafka, embedded_redis


def _service(variable: str, start: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    url = os.environ.get(variable)
    if url:
        yield url
        return
    with start() as started:
        yield started


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: TRUTHSTREAM_TEST_REDIS_URL, or an embedded redis-server for the session."""
    yield from _service("TRUTHSTREAM_TEST_REDIS_URL", embedded_redis)


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A real Kafka broker: TRUTHSTREAM_TEST_BROKER, or an embedded tansu for the session."""
    yield from _service("TRUTHSTREAM_TEST_BROKER", embedded_kafka)


@pytest.fixture
def unique() -> str:
    """A name no other test uses (topics, prefixes, consumer groups)."""
    return uuid.uuid4().hex[:10]
