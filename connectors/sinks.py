"""Out of Kafka: SageMaker-shaped reports on S3, alerts to a webhook, and a violations reader.

Each is a kafka-python consumer group that commits an offset only after the record's effect
is done (the object written, the webhook answered 2xx): an outage delays, never loses.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from stream.errors import TruthstreamError
from stream.metrics import STATISTICS_KEY
from stream.settings import Settings
from stream.timefmt import parse_time

# kafka-python's first group join waits out a session timeout on some brokers (tansu: ~23 s
# with the 45 s default); 6 s keeps start-up short while tolerating GC pauses.
SESSION_TIMEOUT_MS = 6000
POLL_MS = 500
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
HTTP_TIMEOUT_S = 10.0


class SinkError(TruthstreamError):
    """A sink cannot start or its destination refuses permanently."""


def group_consumer(settings: Settings, topic: str, group: str, earliest: bool = True) -> KafkaConsumer:
    """A consumer in `group` on `topic` with manual commits."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if earliest else "latest",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
    )
    consumer.subscribe([topic])
    return consumer


def records(consumer: KafkaConsumer, follow: bool, idle_s: float = 3.0, from_s: float | None = None) -> Iterator[Any]:
    """Messages as they come; without `follow`, stop once nothing new came for `idle_s` after joining.
    With `from_s`, every assigned partition starts at that time (what the first poll returned is dropped)."""
    quiet_since = None
    pending_seek = from_s is not None
    while True:
        batch = consumer.poll(timeout_ms=POLL_MS)
        if pending_seek and consumer.assignment():
            assigned = list(consumer.assignment())
            found = consumer.offsets_for_times({tp: int(from_s * 1000) for tp in assigned})  # type: ignore[operator]
            ends = consumer.end_offsets(assigned)
            for tp in assigned:
                consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
            pending_seek = False
            continue
        if batch:
            quiet_since = None
            for messages in batch.values():
                yield from messages
        elif not follow and consumer.assignment():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > idle_s:
                return


def commit(consumer: KafkaConsumer, message: Any) -> None:
    """Commit past one message."""
    tp = TopicPartition(message.topic, message.partition)
    consumer.commit({tp: OffsetAndMetadata(message.offset + 1, None, -1)})


def retrying(what: str, action: Callable[[], None], max_attempts: int = 0) -> None:
    """Run `action` until it succeeds, backing off; give up after `max_attempts` (0: never)."""
    delay, attempt = RETRY_FIRST_S, 0
    while True:
        attempt += 1
        try:
            action()
            return
        except (OSError, urllib.error.URLError, SinkError) as exc:
            if max_attempts and attempt >= max_attempts:
                raise SinkError(f"{what} failed {attempt} times, last: {exc}") from None
            print(f"{what} failed ({exc}); retrying in {delay:.1f} s", flush=True)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


# -- S3 -------------------------------------------------------------------------------------------
def report_prefix(record: dict[str, Any]) -> str:
    """`MODEL[/VERSION]/yyyy/mm/dd/hh/` for an hour-long window, with `MMSS-Ns/` added for other sizes."""
    start = datetime.fromtimestamp(parse_time(record["window"]["start"]), tz=timezone.utc)
    seconds = int(parse_time(record["window"]["end"]) - parse_time(record["window"]["start"]))
    path = record["model"] + (f"/{record['model_version']}" if record["model_version"] else "")
    path += start.strftime("/%Y/%m/%d/%H/")
    if seconds != 3600 or start.minute or start.second:
        path += start.strftime("%M%S") + f"-{seconds}s/"
    return path


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
        key: record[key],
    }
    return {"statistics.json": statistics, "constraint_violations.json": {"violations": record.get("violations", [])}}


