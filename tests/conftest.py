"""Shared fixtures: services come from TRUTHSTREAM_TEST_* variables, else embedded ones are started.

Two tiers: `python -m pytest -m "not integration"` needs no service (the core, the memory
store, the commands' parsing; the fast tier also leaves out `slow`); every test that uses a
real service is marked `integration` and with the service's marker (`kafka`, `redis`, `s3`,
...), explicitly or, through the fixtures that start or name the service, here. `.ci/run`
selects its stages by these markers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

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


# The service each fixture starts or names, as the marker of the tests that use it.
SERVICE_FIXTURES = {"broker": "kafka", "redis_url": "redis", "secure_redis": "redis_tls", "s3_url": "s3"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the services its fixtures need, and each of those as an integration test."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in SERVICE_FIXTURES.items():
            if fixture in used:
                item.add_marker(marker)
                item.add_marker(pytest.mark.integration)


def debian_program(name: str, package: str) -> str:
    """The path of a program from a Debian package the test needs (Prometheus, Chromium). Missing, the
    test is skipped with how to get it; in CI (`CI` set, where `.ci/run` installs it) it fails."""
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: apt-get install {package} (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_until(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    broken: Callable[[], str | None] = lambda: None,
    context: Callable[[], str] = lambda: "",
) -> Any:
    """Poll `check` every second until it returns something truthy, and return that; fail the test
    when `broken()` says why waiting is pointless, or after `timeout`, with `context()` (logs)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        problem = broken()
        if problem:
            pytest.fail(f"{problem} while waiting for {what}:\n{context()}")
        found = check()
        if found:
            return found
        time.sleep(1.0)
    pytest.fail(f"timed out waiting for {what}:\n{context()}")


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def make(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A factory of engine harnesses over the parametrised store: every test that takes it runs once
    on the in-memory store and once on a real Redis (see `tests.harness`)."""
    from tests.harness import Harness, base_settings

    def factory(settings: Any = None, catalog: Any = None, partitions: int = 1) -> Harness:
        url = request.getfixturevalue("redis_url") if request.param == "redis" else None
        return Harness(
            request.param, settings or base_settings(), catalog, partitions, url, prefix=f"t-{uuid.uuid4().hex[:8]}"
        )

    return factory
