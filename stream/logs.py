"""The one logging set-up: diagnostics go to stderr through `logging` (secrets redacted); results are
printed to stdout."""

from __future__ import annotations

import logging
import sys

from stream.redact import RedactingFilter

# Libraries that log every connection at INFO: only their problems are worth a user's attention
# (aiokafka stays: its INFO lines say which partitions a worker was assigned).
QUIET_LIBRARIES = ("kafka", "matplotlib", "botocore", "urllib3")


def setup_logging(level: str = "info") -> None:
    """Send log records of `level` and above to stderr, one line each."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    install_redaction()
    if level.lower() != "debug":
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)
        # kafka-python logs every failed connection attempt at ERROR while it retries; the command
        # reports what it means in one line (--log-level debug shows them all).
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


def install_redaction() -> None:
    """Redact every record the root logger's handlers emit (again after a framework, such as faust's
    worker, replaced them with its own)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
