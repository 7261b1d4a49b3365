"""`truthstream ingest`: SageMaker capture and ground-truth files, or any table, into the input topics."""

from __future__ import annotations

import argparse
import sys

from connectors import exits
from connectors.options import positive_float, probability
from stream.settings import Settings

HELP = "load SageMaker capture/ground-truth files or a table into the topics"
DESCRIPTION = (
    "Sources of inference and label records: SageMaker data capture, SageMaker ground truth, "
    "or any CSV/JSON Lines/Parquet table."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`ingest capture|labels|table` and their flags."""
    sub = parser.add_subparsers(dest="source_kind", metavar="SOURCE", required=True, help="where the records come from")
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
        p.add_argument(
            "--poll", type=positive_float, default=30.0, help="seconds between polls with --follow (default 30)"
        )
        p.add_argument("--state", help="state file (default: under ~/.local/state/truthstream/)")
        p.add_argument("--endpoint-url", help="S3 endpoint URL (for S3-compatible servers; also AWS_ENDPOINT_URL)")
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="print the records that would be sent, one JSON object a line, on standard output "
            "(rejected lines on standard error); no broker needed, no state written",
        )
        if kind == "capture":
            p.add_argument(
                "--model",
                help="model name for every record (default: the ENDPOINT part of the path; "
                "VARIANT becomes model_version)",
            )
            p.add_argument(
                "--inference-attribute",
                help="prediction: a CSV column index (0, 1, ...) or a JMESPath in a JSON output "
                "(predicted_label, predictions[*].predicted_label, SageMakerOutput.predicted_label)",
            )
            p.add_argument(
                "--probability-attribute",
                help="positive-class probability: a CSV column index or a JMESPath (score, predictions[*].score)",
            )
            p.add_argument(
                "--probability-threshold-attribute",
                type=probability,
                default=0.5,
                help="without an inference attribute, probability >= this is class 1 (default 0.5)",
            )
        Settings.add_arguments(p, ("kafka",), only=("inference_topic" if kind == "capture" else "label_topic",))
    table = sub.add_parser(
        "table",
        help="send inference and/or label records from a CSV, JSON Lines or Parquet file",
        description="Backfill from a warehouse export: each row becomes an inference record "
        "(with --prediction-column) and/or a label record (with --label-column).",
    )
    table.add_argument("src", help="the file")
    table.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: by extension")
    table.add_argument("--no-header", action="store_true", help="CSV without header: columns are 0, 1, ...")
    table.add_argument("--event-id-column", required=True, help="column of the event id (required): the join key")
    table.add_argument("--model", help="model name for every row")
    table.add_argument("--model-column", help="column of the model name (instead of --model)")
    table.add_argument("--version-column", help="column of the model version (optional)")
    table.add_argument(
        "--time-column", help="column of the inference time, ISO-8601 or epoch seconds (required for inferences)"
    )
    table.add_argument("--prediction-column", help="column of the prediction: each row becomes an inference record")
    table.add_argument("--probability-column", help="column of the positive-class probability (binary models)")
    table.add_argument("--label-column", help="column of the true label: each row becomes a label record")
    table.add_argument("--label-time-column", help="column of the label time (optional, recommended)")
    Settings.add_arguments(table, ("kafka", "inputs"))


def run(args: argparse.Namespace) -> int:
    """Send the records, then print what was sent and what was rejected."""
    from connectors.ingest import ingest_files, ingest_table

    settings = Settings.from_args(args)
    if args.source_kind == "table":
        summary = ingest_table(args, settings)
    else:
        summary = ingest_files(args, settings)
    # A dry run's standard output is the records themselves: its summary goes to standard error.
    print(summary.report(), file=sys.stderr if getattr(args, "dry_run", False) else sys.stdout)
    return exits.INTERRUPTED if summary.interrupted else exits.OK
