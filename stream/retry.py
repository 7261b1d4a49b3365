"""The one retry policy: back off from a first delay, doubling up to a longest, and say so in the log."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stream.errors import DeliveryError

log = logging.getLogger("truthstream.retry")


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: `first_s`, doubling up to `longest_s`."""

    first_s: float
    longest_s: float


# The worker waits out a Redis or Kafka outage with its stream stalled: a short ceiling lets it
# resume within seconds of the service's return.
OUTAGE = Backoff(0.5, 10.0)
# Sinks wait for S3 or a webhook endpoint that may be down for minutes; nothing else waits on them.
DELIVERY = Backoff(0.5, 30.0)


class Retry:
    """Counts the failed attempts at one piece of work and says how long to wait before the next.

    Callers keep their own loop (sync or async): `delay = retry.failed(exc)`, then sleep.
    """

    def __init__(self, what: str, backoff: Backoff, attempts: int = 0) -> None:
        self.what, self.backoff, self.attempts = what, backoff, attempts
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Log the failure and return the delay before the next attempt; after the last allowed
        attempt (`attempts`, 0: never give up) raise DeliveryError instead."""
        self.failures += 1
        if self.attempts and self.failures >= self.attempts:
            raise DeliveryError(f"{self.what} failed {self.failures} times, last: {exc}") from None
        delay: float = min(self.backoff.first_s * 2 ** (self.failures - 1), self.backoff.longest_s)
        log.warning("%s failed (%s); retrying in %.1f s", self.what, exc, delay)
        return delay
