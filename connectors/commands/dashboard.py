"""`truthstream dashboard`: a live web page of the metrics and violations topics."""

from __future__ import annotations

import argparse

from connectors.options import port_number
from stream.settings import Settings

HELP = "serve a live page of each model's metrics, thresholds and violations (reads the topics)"
DESCRIPTION = (
    "Serve a web page that draws, per model and version, each constrained metric over time (tumbling "
    "windows, violating ones marked, and the rolling window) with its threshold, the counts and the "
    "violations list, from the metrics and violations topics read from --from on; pages update live "
    "as the worker publishes. No database: it keeps what it read in memory and commits nothing."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen, where to start reading, the topics and constraints."""
    parser.add_argument("--port", type=port_number, default=8050, help="port to serve the page on (default 8050)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"
    )
    parser.add_argument(
        "--from",
        dest="from_time",
        metavar="TIME",
        default="-24h",
        help="read the topics from this time: ISO-8601, epoch seconds, or -24h / -7d before now (default -24h)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    Settings.add_arguments(parser, ("kafka", "models"), only=("metrics_topic", "violations_topic"))


def run(args: argparse.Namespace) -> int:
    """Serve the page until interrupted (Ctrl-C: exit code 130, as every command)."""
    import asyncio
    import webbrowser

    from connectors.live_page import serve
    from connectors.options import time_option

    settings = Settings.from_args(args)
    from_s = time_option(args.from_time, "--from")
    # A broker that is not there at the start is a wrong address more often than an outage: say so
    # and stop. Once reading, an outage is waited for.
    settings.kafka().require_reachable()

    def started(url: str) -> None:
        print(f"truthstream dashboard on {url} (Ctrl-C to stop)", flush=True)
        if args.open:
            webbrowser.open(url)

    asyncio.run(serve(settings, args.host, args.port, from_s, started))  # until Ctrl-C (exit code 130)
    return 0
