"""`truthstream sink`: closed windows to S3 as SageMaker's report files, violations to a webhook."""

from __future__ import annotations

import argparse

from connectors.options import non_negative_int
from stream.settings import Settings

HELP = "copy closed windows to S3 or violations to a webhook"
DESCRIPTION = "Consumers of the output topics that deliver reports and alerts."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`sink s3|webhook` and their flags."""
    sub = parser.add_subparsers(dest="sink_kind", metavar="SINK", required=True, help="where the records go")
    s3 = sub.add_parser(
        "s3",
        help="write statistics.json and constraint_violations.json per closed window to S3",
        description="For every closed (tumbling) window on the metrics topic, write "
        "PREFIX/MODEL[/VERSION]/yyyy/mm/dd/hh/[MMSS-Ns/]statistics.json and "
        "constraint_violations.json in SageMaker's shapes. Object names are "
        "deterministic and offsets are committed after the writes, so each window's "
        "files are written once in effect, even across restarts.",
    )
    s3.add_argument("dest", help="s3://bucket/prefix")
    s3.add_argument("--endpoint-url", help="S3 endpoint URL (S3-compatible servers; also AWS_ENDPOINT_URL)")
    hook = sub.add_parser(
        "webhook",
        help="POST every violation to a URL (Slack-compatible `text` included)",
        description="POST each violation as JSON with a `text` field Slack understands, "
        "retrying with back-off; an offset is committed only after a 2xx answer.",
    )
    hook.add_argument("url", help="the endpoint each violation is POSTed to (http:// or https://)")
    hook.add_argument(
        "--max-attempts", type=non_negative_int, default=0, help="give up after this many tries (0: never)"
    )
    for p, topic in ((s3, "metrics_topic"), (hook, "violations_topic")):
        p.add_argument("--group", help="consumer group (default: APP_ID-sink-s3 / APP_ID-sink-webhook)")
        p.add_argument("--once", action="store_true", help="stop when caught up instead of running forever")
        Settings.add_arguments(p, ("kafka", "app"), only=(topic,))


def run(args: argparse.Namespace) -> int:
    """Run the chosen sink until stopped (or caught up, with --once)."""
    settings = Settings.from_args(args)
    if args.sink_kind == "s3":
        from connectors.s3 import deliver_reports

        written = deliver_reports(settings, args.dest, args.endpoint_url, args.group, args.once)
        print(f"wrote the reports of {written} windows")
    else:
        from connectors.webhook import deliver_violations

        posted = deliver_violations(settings, args.url, args.group, args.once, args.max_attempts)
        print(f"posted {posted} violations")
    return 0
