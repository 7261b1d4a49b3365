"""Webhooks: every violation POSTed as JSON with a Slack-compatible `text`, until the endpoint takes it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from stream.errors import DeliveryError
from stream.retry import DELIVERY, Retry
from stream.settings import Settings

HTTP_TIMEOUT_S = 10.0


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
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            if not 200 <= answer.status < 300:
                raise DeliveryError(f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code}") from None


def deliver_violations(settings: Settings, url: str, group: str | None, once: bool, max_attempts: int) -> int:
    """POST every violation to `url`; its offset is committed only once the endpoint accepted it.
    Returns how many were posted."""
    from connectors.consumers import commit, group_consumer, records

    consumer = group_consumer(settings, settings.violations_topic, group or f"{settings.app_id}-sink-webhook")
    sent = 0
    try:
        for message in records(consumer, follow=not once):
            violation = json.loads(message.value)
            retry = Retry(f"POST {url}", DELIVERY, max_attempts)
            while True:
                try:
                    post(url, {**violation, "text": slack_text(violation)})
                    break
                except (OSError, urllib.error.URLError, DeliveryError) as exc:
                    time.sleep(retry.failed(exc))
            commit(consumer, message)
            sent += 1
    finally:
        consumer.close()
    return sent
