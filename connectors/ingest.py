"""Ingesting SageMaker capture and ground-truth files, or any table, into the input topics."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from kafka import KafkaProducer

from connectors.options import time_option
from connectors.progress import progress, progress_over
from connectors.sources import IngestState, SourceFile, Tree
from connectors.tables import read_chunks, table_format, total_rows
from stream.core.sagemaker import CaptureFormat, capture_to_inferences, ground_truth_to_labels
from stream.core.timefmt import format_time
from stream.errors import ConfigError, InputError, RecordError
from stream.settings import Settings

FLUSH_EVERY = 5000  # records between producer flushes (and state saves) within one file
SHOWN_REASONS = 5


@dataclass
class Summary:
    """What an ingest did."""

    files: int = 0
    sent: int = 0
    skipped_files: int = 0
    dry_run: bool = False
    interrupted: bool = False
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def reject(self, where: str, reason: str) -> None:
        """Count a bad line; keep the first few locations to show."""
        self.rejected[reason] += 1
        if len(self.examples) < SHOWN_REASONS:
            self.examples.append(f"{where}: {reason}")

    def report(self) -> str:
        """The closing summary."""
        lines = [
            f"{self.sent} records {'printed (dry run: nothing sent)' if self.dry_run else 'sent'} from "
            f"{self.files} files ({self.skipped_files} already sent before), "
            f"{sum(self.rejected.values())} lines rejected"
        ]
        lines += [f"  {n} x {reason}" for reason, n in self.rejected.most_common(SHOWN_REASONS)]
        if self.examples:
            lines += ["first rejected lines:"] + [f"  {e}" for e in self.examples]
        return "\n".join(lines)


def producer(settings: Settings) -> KafkaProducer:
    """A batching producer acknowledged by all replicas."""
    return KafkaProducer(
        **settings.kafka().require_reachable().kafka_python(), acks="all", linger_ms=20, batch_size=256 * 1024
    )


class DryRun:
    """Stands in for the producer with `--dry-run`: each record's value, exactly as it would be sent,
    is one line on standard output."""

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, **_: Any) -> None:
        """Print the value instead of sending it."""
        sys.stdout.write((value or b"").decode("utf-8") + "\n")

    def flush(self) -> None:
        """Flush standard output."""
        sys.stdout.flush()

    def close(self) -> None:
        """Nothing to close."""


Convert = Callable[[dict[str, Any], SourceFile], list[dict[str, Any]]]


def _convert_capture(fmt: CaptureFormat, model: str | None) -> Convert:
    def convert(doc: dict[str, Any], file: SourceFile) -> list[dict[str, Any]]:
        parts = file.prefix_parts
        endpoint = model or (parts[-2] if len(parts) >= 2 else "sagemaker")
        variant = parts[-1] if len(parts) >= 2 else ""
        # A batch-transform capture has no inferenceTime: it is timed by its file's hour folder.
        return capture_to_inferences(doc, fmt, endpoint, variant, default_time=format_time(file.hour.timestamp()))

    return convert


def ingest_tree(
    kind: str,
    tree: Tree,
    topic: str,
    settings: Settings,
    state: IngestState,
    convert: Convert,
    since: Any,
    until: Any,
    follow: bool,
    poll_s: float,
    summary: Summary,
    dry_run: bool = False,
) -> Summary:
    """Send every new line of the tree's files to `topic`, file by file, remembering progress
    (with `dry_run`, print the records instead and remember nothing)."""
    out: KafkaProducer | DryRun = DryRun() if dry_run else producer(settings)
    try:
        while True:
            files = [f for f in tree.list(since, until) if f.key not in state.done]
            for file in progress_over(files, f"ingest {kind}", "files", len(files)):
                _send_file(tree, file, topic, out, state, convert, summary, stamped=kind == "labels")
            if not follow:
                return summary
            time.sleep(poll_s)
    except KeyboardInterrupt:
        summary.interrupted = True
        return summary
    finally:
        out.flush()
        out.close()


def _send_file(
    tree: Tree,
    file: SourceFile,
    topic: str,
    out: KafkaProducer | DryRun,
    state: IngestState,
    convert: Convert,
    summary: Summary,
    stamped: bool = False,
) -> None:
    start = state.partial.get(file.key, 0)  # a restart resumes inside the file
    sent_here = start
    for number, line in enumerate(tree.lines(file), start=1):
        if number <= start or not line.strip():
            continue
        where = f"{tree.location}/{file.key}:{number}"
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise RecordError("not a JSON object")
            records = convert(doc, file)
        except ValueError as exc:
            summary.reject(where, f"not valid JSON ({exc.__class__.__name__})")
        except RecordError as exc:
            summary.reject(where, str(exc))
        else:
            # A ground-truth record carries no time of its own: its hour folder is when it came, which
            # becomes the label's `label_time` (docs/how-it-works.md#determinism). Not the Kafka
            # timestamp: the broker's time-based retention would delete last year's labels at once.
            for record in records:  # one per instance of a multi-instance capture or ground truth
                if stamped:
                    record.setdefault("label_time", format_time(file.hour.timestamp()))
                out.send(topic, key=record["event_id"].encode(), value=json.dumps(record).encode())
            summary.sent += len(records)
        sent_here = number
        if number % FLUSH_EVERY == 0:
            out.flush()
            state.partial[file.key] = sent_here
            state.save()
    out.flush()
    state.partial.pop(file.key, None)
    state.done.add(file.key)
    state.save()
    summary.files += 1


def ingest_files(args: argparse.Namespace, settings: Settings) -> Summary:
    """`ingest capture|labels`: every new file of the tree, in hour order, remembering progress."""
    summary = Summary(dry_run=args.dry_run)
    since = _hour(time_option(args.since, "--since"))
    until = _hour(time_option(args.until, "--until"))
    tree = Tree(args.src, args.endpoint_url)
    state = IngestState(
        Path(args.state) if args.state else IngestState.default_path(args.source_kind, args.src), args.dry_run
    )
    summary.skipped_files = len(state.done)
    if args.source_kind == "capture":
        fmt = CaptureFormat(
            args.inference_attribute or "", args.probability_attribute or "", args.probability_threshold_attribute
        )
        convert = _convert_capture(fmt, args.model)
        topic = settings.inference_topic
    else:

        def convert(doc: dict[str, Any], file: SourceFile) -> list[dict[str, Any]]:
            return ground_truth_to_labels(doc)

        topic = settings.label_topic
    return ingest_tree(
        args.source_kind,
        tree,
        topic,
        settings,
        state,
        convert,
        since,
        until,
        args.follow,
        args.poll,
        summary,
        dry_run=args.dry_run,
    )


def _hour(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def ingest_table(args: argparse.Namespace, settings: Settings) -> Summary:
    """`ingest table`: inference and/or label records from a table, with a column mapping."""
    summary = Summary()
    path = Path(args.src)
    if not args.event_id_column:
        raise ConfigError("--event-id-column is required")
    wants_inferences = bool(args.prediction_column)
    wants_labels = bool(args.label_column)
    if not wants_inferences and not wants_labels:
        raise ConfigError("give --prediction-column (inferences), --label-column (labels), or both")
    if wants_inferences and not args.time_column:
        raise ConfigError("inferences need --time-column")
    if wants_inferences and not (args.model or args.model_column):
        raise ConfigError("inferences need --model or --model-column")
    fmt = table_format(path, args.format)
    out = producer(settings)
    try:
        with progress(f"ingest {path.name}", "rows", total_rows(path, fmt)) as bar:
            for chunk in read_chunks(path, fmt, not args.no_header):
                summary.files = 1
                bar.update(len(chunk))
                for row, record_kind, record in _table_records(chunk, args, path):
                    if record_kind == "rejected":
                        summary.reject(row, record["reason"])
                        continue
                    topic = settings.inference_topic if record_kind == "inference" else settings.label_topic
                    out.send(topic, key=str(record["event_id"]).encode(), value=json.dumps(record).encode())
                    summary.sent += 1
        out.flush()
    finally:
        out.close()
    return summary


def _table_records(
    chunk: pd.DataFrame, args: argparse.Namespace, path: Path
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    columns = [
        c
        for c in (
            args.event_id_column,
            args.model_column,
            args.version_column,
            args.time_column,
            args.prediction_column,
            args.probability_column,
            args.label_column,
            args.label_time_column,
        )
        if c
    ]
    missing = [c for c in columns if c not in chunk.columns]
    if missing:
        raise InputError(
            f"{path}: no column(s) {', '.join(map(repr, missing))}; columns are: {', '.join(chunk.columns)}"
        )
    for index, row in chunk.iterrows():
        where = f"{path}: row {int(index) + 1}"  # type: ignore[call-overload]
        values = {c: _plain(row[c]) for c in columns}
        event_id = values[args.event_id_column]
        if event_id is None:
            yield where, "rejected", {"reason": f"column {args.event_id_column!r} is empty"}
            continue
        if args.prediction_column:
            inference = {
                "event_id": str(event_id),
                "model": args.model or values.get(args.model_column),
                "model_version": str(values.get(args.version_column) or ""),
                "inference_time": _time(values[args.time_column]),
                "prediction": values[args.prediction_column],
            }
            if args.probability_column and values[args.probability_column] is not None:
                inference["probability"] = float(values[args.probability_column])
            yield where, "inference", inference
        if args.label_column:
            label = {"event_id": str(event_id), "label": values[args.label_column]}
            if args.label_time_column and values[args.label_time_column] is not None:
                label["label_time"] = _time(values[args.label_time_column])
            yield where, "label", label


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _time(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return format_time(value.timestamp())
    return value
