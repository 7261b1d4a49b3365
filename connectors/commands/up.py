"""`truthstream up`: the real worker on this machine, with the embedded broker and Redis."""

from __future__ import annotations

import argparse

from connectors import exits
from connectors.options import add_dashboard_flag, port_or_any, positive_int
from stream.settings import Settings

HELP = "run the embedded broker, Redis and real workers here, and follow what they publish"
DESCRIPTION = (
    "Start the embedded Kafka-compatible broker (tansu) and redis-server, create the topics, start "
    "--workers worker processes with the settings given here, print the variables a producer needs, "
    "and print every closed window and violation until Ctrl-C, which stops everything. Nothing "
    "survives a stop: the embedded broker keeps topics in memory and Redis writes nothing to disk."
)
# The worker's settings, less where the broker and Redis are: `up` runs its own.
SETTINGS = ("inputs", "outputs", "app", "models", "windows", "limits", "capture", "worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """How many workers, which ports, and the workers' settings."""
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes in one consumer group (default 1)"
    )
    parser.add_argument(
        "--broker-port",
        type=port_or_any,
        default=9092,
        help="port of the embedded broker (default 9092; another if taken; 0: any free port)",
    )
    parser.add_argument(
        "--redis-port",
        type=port_or_any,
        default=6379,
        help="port of the embedded Redis (default 6379; another if taken; 0: any free port)",
    )
    parser.add_argument("--rolling", action="store_true", help="print rolling-window records too")
    add_dashboard_flag(parser, "beside the workers")
    Settings.add_arguments(parser, SETTINGS)


def run(args: argparse.Namespace) -> int:
    """Run until Ctrl-C; then stop the workers, Redis and the broker, and return 0."""
    import signal
    import threading

    from connectors.local_stack import local_stack
    from connectors.watch import Watcher
    from stream.errors import ConfigError

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least 1")
    names = _names()
    env = {f"TRUTHSTREAM_{k.upper()}": str(v) for k, v in vars(args).items() if k in names and v is not None}
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C
    interrupted: list[bool] = []
    try:
        with local_stack(env, args.workers, args.broker_port, args.redis_port) as stack:
            s = stack.settings
            print("truthstream up: the embedded broker, Redis and", args.workers, "worker(s) are running.")
            print("Send inference and label records (see the README's message contract) with:\n")
            print(f"  export TRUTHSTREAM_BROKER={stack.broker}")
            print(f"  export TRUTHSTREAM_REDIS_URL={stack.redis_url}")
            print(f"  # topics: {s.inference_topic}, {s.label_topic} -> {s.metrics_topic}, {s.violations_topic}, "
                  f"{s.dead_letter_topic}")  # fmt: skip
            print(
                f"\nWindows of {s.window_seconds:g} s of event time close {s.label_grace:g} s after they end "
                "(in event time: records from later on every partition close them); "
                f"windows under {s.min_samples} samples are reported, not judged."
            )
            if s.metrics_port:
                ports = ", ".join(str(s.metrics_port + i) for i in range(args.workers))
                print(f"Prometheus metrics of the workers on ports {ports} (/metrics).")
            if args.dashboard is not None:
                from connectors.live_page import serve_in_background

                print(f"The live page: {serve_in_background(s, '127.0.0.1', args.dashboard, None)}")
            print(f"Logs: {', '.join(str(log) for log in stack.logs())}")
            print("A worker or Redis that ends is started again (the workers rebuild Redis's state from the topics).")
            print("Nothing survives Ctrl-C: the embedded broker keeps topics in memory.\n", flush=True)
            watcher = Watcher(stack.kafka, s.metrics_topic, s.violations_topic, args.rolling)
            # From here a stop request sets a flag that the loop reads between polls: raised inside the
            # Kafka client's poll, KeyboardInterrupt could leave it unable to close, and the stack up.
            stopping = threading.Event()

            def stop(signum: int, _: object) -> None:
                interrupted.append(signum == signal.SIGINT)
                stopping.set()

            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, stop)
            try:
                while not stopping.is_set():
                    for line in watcher.poll(timeout_ms=500):
                        print(line, flush=True)
                    for note in stack.check():
                        print(note, flush=True)
                    stopping.wait(0.2)
            finally:
                watcher.close()
    except KeyboardInterrupt:
        interrupted.append(True)  # a stop while the stack was starting: it is stopped already
    print("\nstopped: workers, Redis and the broker are down.", flush=True)
    # Ctrl-C: 130, as every command; SIGTERM (a service manager's stop): 0.
    return exits.INTERRUPTED if any(interrupted) else exits.OK


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _names() -> set[str]:
    from dataclasses import fields

    return {f.name for f in fields(Settings) if f.metadata["group"] in SETTINGS}
