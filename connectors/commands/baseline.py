"""`truthstream baseline`: statistics.json and a suggested constraints.json from a labelled data set."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from connectors.data_options import add_data_arguments
from connectors.options import non_negative_float

HELP = "statistics.json and a suggested constraints.json from a labelled data set"
DESCRIPTION = (
    "Compute SageMaker's model-quality statistics.json over a labelled data set (CSV, JSON Lines or Parquet, "
    "read in chunks), with standard deviations from 5 subsamples of about 80% (by a hash of each row's event id "
    "or row number) when there are at least 200 rows, "
    "and suggest a constraints.json whose thresholds sit a margin beyond the baseline. With scores (binary: "
    "--probability-attribute; multiclass: --probabilities-attribute) it also fits calibration.json (isotonic "
    "regression of the labels on the scores, one-vs-rest for multiclass), "
    "which TRUTHSTREAM_CALIBRATION gives the worker for label-free estimates. Nothing is written if "
    "any row is invalid."
)
SHOWN_METRICS = ("accuracy", "recall", "precision", "f1", "auc", "weighted_f1", "mae", "rmse", "r2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The data set and SageMaker's attribute names."""
    add_data_arguments(parser, "baseline", "what the model predicts (required with DATA)")
    parser.add_argument("--output-dir", required=True, help="where statistics.json and constraints.json go")
    parser.add_argument(
        "--margin-stds",
        type=non_negative_float,
        default=3.0,
        help="suggested thresholds sit this many standard deviations beyond the baseline (default 3)",
    )
    parser.add_argument(
        "--fallback-margin",
        type=non_negative_float,
        default=0.1,
        help="without a standard deviation (< 200 rows), the margin is this fraction of the value (default 0.1)",
    )
    parser.add_argument(
        "--data-quality",
        action="store_true",
        help="the inputs' data-quality baseline instead (SageMaker's data-quality monitor): per-feature "
        "statistics.json and suggested constraints.json of every column of DATA, in the service's own format "
        "(no --problem-type, no attributes); captures are read output columns first",
    )
    parser.add_argument(
        "--analyzer",
        choices=["2022", "2023"],
        default="2022",
        help="with --data-quality, the analyzer whose default monitoring_config is written: 2022 (every "
        "service-written file of 2020-2022) or 2023 (adds the categorical drift keys) (default 2022)",
    )
    parser.add_argument(
        "--from-statistics",
        metavar="STATISTICS_JSON",
        help="instead of DATA: suggest constraints from an existing statistics.json (SageMaker's or ours)",
    )


def run(args: argparse.Namespace) -> int:
    """Compute and write the files (atomically, both or none), then print a one-line summary."""
    import json

    from connectors.baseline_data import baseline_file
    from connectors.files import output_dir, write_json_files
    from stream.core.baseline import problem_type_of, suggest_constraints
    from stream.errors import InputError

    out_dir = output_dir(args.output_dir)
    if args.data_quality:
        return _data_quality(args, out_dir)
    if args.from_statistics:
        source = Path(args.from_statistics)
        try:
            statistics = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{source}: cannot read a statistics.json: {exc}") from None
        problem_type_of(statistics, str(source))
        docs = {
            "constraints.json": suggest_constraints(statistics, args.margin_stds, args.fallback_margin, str(source))
        }
    else:
        if not args.data or not args.problem_type:
            raise InputError("give DATA and --problem-type (or --from-statistics FILE)")
        baseline = baseline_file(args)
        statistics = baseline.statistics()
        docs = {
            "statistics.json": statistics,
            "constraints.json": suggest_constraints(statistics, args.margin_stds, args.fallback_margin),
        }
        calibration = baseline.calibration_doc()
        if calibration is not None:
            docs["calibration.json"] = calibration
    write_json_files(docs, out_dir)
    for name in docs:
        print(f"wrote {out_dir / name}")
    if "calibration.json" in docs:
        brier = docs["calibration.json"]["brier_score"]
        print(f"calibration: Brier score {brier['raw']:.4f} raw, {brier['calibrated']:.4f} calibrated (on these rows)")
    if "statistics.json" in docs:
        body = next(v for k, v in docs["statistics.json"].items() if k.endswith("_metrics"))
        values = [(k, body[k]["value"]) for k in SHOWN_METRICS if k in body]
        print(
            f"{docs['statistics.json']['dataset']['item_count']} rows: "
            + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values)
        )
    return 0


def _data_quality(args: argparse.Namespace, out_dir: Path) -> int:
    """statistics.json and constraints.json of the inputs, as SageMaker's data-quality baseline job."""
    from connectors.data_quality import read_profile, write_service_files
    from stream.core.dataquality.suggest import suggest_constraints
    from stream.errors import InputError

    if not args.data:
        raise InputError("give DATA, the data set whose inputs are the baseline")
    profile = read_profile(Path(args.data), args.format, header=not args.no_header)
    docs = {"statistics.json": profile.statistics(), "constraints.json": suggest_constraints(profile, args.analyzer)}
    write_service_files(docs, out_dir)
    for name in docs:
        print(f"wrote {out_dir / name}")
    kinds = Counter(profile.features[name].inferred_type for name in profile.names)
    print(f"{profile.rows} rows, {len(profile.names)} features: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    return 0
