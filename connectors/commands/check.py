"""`truthstream check`: SageMaker's monitoring job on a file, judged against a constraints.json."""

from __future__ import annotations

import argparse

from connectors.data_options import add_data_arguments

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
    add_data_arguments(parser, "what the model predicts (default: the constraints file's section)")
    parser.add_argument("--constraints", required=True, metavar="FILE", help="the constraints.json to judge against")
    parser.add_argument("--output-dir", required=True, help="where statistics.json and constraint_violations.json go")


def run(args: argparse.Namespace) -> int:
    """Compute, judge, write both reports atomically, print the outcome."""
    from pathlib import Path

    from connectors.baseline_data import baseline_file
    from connectors.files import write_json_files
    from stream.constraint_files import load_constraints
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
    statistics = baseline_file(args).statistics()
    found = sagemaker_violations(statistics[STATISTICS_KEY[constraints.problem_type]], constraints)
    out_dir = Path(args.output_dir)
    write_json_files(
        {"statistics.json": statistics, "constraint_violations.json": {"violations": [v for _, _, v in found]}},
        out_dir,
    )
    print(f"wrote {out_dir / 'statistics.json'} and {out_dir / 'constraint_violations.json'}")
    rows = statistics["dataset"]["item_count"]
    if not found:
        print(f"Completed: {rows} rows, no violation of {len(constraints.constraints)} constraints")
        return 0
    print(f"CompletedWithViolations: {rows} rows, {len(found)} of {len(constraints.constraints)} constraints broken")
    for _, _, violation in found:
        print(f"  {violation['description']}")
    return 1
