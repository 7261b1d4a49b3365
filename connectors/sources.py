"""Where SageMaker's files live: a local directory or an S3 prefix, walked hour by hour.

SageMaker writes data capture to `PREFIX/ENDPOINT/VARIANT/yyyy/mm/dd/hh/NAME.jsonl` and
ground truth to `PREFIX/yyyy/mm/dd/hh/NAME.jsonl`; files are written once and never
changed, so a source is read file by file in time order, and what was read is remembered
per file (and, for the file in progress, per line) in a small state file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connectors.files import atomic_files
from connectors.s3 import open_bucket
from stream.errors import InputError

HOUR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


@dataclass(frozen=True, order=True)
class SourceFile:
    """One hourly file: its hour, its path relative to the source, and the parts before the hour."""

    hour: datetime
    key: str

    @property
    def prefix_parts(self) -> list[str]:
        """Path components before `yyyy/mm/dd/hh` (for captures: ..., ENDPOINT, VARIANT)."""
        return self.key.split("/")[:-5]


def hour_of(key: str) -> datetime | None:
    """The hour a SageMaker-layout path belongs to, or None if it does not follow the layout."""
    match = HOUR.search(key)
    if not match:
        return None
    year, month, day, hour = map(int, match.groups())
    return datetime(year, month, day, hour, tzinfo=UTC)


class Tree:
    """A source of hourly files: `list()` them in time order and `lines()` of one."""

    def __init__(self, location: str, endpoint_url: str | None = None) -> None:
        self.location = location.rstrip("/")
        self.s3 = location.startswith("s3://")
        if self.s3:
            self.client, self.bucket, self.prefix = open_bucket(self.location, endpoint_url)
        elif not Path(location).is_dir():
            raise InputError(f"{location}: no such directory")

    def list(self, since: datetime | None = None, until: datetime | None = None) -> list[SourceFile]:
        """Every `.jsonl` file in the layout, oldest hour first, within `[since, until)`."""
        keys: Iterator[str]
        if self.s3:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
            keys = (o["Key"][len(self.prefix) :] for page in pages for o in page.get("Contents", []))
        else:
            root = Path(self.location)
            keys = (p.relative_to(root).as_posix() for p in root.rglob("*.jsonl"))
        files = []
        for key in keys:
            hour = hour_of(key)
            if hour is None or not key.endswith(".jsonl"):
                continue
            if (since is None or hour >= since.replace(minute=0, second=0, microsecond=0)) and (
                until is None or hour < until
            ):
                files.append(SourceFile(hour, key))
        return sorted(files)

    def lines(self, file: SourceFile) -> Iterator[bytes]:
        """The lines of a file, without their line ends."""
        if self.s3:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + file.key)["Body"]
            yield from body.iter_lines()
        else:
            with open(Path(self.location) / file.key, "rb") as handle:
                for line in handle:
                    yield line.rstrip(b"\r\n")


class IngestState:
    """What an ingest has sent: finished files, and lines sent of the file in progress.

    Saved atomically after every flush of the producer, so a restart resumes after the
    last line Kafka acknowledged (a crash between the two can resend lines of one flush;
    the worker counts such duplicates once).
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path, self.read_only = path, read_only  # read_only: a dry run reads the state, never writes it
        self.done: set[str] = set()
        self.partial: dict[str, int] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_text())
                self.done, self.partial = set(doc["done"]), dict(doc["partial"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{path}: unreadable ingest state ({exc}); delete it to start over") from None

    def save(self) -> None:
        """Write the state atomically (unless read-only)."""
        if self.read_only:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_files(self.path) as (tmp,):
            tmp.write_text(json.dumps({"done": sorted(self.done), "partial": self.partial}))

    @staticmethod
    def default_path(kind: str, source: str) -> Path:
        """Where the state of an ingest of `source` lives unless --state says otherwise."""
        digest = hashlib.sha256(f"{kind}\x1f{source}".encode()).hexdigest()[:16]
        return (
            Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
            / "truthstream"
            / (f"ingest-{kind}-{digest}.json")
        )
