"""`truthstream check`: SageMaker's monitoring job on a file, judged against a constraints.json."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from connectors.data_options import add_data_arguments
from connectors.options import non_negative_int, positive_int, probability

log = logging.getLogger(__name__)

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
        "--data-quality",
        action="store_true",
        help="a data-quality monitoring run instead (SageMaker's data-quality monitor): judge every column of "
        "DATA against a data-quality --constraints file (and, for drift, the baseline's --statistics); writes "
        "the data set's statistics.json and constraints.json and constraint_violations.json as the service does",
    )
    parser.add_argument(
        "--statistics",
        metavar="FILE",
        help="with --data-quality: the baseline's statistics.json, whose distributions the drift check compares with",
    )
    parser.add_argument(
        "--min-rows",
        type=non_negative_int,
        default=0,
        help="with --data-quality: a data set of fewer rows is too small for its distributions to be judged; "
        "no baseline_drift_check then, and it says so (default 0: judge any size, as SageMaker)",
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

    if args.data_quality:
        return _data_quality(args)
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


def _read_json(path: str, flag: str) -> dict[str, Any]:
    import json

    from stream.errors import InputError

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{flag} {path}: cannot read it as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{flag} {path}: expected a JSON object")
    return doc


def _data_quality(args: argparse.Namespace) -> int:
    """A data-quality monitoring run on a file: the window's files and its violations."""
    from connectors.data_quality import read_profile, write_service_files
    from connectors.files import output_dir
    from stream.core.dataquality.checks import check, outcome, shifted_by
    from stream.core.dataquality.suggest import suggest_constraints
    from stream.errors import InputError

    constraints = _read_json(args.constraints, "--constraints")
    if not isinstance(constraints.get("features"), list):
        raise InputError(f"--constraints {args.constraints}: not a data-quality constraints.json (no 'features')")
    statistics = _read_json(args.statistics, "--statistics") if args.statistics else None
    if not args.data:
        raise InputError("give DATA, the data set (a monitoring period's captures or rows) to judge")
    out_dir = output_dir(args.output_dir)
    names = [str(f.get("name")) for f in constraints["features"]]
    profile = read_profile(Path(args.data), args.format, header=not args.no_header, names=names)
    found = check(profile, constraints, statistics, args.min_rows)
    shift = shifted_by(profile, constraints)
    if shift:
        log.warning(
            "the columns look shifted by %d against the baseline's: SageMaker's captures put the model's output "
            "first, so a baseline without the output column in front reads every feature %d place(s) off",
            shift,
            shift,
        )
    docs = {
        "statistics.json": profile.statistics(),
        "constraints.json": suggest_constraints(profile),
        "constraint_violations.json": {"violations": found},
    }
    write_service_files(docs, out_dir)
    print("wrote " + " and ".join(str(out_dir / name) for name in docs))
    print(f"{outcome(found)} ({profile.rows} rows, {len(names)} baseline features)")
    for v in found:
        print(f"  {v['feature_name']}: {v['constraint_check_type']}: {v['description']}")
    if statistics is None:
        print("  (no --statistics: drift was not compared)")
    elif profile.rows < args.min_rows:
        print(f"  (drift not judged: {profile.rows} rows, fewer than --min-rows {args.min_rows})")
    return 1 if found else 0
