"""The one retry policy: delays double up to a ceiling, each failure is logged, and a bounded retry gives up."""

from __future__ import annotations

import logging

import pytest

from stream.errors import DeliveryError
from stream.retry import Backoff, Retry


def test_delays_double_up_to_the_ceiling_and_each_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """0.5, 1, 2, 4, 8, then 10 s forever; every failure says what failed and when it is tried again."""
    retry = Retry("POST http://x", Backoff(0.5, 10.0))
    with caplog.at_level(logging.WARNING, logger="truthstream.retry"):
        delays = [retry.failed(OSError("refused")) for _ in range(7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert caplog.messages[0] == "POST http://x failed (refused); retrying in 0.5 s"


def test_a_bounded_retry_gives_up_with_the_last_error() -> None:
    """With attempts=3 the third failure raises DeliveryError naming the work and the cause."""
    retry = Retry("writing s3://b/k", Backoff(0.1, 1.0), attempts=3)
    retry.failed(OSError("a"))
    retry.failed(OSError("b"))
    with pytest.raises(DeliveryError, match=r"writing s3://b/k failed 3 times, last: c"):
        retry.failed(OSError("c"))