def run_sink_s3(args: argparse.Namespace, settings: Settings) -> int:
    """Write each closed window's reports under s3://bucket/prefix; commit after the writes."""
    import boto3

    if not args.dest.startswith("s3://"):
        raise SinkError(f"{args.dest}: expected s3://bucket/prefix")
    bucket, _, prefix = args.dest[len("s3://") :].partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    client = boto3.client("s3", endpoint_url=args.endpoint_url)
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001 - botocore's error types vary; the message names the cause
        raise SinkError(f"{args.dest}: cannot open the bucket ({exc})") from None
    consumer = group_consumer(settings, settings.metrics_topic, args.group or f"{settings.app_id}-sink-s3")
    written = 0
    try:
        for message in records(consumer, follow=not args.once):
            record = json.loads(message.value)
            if record.get("window", {}).get("kind") == "tumbling":
                base = prefix + report_prefix(record)
                for name, doc in sagemaker_reports(record).items():
                    body = json.dumps(doc, indent=2).encode()
                    retrying(
                        f"writing s3://{bucket}/{base}{name}",
                        lambda k=base + name, b=body: client.put_object(
                            Bucket=bucket, Key=k, Body=b, ContentType="application/json"
                        ),
                    )
                written += 1
            commit(consumer, message)
    finally:
        consumer.close()
    print(f"wrote the reports of {written} windows")
    return 0


# -- webhook ----------------------------------------------------------------------------------------
def slack_text(v: dict[str, Any]) -> str:
    """A one-line alert, Slack's `text` field."""
    version = f" v{v['model_version']}" if v.get("model_version") else ""
    return (
        f":rotating_light: {v['model']}{version}: {v['description']} "
        f"(window {v['window']['start']} to {v['window']['end']}, {v['sample_count']} samples)"
    )


def post(url: str, doc: dict[str, Any]) -> None:
    """POST JSON; anything but 2xx raises."""
    request = urllib.request.Request(
        url, data=json.dumps(doc).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:  # noqa: S310 - the user's URL
            if not 200 <= answer.status < 300:
                raise SinkError(f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        raise SinkError(f"HTTP {exc.code}") from None


def run_sink_webhook(args: argparse.Namespace, settings: Settings) -> int:
    """POST every violation to the URL; its offset is committed only once the endpoint accepted it."""
    consumer = group_consumer(settings, settings.violations_topic, args.group or f"{settings.app_id}-sink-webhook")
    sent = 0
    try:
        for message in records(consumer, follow=not args.once):
            violation = json.loads(message.value)
            retrying(
                f"POST {args.url}", lambda v=violation: post(args.url, {**v, "text": slack_text(v)}), args.max_attempts
            )
            commit(consumer, message)
            sent += 1
    finally:
        consumer.close()
    print(f"posted {sent} violations")
    return 0


# -- violations reader -------------------------------------------------------------------------------
COLUMNS = (("window start", 20), ("model", 14), ("metric", 22), ("value", 10), ("operator", 30), ("threshold", 10))


def run_violations(args: argparse.Namespace, settings: Settings) -> int:
    """Print violations as a table or JSON lines, from a time, optionally following."""
    from_s = parse_time(args.from_time) if args.from_time else None
    consumer = group_consumer(settings, settings.violations_topic, args.group)
    if not args.json:
        print("".join(f"{name:<{width}}" for name, width in COLUMNS))
    shown = 0
    try:
        for message in records(consumer, follow=args.follow, from_s=from_s):
            v = json.loads(message.value)
            if args.json:
                print(json.dumps(v), flush=True)
            else:
                cells = (
                    v["window"]["start"][:19],
                    v["model"] + (f" v{v['model_version']}" if v["model_version"] else ""),
                    v["metric_name"],
                    f"{v['value']:.4g}",
                    v["constraint_check_type"],
                    f"{v['threshold']:g}",
                )
                print("".join(f"{str(c):<{w}}" for c, (_, w) in zip(cells, COLUMNS)), flush=True)
            commit(consumer, message)
            shown += 1
    finally:
        consumer.close()
    if not args.json:
        print(f"{shown} violations")
    return 0
