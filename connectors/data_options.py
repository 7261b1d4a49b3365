"""The flags that describe a labelled data set, shared by `baseline` and `check` (kept free of heavy
imports: building the parser must stay fast)."""

from __future__ import annotations

import argparse

from connectors.options import positive_int, probability

PROBLEM_TYPES = ["BinaryClassification", "MulticlassClassification", "Regression"]


SCORES_USE = {
    "baseline": "with it, the baseline also fits calibration.json",
    "check": "needed with --calibration, whose estimates it checks",
}
DATA_USE = {
    "baseline": "the labelled data set the baseline is computed from: CSV, JSON Lines or Parquet",
    "check": "the labelled data set to judge (a monitoring period's merged records): CSV, JSON Lines or Parquet",
}


def add_data_arguments(parser: argparse.ArgumentParser, command: str, problem_type_help: str) -> None:
    """DATA and SageMaker's attribute names for its columns, with help written for `command`
    (`baseline` or `check`)."""
    parser.add_argument("data", nargs="?", help=DATA_USE[command])
    parser.add_argument("--problem-type", choices=PROBLEM_TYPES, help=problem_type_help)
    parser.add_argument("--inference-attribute", help="column of the model's prediction (a class, or a number)")
    parser.add_argument(
        "--probability-attribute", help=f"column of the positive-class probability (binary); {SCORES_USE[command]}"
    )
    parser.add_argument(
        "--probabilities-attribute",
        help="column of the class probabilities (multiclass): a JSON object class -> probability per row (text in "
        f"a CSV); {SCORES_USE[command]}",
    )
    parser.add_argument(
        "--probability-threshold-attribute",
        type=probability,
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
        "--event-id-attribute",
        help="column of the event id, which decides each row's subsamples (the standard deviations) as in the "
        "worker; default: the row number",
    )
    parser.add_argument("--chunk-rows", type=positive_int, default=100_000, help="rows read at a time (bounds memory)")
