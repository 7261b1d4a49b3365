"""The command-line flags of the connector subcommands, kept apart from their code so that
building the parser (and `truthstream --help`) imports no pandas, river or Kafka client."""

from __future__ import annotations

import argparse

from stream.settings import Settings


def baseline_arguments(parser: argparse.ArgumentParser) -> None:
    """The baseline subcommand's flags (SageMaker's attribute names)."""
    parser.add_argument("data", nargs="?", help="labelled data set: CSV, JSON Lines or Parquet")
    parser.add_argument(
        "--problem-type",
        choices=["BinaryClassification", "MulticlassClassification", "Regression"],
        help="what the model predicts (required with DATA)",
    )
    parser.add_argument("--output-dir", required=True, help="where statistics.json and constraints.json go")
    parser.add_argument("--inference-attribute", help="column of the model's prediction (a class, or a number)")
    parser.add_argument("--probability-attribute", help="column of the positive-class probability (binary)")
    parser.add_argument(
        "--probability-threshold-attribute",
        type=float,
        default=0.5,
        help="cut-off turning a probability into the positive class when there is no "
        "--inference-attribute: probability >= cut-off means 1 (default 0.5)",
    )
    parser.add_argument("--ground-truth-attribute", help="column of the true label (required with DATA)")
    parser.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="file format (default: by extension)")
    parser.add_argument(
        "--no-header",
        action="store_true",
        help="the CSV has no header: attributes are 0-based column indexes, as in SageMaker",
    )
    parser.add_argument(
        "--margin-stds",
        type=float,
        default=3.0,
        help="suggested thresholds sit this many standard deviations beyond the baseline (default 3)",
    )
    parser.add_argument(
        "--fallback-margin",
        type=float,
        default=0.1,
        help="without a standard deviation (< 200 rows), the margin is this fraction of the value (default 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsamples behind the standard deviations")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time (bounds memory)")
    parser.add_argument(
        "--from-statistics",
        metavar="STATISTICS_JSON",
        help="instead of DATA: suggest constraints from an existing statistics.json (SageMaker's or ours)",
    )


def ingest_arguments(parser: argparse.ArgumentParser) -> None:
    """`ingest capture|labels|table` and their flags."""
    sub = parser.add_subparsers(dest="source_kind", metavar="SOURCE", required=True)
    for kind, text in (
        ("capture", "SageMaker data-capture files (ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl)"),
        ("labels", "SageMaker ground-truth files (yyyy/mm/dd/hh/*.jsonl)"),
    ):
        p = sub.add_parser(
            kind,
            help=f"send {text} to the {'inference' if kind == 'capture' else 'label'} topic",
            description=f"Walk {text} in a directory or under s3://bucket/prefix in time order "
            "and send each record to Kafka. What was sent is remembered in a state "
            "file, so a restart neither skips nor repeats files.",
        )
        p.add_argument("src", help="a local directory or s3://bucket/prefix")
        p.add_argument("--since", help="first hour to read (ISO-8601 or epoch seconds)")
        p.add_argument("--until", help="read hours before this one only")
        p.add_argument("--follow", action="store_true", help="keep polling for new hourly files")
        p.add_argument("--poll", type=float, default=30.0, help="seconds between polls with --follow (default 30)")
        p.add_argument("--state", help="state file (default: under ~/.local/state/truthstream/)")
        p.add_argument("--endpoint-url", help="S3 endpoint URL (for S3-compatible servers; also AWS_ENDPOINT_URL)")
        if kind == "capture":
            p.add_argument(
                "--model",
                help="model name for every record (default: the ENDPOINT part of the path; "
                "VARIANT becomes model_version)",
            )
            p.add_argument("--inference-attribute", help="prediction: CSV column index or JSON path in the output")
            p.add_argument("--probability-attribute", help="probability: CSV column index or JSON path")
            p.add_argument(
                "--probability-threshold-attribute",
                type=float,
                default=0.5,
                help="without an inference attribute, probability >= this is class 1 (default 0.5)",
            )
        Settings.add_arguments(p, only=("broker", "inference_topic", "label_topic"))
    table = sub.add_parser(
        "table",
        help="send inference and/or label records from a CSV, JSON Lines or Parquet file",
        description="Backfill from a warehouse export: each row becomes an inference record "
        "(with --prediction-column) and/or a label record (with --label-column).",
    )
    table.add_argument("src", help="the file")
    table.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: by extension")
    table.add_argument("--no-header", action="store_true", help="CSV without header: columns are 0, 1, ...")
    table.add_argument("--event-id-column", required=True)
    table.add_argument("--model", help="model name for every row")
    table.add_argument("--model-column")
    table.add_argument("--version-column")
    table.add_argument("--time-column", help="inference time (ISO-8601 or epoch seconds)")
    table.add_argument("--prediction-column")
    table.add_argument("--probability-column")
    table.add_argument("--label-column")
    table.add_argument("--label-time-column")
    Settings.add_arguments(table, only=("broker", "inference_topic", "label_topic"))


def sink_arguments(sink: argparse.ArgumentParser, violations: argparse.ArgumentParser) -> None:
    """`sink s3|webhook` and `violations` flags."""
    sub = sink.add_subparsers(dest="sink_kind", metavar="SINK", required=True)
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
    hook.add_argument("url")
    hook.add_argument("--max-attempts", type=int, default=0, help="give up after this many tries (0: never)")
    for p in (s3, hook):
        p.add_argument("--group", help="consumer group (default: APP_ID-sink-s3 / APP_ID-sink-webhook)")
        p.add_argument("--once", action="store_true", help="stop when caught up instead of running forever")
        Settings.add_arguments(p, only=("broker", "metrics_topic", "violations_topic", "app_id"))
    violations.add_argument("--from", dest="from_time", metavar="TIME", help="start at this time (ISO-8601 or epoch)")
    violations.add_argument("--follow", action="store_true", help="keep printing new violations")
    violations.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    violations.add_argument(
        "--group", default="truthstream-violations-cli", help="consumer group (default truthstream-violations-cli)"
    )
    Settings.add_arguments(violations, only=("broker", "violations_topic"))
