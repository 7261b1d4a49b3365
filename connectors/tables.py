"""Tabular files in chunks with pandas: CSV (with or without header), JSON Lines, Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from stream.errors import InputError

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def table_format(path: Path, declared: str | None) -> str:
    """The declared format, else the one the extension implies."""
    if declared:
        return declared
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputError(f"{path}: cannot tell the format from the extension; give --format csv, jsonl or parquet")
    return found


def total_rows(path: Path, fmt: str) -> int | None:
    """Row count where it is cheap to know (Parquet metadata), else None."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def read_chunks(path: Path, fmt: str, header: bool = True, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks; columns of a header-less CSV are named "0", "1", ... (SageMaker's indexes).

    Values are read as they are written (CSV cells as text), so class labels keep their spelling.
    Each chunk's index is the 0-based row number in the file, for error messages.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if fmt == "csv":
            reader = pd.read_csv(
                path,
                chunksize=chunk_rows,
                header=0 if header else None,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
            )
            for chunk in reader:
                chunk.columns = [str(c) for c in chunk.columns]
                yield chunk
        elif fmt == "jsonl":
            for chunk in pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False):
                chunk.columns = [str(c) for c in chunk.columns]
                yield chunk
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            start = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                chunk = batch.to_pandas()
                chunk.index = range(start, start + len(chunk))
                start += len(chunk)
                yield chunk
        else:
            raise InputError(f"{path}: unknown format {fmt!r}; use csv, jsonl or parquet")
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty") from None
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot be read as {fmt}: {exc}") from None
