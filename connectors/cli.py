"""The `truthstream` program: one parser assembled from the command modules in `connectors.commands`,
and the one place where a command's outcome becomes an exit code.

Each command module holds its flags (`add_arguments`) and its `run(args)`; building the
parser imports only those light modules, so `truthstream --help` answers at once, and a
command's heavy libraries (Faust, pandas, river, Kafka clients) load only when it runs.

The exit codes (`connectors.exits`, docs/commands.md) are the same for every command; every error
is one line on stderr, a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from connectors import exits
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

Exit codes: 0 done, 1 violations found (check), 2 usage, input or service error,
70 internal error, 130 interrupted. Errors are one line; --debug adds the traceback.
"""


class UsageError(Exception):
    """A command line argparse refused: its one-line message."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with a "did you mean" when a word is close to
    one it knows, raised instead of printed so that `main` reports every error the same way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line: list[str] = []
        self.commands: dict[str, Parser] = {}

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        """As argparse's, remembering the words for `error`."""
        self._line = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """Raise the message with a suggestion (argparse calls this for every refused line)."""
        if message.startswith("the following arguments are required"):
            # A mistyped flag is the likelier cause of a missing one: name it first.
            unknown = [w for w in self._line if w.startswith("--") and not self._knows(w.split("=", 1)[0])]
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        raise UsageError(f"{self.prog}: error: {self.suggested(message)}; see '{self.prog} --help'")

    def _knows(self, flag: str) -> bool:
        return any(s == flag or s.startswith(flag) for s in self._option_string_actions)

    def suggested(self, message: str) -> str:
        """The message with ` (did you mean X?)` for a mistyped choice, subcommand or flag."""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
            return message[: choice.start(2) - len(" (choose from ")] + hint if hint else message
        unknown = re.search(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [s for s in self._option_string_actions if s.startswith("--")]
            for word in unknown.group(1).split():
                hint = did_you_mean(word.split("=", 1)[0], flags) if word.startswith("--") else ""
                if hint:
                    return message + hint
        return message


def did_you_mean(word: str, known: list[str]) -> str:
    """` (did you mean X?)` when one of `known` is close to `word` or the only one it begins."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.7)
    if not close:
        close = [k for k in known if k.lower().startswith(word.lower())][:2]
    return f" (did you mean {close[0]}?)" if len(close) == 1 else ""


def _common_flags(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="print the traceback of an error, not just its one line",
    )


def build_parser() -> Parser:
    """The argument parser of every command."""
    parser = Parser(prog="truthstream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="verbosity of the diagnostics on stderr (default info)",
    )
    _common_flags(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name in COMMANDS:
        command = importlib.import_module(f"connectors.commands.{name}")
        child = parser.commands[name] = sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(child)
        # Also after the command's name; SUPPRESS keeps a --debug given before it.
        _common_flags(child, argparse.SUPPRESS)
        child.set_defaults(run=command.run)
    return parser


def parse(parser: Parser, argv: list[str] | None) -> argparse.Namespace:
    """The parsed line; flags the command does not know are reported by the command's own parser,
    so that its usage and its flags are the ones suggested."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    return args  # type: ignore[no-any-return]


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line of an error that ended a command."""
    module = type(exc).__module__
    if isinstance(exc, TruthstreamError):
        return exits.USAGE, str(exc)
    if module.startswith(("kafka", "aiokafka")):
        # A Kafka client's own error (authentication, a lost broker).
        return exits.USAGE, f"Kafka: {exc or type(exc).__name__}; check TRUTHSTREAM_BROKER and TRUTHSTREAM_KAFKA_*"
    if module.startswith("redis"):
        return exits.USAGE, f"Redis: {exc or type(exc).__name__}; check TRUTHSTREAM_REDIS_URL and TRUTHSTREAM_REDIS_*"
    if module.startswith(("botocore", "boto3")):
        return exits.USAGE, f"S3: {exc}; check the bucket, the credentials and TRUTHSTREAM_S3_ENDPOINT_URL"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return exits.USAGE, f"{exc.strerror or exc}{where}"
    return exits.INTERNAL, (
        f"internal error: {type(exc).__name__}: {exc} (a bug: run again with --debug for the traceback, and report it)"
    )


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: results go to stdout, diagnostics to stderr."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = parse(build_parser(), argv)
        debug = debug or args.debug or args.log_level == "debug"
        setup_logging(args.log_level)
        code = int(args.run(args))
        sys.stdout.flush()
        return code
    except SystemExit as exc:  # --help: argparse printed it and exits
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
            return exits.PIPE
        return exc.code if isinstance(exc.code, int) else exits.OK
    except UsageError as exc:
        print(f"{exc}", file=sys.stderr)
        return exits.USAGE
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return exits.PIPE
    except Exception as exc:  # noqa: BLE001 - the one place every other error becomes a line and a code
        code, line = describe(exc)
        if debug:
            traceback.print_exc()
        print(f"truthstream: error: {redact(line)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
