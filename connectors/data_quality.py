"""Reading a data set into a data-quality profile, as SageMaker's analyzer reads it: CSV cells as
text (header or not), JSON Lines records by name, SageMaker capture files (output columns first,
then inputs, by position), Parquet values as their text; and writing the service's files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.files import write_json_files
from connectors.progress import progress
from connectors.tables import table_format, total_rows
from stream.core.dataquality.capture import capture_rows
from stream.core.dataquality.profile import DataProfile, column_names
from stream.core.javajson import dumps
from stream.core.sagemaker import is_capture
from stream.errors import InputError, RecordError


def _csv_rows(path: Path) -> Iterator[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from (row for row in csv.reader(f) if row)


def read_profile(path: Path, fmt: str | None, header: bool, names: list[str] | None = None) -> DataProfile:
    """The profile of a data set. `names` (a baseline's, in order) name the columns of a file
    without header and of captures by position; without them such columns are `_c0`, `_c1`, ..."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = table_format(path, fmt)
    profile: DataProfile | None = None
    line = 0
    try:
        with progress(f"data quality {path.name}", "rows", total_rows(path, kind)) as bar:
            for row in _rows(path, kind):
                line += 1
                if isinstance(row, dict):
                    profile = profile or DataProfile(list(names or []))
                    profile.add_record(row)
                else:
                    if profile is None:
                        if header and kind == "csv":
                            profile = DataProfile(list(row))
                            continue
                        profile = DataProfile(list(names or column_names(len(row))))
                    profile.add_row(row)
                bar.update(1)
    except (ValueError, RecordError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as {kind} (record {line + 1}): {exc}") from None
    if profile is None or not profile.rows:
        raise InputError(f"{path}: the file has no data rows")
    return profile


def _rows(path: Path, kind: str) -> Iterator[list[str | None] | dict[str, Any]]:
    if kind == "csv":
        yield from _csv_rows(path)
    elif kind == "jsonl":
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                doc = json.loads(line)
                if isinstance(doc, dict) and is_capture(doc):
                    yield from capture_rows(doc)
                elif isinstance(doc, dict):
                    yield doc.get("features", doc) if isinstance(doc.get("features"), dict) else doc
                else:
                    raise ValueError("each line must be a JSON object")
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()


def write_service_files(docs: dict[str, Any], out_dir: Path) -> None:
    """Write each document as the service does (Jackson's layout, Java's numbers, no final
    newline), all of them or none."""
    write_json_files(docs, out_dir, render=dumps)
