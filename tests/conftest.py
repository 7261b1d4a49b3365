"""Shared fixtures: services come from TRUTHSTREAM_TEST_* variables, else embedded ones are started."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from connectors.embedded import embedded_kafka, embedded_redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: TRUTHSTREAM_TEST_REDIS_URL, or an embedded redis-server for the session."""
    url = os.environ.get("TRUTHSTREAM_TEST_REDIS_URL")
    if url:
        yield url
        return
    with embedded_redis() as started:
        yield started


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A real Kafka broker: TRUTHSTREAM_TEST_BROKER, or an embedded tansu for the session."""
    url = os.environ.get("TRUTHSTREAM_TEST_BROKER")
    if url:
        yield url
        return
    with embedded_kafka() as started:
        yield started


@pytest.fixture
def unique() -> str:
    """A name no other test uses (topics, prefixes, consumer groups)."""
    return uuid.uuid4().hex[:10]
