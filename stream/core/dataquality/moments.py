"""Count, mean and second central moment by Spark's recurrence (CentralMomentAgg), whose population
standard deviation SageMaker reports: a two-pass or river's recurrence differ in the last digits."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Moments:
    """n, the running mean and m2 (the sum of squared deviations), updated value by value."""

    n: float = 0.0
    avg: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        """One value."""
        self.n += 1.0
        delta = x - self.avg
        delta_n = delta / self.n
        self.avg += delta_n
        self.m2 += delta * (delta - delta_n)

    def merge(self, other: Moments) -> None:
        """Another part's moments (Chan's formula, as Deequ sums its states)."""
        n = self.n + other.n
        if n == 0:
            return
        if self.n == 0:  # Chan's formula would move the mean's last digit
            self.avg, self.m2, self.n = other.avg, other.m2, other.n
            return
        delta = other.avg - self.avg
        delta_n = delta / n
        self.avg += delta_n * other.n
        self.m2 += other.m2 + delta * delta_n * self.n * other.n
        self.n = n

    @property
    def std_dev(self) -> float:
        """The population standard deviation."""
        return math.sqrt(self.m2 / self.n) if self.n else math.nan
