"""S3: `s3://bucket/prefix` locations, and SageMaker's report files for every closed window (model
quality) and every window's inputs (data quality, under `data-quality/`)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from stream.core.dataquality.window import QUALITY_KIND
from stream.core.estimates import ESTIMATED_PREFIX
from stream.core.metrics import STATISTICS_KEY
from stream.core.timefmt import parse_time
from stream.errors import ConfigError, DeliveryError
from stream.retry import DELIVERY, Retry
from stream.settings import Settings

QUALITY_PREFIX = "data-quality/"  # data-quality reports go under it, model quality's beside it


def split_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix) of `s3://bucket/prefix`; the prefix is empty or ends with a slash."""
    if not url.startswith("s3://") or not url[len("s3://") :].split("/", 1)[0]:
        raise ConfigError(f"{url}: expected s3://bucket/prefix")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def open_bucket(url: str, endpoint_url: str | None) -> tuple[Any, str, str]:
    """A boto3 S3 client that reached the bucket of `s3://bucket/prefix`, the bucket and the prefix
    (`endpoint_url` for S3-compatible servers; AWS_ENDPOINT_URL works too)."""
    import boto3

    bucket, prefix = split_s3_url(url)
    client = boto3.client("s3", endpoint_url=endpoint_url)
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - botocore raises many kinds; the message says which
        raise ConfigError(f"{url}: cannot open the bucket ({exc})") from None
    return client, bucket, prefix


def report_prefix(record: dict[str, Any]) -> str:
    """`MODEL[/VERSION]/yyyy/mm/dd/hh/` for an hour-long window, with `MMSS-Ns/` added for other sizes."""
    start = datetime.fromtimestamp(parse_time(record["window"]["start"]), tz=UTC)
    seconds = int(parse_time(record["window"]["end"]) - parse_time(record["window"]["start"]))
    path = record["model"] + (f"/{record['model_version']}" if record["model_version"] else "")
    path += start.strftime("/%Y/%m/%d/%H/")
    if seconds != 3600 or start.minute or start.second:
        path += start.strftime("%M%S") + f"-{seconds}s/"
    return path


def _sagemaker_entry(entry: Any) -> Any:
    """A statistics entry as SageMaker writes it: without truthstream's confidence interval."""
    if isinstance(entry, dict) and "confidence_interval" in entry:
        return {k: v for k, v in entry.items() if k != "confidence_interval"}
    return entry


def sagemaker_reports(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """statistics.json and constraint_violations.json of one window, in SageMaker's shapes."""
    key = STATISTICS_KEY[record["problem_type"]]
    statistics = {
        "version": 0.0,
        "dataset": {
            "item_count": record["sample_count"],
            "evaluation_time": record["window"]["end"],
            "model": record["model"],
            "model_version": record["model_version"],
            "window_start": record["window"]["start"],
            "window_end": record["window"]["end"],
        },
        # SageMaker's metrics only: truthstream's label-free estimates stay in the metrics records
        key: {
            name: _sagemaker_entry(entry)
            for name, entry in record[key].items()
            if not name.startswith(ESTIMATED_PREFIX)
        },
    }
    return {"statistics.json": statistics, "constraint_violations.json": {"violations": record.get("violations", [])}}


def quality_reports(record: dict[str, Any]) -> dict[str, str]:
    """A data-quality record's statistics.json and constraint_violations.json, as the service
    writes them (Jackson's layout, Java's doubles)."""
    from stream.core.javajson import dumps

    return {
        "statistics.json": dumps(record["statistics"]),
        "constraint_violations.json": dumps({"violations": record.get("violations", [])}),
    }


def deliver_reports(settings: Settings, dest: str, endpoint_url: str | None, group: str | None, once: bool) -> int:
    """Write each closed window's reports under `dest`, committing after the writes; returns how many."""
    from connectors.consumers import commit, group_consumer, records

    client, bucket, prefix = open_bucket(dest, endpoint_url)
    consumer = group_consumer(settings, settings.metrics_topic, group or f"{settings.app_id}-sink-s3")
    written = 0
    try:
        for message in records(consumer, follow=not once):
            record = json.loads(message.value)
            kind = record.get("window", {}).get("kind")
            if kind == "tumbling":
                base = prefix + report_prefix(record)
                for name, doc in sagemaker_reports(record).items():
                    _put(client, bucket, base + name, json.dumps(doc, indent=2).encode())
                written += 1
            elif kind == QUALITY_KIND:
                base = prefix + QUALITY_PREFIX + report_prefix(record)
                for name, text in quality_reports(record).items():
                    _put(client, bucket, base + name, text.encode())
                written += 1
            commit(consumer, message)
    finally:
        consumer.close()
    return written


def _put(client: Any, bucket: str, key: str, body: bytes) -> None:
    """Write one object, retrying while S3 does not answer."""
    retry = Retry(f"writing s3://{bucket}/{key}", DELIVERY)
    while True:
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
            return
        except (OSError, DeliveryError) as exc:
            time.sleep(retry.failed(exc))
