"""Topic set-up with kafka-python's admin client: what the worker (and the commands that make
topics, the demo and republishing) need before they start."""

from __future__ import annotations

import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream.errors import ConfigError
from stream.kafka_clients import KafkaConnection

# How long start-up waits for a broker that is still coming up (a fresh container, a CI service);
# a container platform restarts a worker that gave up (docker-compose.yml: restart unless-stopped).
CONNECT_TIMEOUT_S = 10.0


def admin(kafka: KafkaConnection) -> KafkaAdminClient:
    """An admin client, retrying until the broker answers or CONNECT_TIMEOUT_S passes."""
    kafka.require_reachable(CONNECT_TIMEOUT_S)
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return KafkaAdminClient(**kafka.kafka_python(), client_id="truthstream-admin", request_timeout_ms=10000)
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"no Kafka broker answers at {','.join(kafka.servers)} over {kafka.security_protocol} ({exc}); "
                    "check TRUTHSTREAM_BROKER and the TRUTHSTREAM_KAFKA_* security settings"
                ) from None
            time.sleep(0.5)


def ensure_topics(kafka: KafkaConnection, topics: Iterable[str], partitions: int) -> dict[str, int]:
    """Create the topics that do not exist yet; return every topic's partition count."""
    wanted = list(dict.fromkeys(topics))
    client = admin(kafka)
    try:
        existing = set(client.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                client.create_topics([NewTopic(t, partitions, 1) for t in missing], raise_errors=False)
            except TopicAlreadyExistsError:
                pass
        counts: dict[str, int] = {}
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while len(counts) < len(wanted):
            for meta in client.describe_topics(wanted):
                if meta.get("partitions") and not meta.get("error_code"):
                    counts[meta["name"]] = len(meta["partitions"])
            if len(counts) < len(wanted):
                if time.monotonic() > deadline:
                    raise ConfigError(f"topics {sorted(set(wanted) - set(counts))} did not become available")
                time.sleep(0.2)
        return counts
    finally:
        client.close()
