"""`truthstream violations`: read the violations topic as another service would."""

from __future__ import annotations

import argparse

from stream.settings import Settings

HELP = "print violations from the violations topic (a worked example of a downstream consumer)"
DESCRIPTION = (
    "Read the violations topic from a time (or its beginning) and print a table or JSON lines. Without "
    "--group nothing is committed, so every run shows the same; with --group it reads as that consumer "
    "group, committing what it printed (the pattern a service that acts on violations follows)."
)
COLUMNS = (
    ("window", 9),
    ("start", 21),
    ("end", 21),
    ("model", 14),
    ("metric", 22),
    ("value", 10),
    ("operator", 30),
    ("threshold", 10),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to start, how to print, which group."""
    parser.add_argument("--from", dest="from_time", metavar="TIME", help="start at this time (ISO-8601 or epoch)")
    parser.add_argument("--follow", action="store_true", help="keep printing new violations")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument(
        "--group", help="read as this consumer group and commit what was printed (default: no group, no commits)"
    )
    Settings.add_arguments(parser, ("kafka",), only=("violations_topic",))


def run(args: argparse.Namespace) -> int:
    """Print violations as a table or JSON lines, from a time, optionally following."""
    import json

    from connectors.consumers import commit, group_consumer, records, topic_reader
    from connectors.options import time_option
    from stream.core.timefmt import parse_time, window_times

    settings = Settings.from_args(args)
    from_s = time_option(args.from_time, "--from")
    if args.group:
        consumer = group_consumer(settings, settings.violations_topic, args.group)
    else:
        consumer = topic_reader(settings, settings.violations_topic, from_s)
    if not args.json:
        print("".join(f"{name:<{width}}" for name, width in COLUMNS))
    shown = 0
    try:
        for message in records(consumer, follow=args.follow, idle_s=1.0, from_s=from_s, what="violations"):
            v = json.loads(message.value)
            if args.json:
                print(json.dumps(v), flush=True)
            else:
                start, end = window_times(parse_time(v["window"]["start"]), parse_time(v["window"]["end"]))
                cells = (
                    v["window"]["kind"],
                    start,
                    end,
                    v["model"] + (f" v{v['model_version']}" if v["model_version"] else ""),
                    v["metric_name"],
                    f"{v['value']:.4g}",
                    v["constraint_check_type"],
                    f"{v['threshold']:g}",
                )
                print("".join(f"{c!s:<{w}}" for c, (_, w) in zip(cells, COLUMNS)), flush=True)
            if args.group:
                commit(consumer, message)
            shown += 1
    finally:
        consumer.close()
    if not args.json:
        print(f"{shown} violations")
    return 0
