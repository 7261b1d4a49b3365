"""The one retry policy: back off from a first delay, doubling up to a longest, and say so in the log."""

from __future__ import annotations

import logging

from stream.errors import DeliveryError

log = logging.getLogger("truthstream.retry")


class Retry:
    """Counts the failed attempts at one piece of work and says how long to wait before the next.

    Callers keep their own loop (sync or async): `delay = retry.failed(exc)`, then sleep.
    """

    def __init__(self, what: str, first_s: float, longest_s: float, attempts: int = 0) -> None:
        self.what, self.first_s, self.longest_s, self.attempts = what, first_s, longest_s, attempts
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Log the failure and return the delay before the next attempt; after the last allowed
        attempt (`attempts`, 0: never give up) raise DeliveryError instead."""
        self.failures += 1
        if self.attempts and self.failures >= self.attempts:
            raise DeliveryError(f"{self.what} failed {self.failures} times, last: {exc}") from None
        delay = min(self.first_s * 2 ** (self.failures - 1), self.longest_s)
        log.warning("%s failed (%s); retrying in %.1f s", self.what, exc, delay)
        return delay
