"""Reading a labelled data set (CSV, JSON Lines, Parquet) into a `Baseline`, row by validated row."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectors.progress import progress
from connectors.tables import read_chunks, table_format, total_rows
from stream.core.baseline import Baseline
from stream.core.calibration import Calibration, MulticlassCalibration
from stream.core.records import BINARY, MULTICLASS, ProblemType, canonical_class, probability_of
from stream.core.segments import segment_value
from stream.errors import InputError, RecordError


def _column(chunk: pd.DataFrame, name: str, path: Path, flag: str) -> pd.Series:
    if name not in chunk.columns:
        raise InputError(f"{path}: no column {name!r} (from {flag}); columns are: {', '.join(chunk.columns)}")
    return chunk[name]


class RowError(InputError):
    """A bad value in a data set, with the 0-based row it is on (to report the earliest)."""

    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.row = row


def _fail(path: Path, column: str, row: Any, value: Any, why: str, header: bool, fmt: str) -> RowError:
    line = f" (line {int(row) + 2 if header else int(row) + 1})" if fmt == "csv" else ""
    return RowError(f"{path}: column {column!r}, row {int(row) + 1}{line}: {why}: {value!r}", int(row))


def _canonical(
    series: pd.Series, problem_type: ProblemType, path: Path, column: str, header: bool, fmt: str
) -> list[str]:
    failures = []  # the earliest row is reported, whatever is wrong with it
    missing = series.isna()
    if missing.any():
        row = missing.idxmax()
        failures.append(_fail(path, column, row, series[row], "missing value", header, fmt))
    mapping: dict[Any, str] = {}
    for value in pd.unique(series[~missing]):
        try:
            plain = value.item() if isinstance(value, np.generic) else value  # numpy scalars from JSON/Parquet
            mapping[value] = canonical_class(plain, column, problem_type)
        except RecordError as exc:
            row = series[series == value].index[0]
            failures.append(_fail(path, column, row, value, exc.reason, header, fmt))
    if failures:
        raise min(failures, key=lambda f: f.row)
    return [mapping[v] for v in series.tolist()]


def _scores(series: pd.Series, path: Path, column: str, header: bool, fmt: str) -> np.ndarray:
    numbers = pd.to_numeric(series, errors="coerce").astype(float)
    bad = numbers.isna() | (numbers < 0) | (numbers > 1)
    if bad.any():
        row = bad.idxmax()
        why = "not a number" if math.isnan(numbers[row]) else "probability outside [0, 1]"
        raise _fail(path, column, row, series[row], why, header, fmt)
    return numbers.to_numpy()


def baseline_file(  # the command's parsed flags
    args: argparse.Namespace, calibration: Calibration | MulticlassCalibration | None = None
) -> Baseline:
    """Read DATA in chunks and accumulate it, validating every row (with a calibration, also the
    label-free estimate of its metrics from the scores)."""
    path = Path(args.data)
    problem_type: ProblemType = args.problem_type
    if not args.ground_truth_attribute:
        raise InputError("--ground-truth-attribute is required")
    if not args.inference_attribute and not (problem_type == BINARY and args.probability_attribute):
        raise InputError(
            "--inference-attribute is required (or, for BinaryClassification, "
            "--probability-attribute with --probability-threshold-attribute)"
        )
    if args.probability_attribute and problem_type != BINARY:
        raise InputError("--probability-attribute applies to BinaryClassification only")
    if args.probabilities_attribute and problem_type != MULTICLASS:
        raise InputError("--probabilities-attribute applies to MulticlassClassification only")
    fmt = table_format(path, args.format)
    header = not args.no_header
    baseline = Baseline(problem_type, calibration=calibration)

    with progress(f"{getattr(args, 'command', None) or 'baseline'} {path.name}", "rows", total_rows(path, fmt)) as bar:
        for chunk in read_chunks(path, fmt, header, args.chunk_rows):
            truth, predicted, scores, probabilities = _columns(chunk, args, path, header, fmt)
            if args.event_id_attribute:
                ids = _column(chunk, args.event_id_attribute, path, "--event-id-attribute").astype(str).tolist()
            else:
                ids = [str(i) for i in chunk.index]  # the row number: the same whatever the chunk size
            segments = {
                name: [_plain(v) for v in _column(chunk, name, path, "--segment-attribute")]
                for name in getattr(args, "segment_attribute", None) or ()  # `check` has the flag
            }
            baseline.add(truth, predicted, scores, ids, probabilities, segments)
            bar.update(len(chunk))
    if baseline.rows == 0:
        raise InputError(f"{path}: the file has no data rows")
    return baseline


def _plain(value: Any) -> str:
    """A segment column's cell as the worker reads a segment field (numpy scalars as Python's)."""
    if isinstance(value, np.generic):
        value = value.item()
    return segment_value(None if value is None or (isinstance(value, float) and math.isnan(value)) else value)


def _columns(
    chunk: pd.DataFrame, args: argparse.Namespace, path: Path, header: bool, fmt: str
) -> tuple[list[str], list[str], np.ndarray | None, list[dict[str, float]] | None]:
    """A chunk's true classes, predicted classes, scores and class probabilities, validated; on bad
    values, the error of the earliest bad row, in whichever column."""
    failures: list[RowError] = []

    def checked(read: Any) -> Any:
        try:
            return read()
        except RowError as exc:
            failures.append(exc)
            return None

    def classes(name: str, flag: str) -> list[str]:
        return _canonical(_column(chunk, name, path, flag), args.problem_type, path, name, header, fmt)

    truth = checked(lambda: classes(args.ground_truth_attribute, "--ground-truth-attribute"))
    scores = None
    if args.probability_attribute:
        column = _column(chunk, args.probability_attribute, path, "--probability-attribute")
        scores = checked(lambda: _scores(column, path, args.probability_attribute, header, fmt))
    probabilities = None
    if args.probabilities_attribute:
        column = _column(chunk, args.probabilities_attribute, path, "--probabilities-attribute")
        probabilities = checked(lambda: _class_probabilities(column, path, args.probabilities_attribute, header, fmt))
    predicted = None
    if args.inference_attribute:
        predicted = checked(lambda: classes(args.inference_attribute, "--inference-attribute"))
    if failures:
        raise min(failures, key=lambda f: f.row)
    if predicted is None:  # binary, from the probability (the argument checks require one of the two)
        predicted = np.where(scores >= args.probability_threshold_attribute, "1", "0").tolist()
    return truth, predicted, scores, probabilities


def _class_probabilities(series: pd.Series, path: Path, column: str, header: bool, fmt: str) -> list[dict[str, float]]:
    """Each row's {canonical class: probability}, from a JSON object (or its text, in a CSV)."""
    out = []
    for row, value in series.items():
        try:
            doc = json.loads(value) if isinstance(value, str) else value
            if not isinstance(doc, dict) or not doc:
                raise RecordError("expected a JSON object of class -> probability", column)
            out.append(
                {canonical_class(c, column, MULTICLASS): probability_of(p, f"{column}.{c}") for c, p in doc.items()}
            )
        except (ValueError, RecordError) as exc:
            why = exc.reason if isinstance(exc, RecordError) else "not a JSON object"
            raise _fail(path, column, row, value, why, header, fmt) from None
    return out
