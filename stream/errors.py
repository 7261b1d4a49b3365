"""The one exception tree of truthstream; every message says what to fix.

    TruthstreamError
    ├── ConfigError       a setting, flag or service address that cannot work
    ├── ConstraintsError  a malformed constraints.json (names the file and the key)
    ├── RecordError       one input record that cannot be used (dead-lettered, never raised out of the worker)
    ├── InputError        a file, table or span of topics given to a command cannot be read as asked
    ├── OutputError       a file or directory given to a command cannot be written
    ├── StateError        the state store refuses a change or keeps conflicting
    │   └── StateLost     the state store went back in time (lost writes): recompute from the input
    └── DeliveryError     a destination (S3, a webhook) refuses what is sent to it

Commands turn a TruthstreamError into one line on stderr and exit code 2.
"""

from __future__ import annotations


class TruthstreamError(Exception):
    """Base class of every error truthstream raises on purpose."""


class ConfigError(TruthstreamError):
    """A setting is missing or has a value that cannot work."""


class ConstraintsError(TruthstreamError):
    """A constraints.json file is malformed; the message names the file and key."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        where = f" at key '{key}'" if key else ""
        super().__init__(f"{path}{where}: {problem}")


class RecordError(TruthstreamError):
    """An input record cannot be used; names the field and the reason."""

    def __init__(self, reason: str, field: str | None = None, model: str | None = None) -> None:
        self.reason, self.field, self.model = reason, field, model
        super().__init__(f"field '{field}': {reason}" if field else reason)


class InputError(TruthstreamError):
    """A file, table, directory or span of topics given to a command cannot be read as asked."""


class OutputError(TruthstreamError):
    """A file or directory given to a command cannot be written (names it and the reason)."""


class StateError(TruthstreamError):
    """The state store refuses a change or keeps conflicting with another writer."""


class DeliveryError(TruthstreamError):
    """A destination (S3, a webhook) refuses what is sent to it."""


class StateLost(StateError):
    """The state store holds less than was written to it (a Redis restarted without its data, one
    that lost its last writes, a failover to a lagging replica): the input must be read again from
    the positions the store holds."""
