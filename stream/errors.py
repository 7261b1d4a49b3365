"""The one exception hierarchy of truthstream; every message says what to fix."""

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
