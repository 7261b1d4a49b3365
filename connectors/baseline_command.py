"""`truthstream baseline`: statistics.json and a suggested constraints.json from a labelled data set."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from connectors.files import atomic_files
from connectors.tables import TableError, read_chunks, table_format, total_rows
from stream.baseline import Baseline, problem_type_of, suggest_constraints
from stream.errors import RecordError, TruthstreamError
from stream.records import BINARY, ProblemType, canonical_class


class BaselineError(TruthstreamError):
    """The data set cannot be baselined as asked; names the file, column and first offending row."""


def _column(chunk: pd.DataFrame, name: str, path: Path, flag: str) -> pd.Series:
    if name not in chunk.columns:
        raise BaselineError(f"{path}: no column {name!r} (from {flag}); columns are: {', '.join(chunk.columns)}")
    return chunk[name]


def _fail(path: Path, column: str, row: Any, value: Any, why: str, header: bool, fmt: str) -> BaselineError:
    line = f" (line {int(row) + 2 if header else int(row) + 1})" if fmt == "csv" else ""
    return BaselineError(f"{path}: column {column!r}, row {int(row) + 1}{line}: {why}: {value!r}")


def _canonical(
    series: pd.Series, problem_type: ProblemType, path: Path, column: str, header: bool, fmt: str
) -> list[str]:
    missing = series.isna()
    if missing.any():
        row = missing.idxmax()
        raise _fail(path, column, row, series[row], "missing value", header, fmt)
    mapping: dict[Any, str] = {}
    for value in pd.unique(series):
        try:
            plain = value.item() if isinstance(value, np.generic) else value  # numpy scalars from JSON/Parquet
            mapping[value] = canonical_class(plain, column, problem_type)
        except RecordError as exc:
            row = series[series == value].index[0]
            raise _fail(path, column, row, value, exc.reason, header, fmt) from None
    return [mapping[v] for v in series.tolist()]


def _scores(series: pd.Series, path: Path, column: str, header: bool, fmt: str) -> np.ndarray:
    numbers = pd.to_numeric(series, errors="coerce").astype(float)
    bad = numbers.isna() | (numbers < 0) | (numbers > 1)
    if bad.any():
        row = bad.idxmax()
        why = "not a number" if math.isnan(numbers[row]) else "probability outside [0, 1]"
        raise _fail(path, column, row, series[row], why, header, fmt)
    return numbers.to_numpy()


def baseline_file(args: argparse.Namespace) -> Baseline:
    """Read DATA in chunks and accumulate it, validating every row."""
    path = Path(args.data)
    problem_type: ProblemType = args.problem_type
    if not args.ground_truth_attribute:
        raise BaselineError("--ground-truth-attribute is required")
    if not args.inference_attribute and not (problem_type == BINARY and args.probability_attribute):
        raise BaselineError(
            "--inference-attribute is required (or, for BinaryClassification, "
            "--probability-attribute with --probability-threshold-attribute)"
        )
    if args.probability_attribute and problem_type != BINARY:
        raise BaselineError("--probability-attribute applies to BinaryClassification only")
    fmt = table_format(path, args.format)
    header = not args.no_header
    baseline = Baseline(problem_type, seed=args.seed)

    def classes(chunk: pd.DataFrame, name: str, flag: str) -> list[str]:
        return _canonical(_column(chunk, name, path, flag), problem_type, path, name, header, fmt)

    with tqdm(total=total_rows(path, fmt), desc="baseline", unit="row", unit_scale=True, leave=False) as bar:
        for chunk in read_chunks(path, fmt, header, args.chunk_rows):
            truth = classes(chunk, args.ground_truth_attribute, "--ground-truth-attribute")
            scores = None
            if args.probability_attribute:
                column = _column(chunk, args.probability_attribute, path, "--probability-attribute")
                scores = _scores(column, path, args.probability_attribute, header, fmt)
            if args.inference_attribute:
                predicted = classes(chunk, args.inference_attribute, "--inference-attribute")
            elif scores is not None:
                predicted = np.where(scores >= args.probability_threshold_attribute, "1", "0").tolist()
            else:  # excluded by the argument checks above
                raise BaselineError("no --inference-attribute and no --probability-attribute")
            baseline.add(truth, predicted, scores)
            bar.update(len(chunk))
    if baseline.rows == 0:
        raise BaselineError(f"{path}: the file has no data rows")
    return baseline


def _write_json_atomically(docs: dict[str, dict[str, Any]], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_files(*(out_dir / name for name in docs)) as temps:
        for temp, doc in zip(temps, docs.values()):
            temp.write_text(json.dumps(doc, indent=2) + "\n")


def run_baseline(args: argparse.Namespace) -> int:
    """Entry point of `truthstream baseline`."""
    out_dir = Path(args.output_dir)
    if args.from_statistics:
        source = Path(args.from_statistics)
        try:
            statistics = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaselineError(f"{source}: cannot read a statistics.json: {exc}") from None
        problem_type_of(statistics, str(source))
        docs = {
            "constraints.json": suggest_constraints(statistics, args.margin_stds, args.fallback_margin, str(source))
        }
    else:
        if not args.data or not args.problem_type:
            raise BaselineError("give DATA and --problem-type (or --from-statistics FILE)")
        try:
            baseline = baseline_file(args)
        except TableError as exc:
            raise BaselineError(str(exc)) from None
        statistics = baseline.statistics()
        docs = {
            "statistics.json": statistics,
            "constraints.json": suggest_constraints(statistics, args.margin_stds, args.fallback_margin),
        }
    _write_json_atomically(docs, out_dir)
    for name in docs:
        print(f"wrote {out_dir / name}")
    if "statistics.json" in docs:
        body = next(v for k, v in docs["statistics.json"].items() if k.endswith("_metrics"))
        shown = [
            k for k in ("accuracy", "recall", "precision", "f1", "auc", "weighted_f1", "mae", "rmse", "r2") if k in body
        ]
        print(
            f"{docs['statistics.json']['dataset']['item_count']} rows: "
            + ", ".join(
                f"{k} {body[k]['value']:.4f}" if isinstance(body[k]["value"], float) else f"{k} {body[k]['value']}"
                for k in shown
            )
        )
    return 0


__all__ = ["BaselineError", "run_baseline"]
