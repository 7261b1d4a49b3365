"""`truthstream worker`: run the monitor against your Kafka and Redis."""

from __future__ import annotations

import argparse

from stream.settings import Settings

HELP = "run a monitor worker against your Kafka and Redis"
DESCRIPTION = (
    "Run a worker: consume inferences and labels, publish metrics, violations and dead letters. "
    "Run several with the same app id to split the partitions between them."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting."""
    Settings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Validate the settings and constraints, then run until stopped."""
    from stream.worker.app import run_worker

    return run_worker(Settings.from_args(args), args.log_level)
