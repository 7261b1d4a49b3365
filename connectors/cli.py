"""The `truthstream` program: one parser assembled from the command modules in `connectors.commands`.

Each command module holds its flags (`add_arguments`) and its `run(args)`; building the
parser imports only those light modules, so `truthstream --help` answers at once, and a
command's heavy libraries (Faust, pandas, river, Kafka clients) load only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stream.errors import TruthstreamError
from stream.logs import setup_logging
from stream.redact import redact

COMMANDS = ("worker", "up", "demo", "baseline", "check", "replay", "ingest", "sink", "violations", "dashboard")

DESCRIPTION = """\
truthstream: a streaming model-quality monitor.

Joins inference records with ground-truth labels from Kafka (join state in Redis),
computes classification and regression metrics per event-time window, checks them
against SageMaker-style constraints.json files, and publishes metrics and
violation records to Kafka. Every option listed under a "settings:" heading of a
command's --help can also be given as an environment variable TRUTHSTREAM_<SETTING>
(for example TRUTHSTREAM_BROKER), or read from a file named by TRUTHSTREAM_<SETTING>_FILE.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="truthstream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="verbosity of the diagnostics on stderr (default info)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command = importlib.import_module(f"connectors.commands.{name}")
        child = sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: results go to stdout, diagnostics to stderr."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.run(args))
    except TruthstreamError as exc:
        print(f"truthstream: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith(("kafka", "aiokafka")):
            raise
        # A Kafka client's own error (authentication, a lost broker): one line, as for ours.
        print(
            f"truthstream: error: Kafka: {redact(str(exc))}; check TRUTHSTREAM_BROKER and TRUTHSTREAM_KAFKA_*",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
