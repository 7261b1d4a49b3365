"""`truthstream check`: SageMaker's monitoring job on a file, judged against a constraints.json."""

from __future__ import annotations

import argparse

from connectors.data_options import add_data_arguments
from connectors.options import non_negative_int, positive_int, probability

HELP = "statistics.json and constraint_violations.json of a labelled data set judged against constraints"
DESCRIPTION = (
    "What a SageMaker model-quality monitoring run does, on a file: compute statistics.json over a labelled "
    "data set (the same data options as `baseline`; standard deviations from 5 subsamples of 80% when there "
    "are at least 200 rows) and judge it against a constraints.json, writing constraint_violations.json in "
    "SageMaker's shape. Exit status: 0 no violation (Completed), 1 violations (CompletedWithViolations), "
    "2 error. Useful as a CI gate before a model ships, and to compare with SageMaker's own reports."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The data set, the constraints and where the reports go."""
    add_data_arguments(parser, "check", "what the model predicts (default: the constraints file's section)")
    parser.add_argument("--constraints", required=True, metavar="FILE", help="the constraints.json to judge against")
    parser.add_argument("--output-dir", required=True, help="where statistics.json and constraint_violations.json go")
    parser.add_argument(
        "--calibration",
        metavar="FILE",
        help="a calibration.json (from `baseline`): also write estimates.json, the label-free estimate of the "
        "metrics from the scores (as the worker computes it) and its error against the labels, to check that the "
        "calibration still holds on this data (with --probability-attribute or --probabilities-attribute)",
    )
    parser.add_argument(
        "--confidence-level",
        type=probability,
        default=0.95,
        help="of the intervals of estimates and segments (default 0.95)",
    )
    parser.add_argument(
        "--segment-attribute",
        action="append",
        metavar="COLUMN",
        help="also judge the rows of each value of this column on their own (repeatable): segments.json, as a "
        "window's segments in the worker; a segment's violation makes the exit status 1",
    )
    parser.add_argument("--segment-cap", type=positive_int, default=20, help="values per segment column (default 20)")
    parser.add_argument(
        "--segment-min-samples",
        type=non_negative_int,
        default=100,
        help="segments with fewer rows are not judged (default 100)",
    )


def run(args: argparse.Namespace) -> int:
    """Compute, judge, write both reports atomically, print the outcome."""

    from connectors.baseline_data import baseline_file
    from connectors.files import output_dir, write_json_files
    from stream.constraint_files import load_calibration, load_constraints
    from stream.core.metrics import STATISTICS_KEY
    from stream.core.outputs import sagemaker_violations
    from stream.errors import ConfigError, InputError

    constraints = load_constraints(args.constraints)
    if args.problem_type is None:
        args.problem_type = constraints.problem_type
    elif args.problem_type != constraints.problem_type:
        raise ConfigError(
            f"--problem-type {args.problem_type} but {args.constraints} holds {constraints.problem_type} constraints"
        )
    if not args.data:
        raise InputError("give DATA, the labelled data set to check")
    calibration = load_calibration(args.calibration) if args.calibration else None
    if calibration is not None and not (args.probability_attribute or args.probabilities_attribute):
        raise ConfigError(
            "--calibration needs the scores: give --probability-attribute (binary) or --probabilities-attribute"
        )
    out_dir = output_dir(args.output_dir)
    baseline = baseline_file(args, calibration)
    statistics = baseline.statistics()
    found = sagemaker_violations(statistics[STATISTICS_KEY[constraints.problem_type]], constraints)
    docs = {"statistics.json": statistics, "constraint_violations.json": {"violations": [v for _, _, v in found]}}
    if calibration is not None:
        docs["estimates.json"] = baseline.estimates(args.confidence_level)
    segment_violations: list[dict] = []
    if args.segment_attribute:
        docs["segments.json"], segment_violations = baseline.segments(
            constraints, args.segment_cap, args.segment_min_samples, args.confidence_level
        )
    write_json_files(docs, out_dir)
    print("wrote " + " and ".join(str(out_dir / name) for name in docs))
    if calibration is not None:
        body, errors = docs["estimates.json"]["estimated_metrics"], docs["estimates.json"]["estimate_error"]
        for name, error in errors.items():
            entry = body[f"estimated_{name}"]
            interval = entry.get("confidence_interval")
            shown = f" [{interval[0]:.4f}, {interval[1]:.4f}]" if isinstance(interval, list) else ""
            print(f"estimated {name} {entry['value']:.4f}{shown}, realized {entry['value'] + error:.4f}")
    rows = statistics["dataset"]["item_count"]
    for violation in segment_violations:
        print(f"  {violation['description']}")
    if not found:
        print(f"Completed: {rows} rows, no violation of {len(constraints.constraints)} constraints")
        return 1 if segment_violations else 0
    print(f"CompletedWithViolations: {rows} rows, {len(found)} of {len(constraints.constraints)} constraints broken")
    for _, _, violation in found:
        print(f"  {violation['description']}")
    return 1
