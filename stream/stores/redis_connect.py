"""Connecting to Redis: one client from the URL (TLS with rediss://, ACL users in the URL), checked at
start-up, and an error that says what is wrong (a TLS mismatch, a refused password) in one line."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError

from stream.errors import ConfigError
from stream.redact import redact

CONNECT_TIMEOUT_S = 5.0  # a Redis that answers nothing in 5 s is not there (or speaks another protocol)


# What a TLS client sees from a server that does not speak TLS: an SSL error, or no answer at all.
NOT_TLS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer", "Timeout")


def explain(url: str, exc: BaseException) -> str:
    """What a failed first contact with Redis most likely means, for the user to act on."""
    text = str(exc)
    tls = url.startswith("rediss://")
    if not tls and ("Connection reset" in text or "Timeout" in text or "closed by server" in text):
        return (
            "no Redis answer over plain TCP; if this Redis speaks TLS (tls-port), use rediss://... "
            "(with ?ssl_ca_certs=CA.pem)"
        )
    if tls and any(sign in text for sign in NOT_TLS):
        return "no TLS answer: if this Redis does not speak TLS on that port, use redis://..., or its tls-port"
    if tls and "CERTIFICATE_VERIFY_FAILED" in text:
        return "the Redis server's certificate is not trusted: give its CA with ?ssl_ca_certs=CA.pem"
    if isinstance(exc, AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        return "Redis refuses the user or password: put them in the URL (redis://USER:PASSWORD@host:port/0)"
    if "NOPERM" in text:
        return "the Redis user may not run what truthstream needs (EVAL, and keys under the prefix): check its ACL"
    return "check TRUTHSTREAM_REDIS_URL"


def cluster_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL naming several nodes (`redis://[user:pw@]host1:port1,host2:port2/0`) as the URL
    of its first node and the others' (host, port), so a client starts even while one is down.

    >>> cluster_nodes("redis://u:p@a:7000,b:7001/0?ssl_ca_certs=ca.pem")
    ('redis://u:p@a:7000/0?ssl_ca_certs=ca.pem', [('b', 7001)])
    """
    scheme, sep, rest = url.partition("://")
    split = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:split], rest[split:]
    userinfo, at, hosts = netloc.rpartition("@")
    first, *others = hosts.split(",")
    nodes = []
    for node in others:
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"TRUTHSTREAM_REDIS_URL: {node!r} is not HOST:PORT (several cluster nodes: h1:p1,h2:p2)")
        nodes.append((host, int(port)))
    return f"{scheme}{sep}{userinfo}{at}{first}{tail}", nodes


def _client(url: str, cluster: bool, **options: Any) -> Any:
    if not cluster:
        return aioredis.from_url(url, **options)
    first, others = cluster_nodes(url)
    return RedisCluster.from_url(first, startup_nodes=[ClusterNode(h, p) for h, p in others] or None, **options)


async def connect(url: str, cluster: bool = False) -> Any:
    """A client of the Redis at `url` (redis-py's cluster client if `cluster`: the URL names any
    node, or several separated by commas), after a probe answered a PING within CONNECT_TIMEOUT_S;
    ConfigError with the likely reason otherwise (the URL redacted), also when the Redis is a cluster
    node and `cluster` is off, or the reverse. The client itself has no socket timeout: a busy Redis
    is slow, not gone."""
    probe = _client(url, cluster, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S)
    try:
        await probe.ping()
        if not cluster and (await probe.info("cluster")).get("cluster_enabled"):
            raise ConfigError(f"Redis at {redact(url)} is a node of a Redis Cluster: set TRUTHSTREAM_REDIS_CLUSTER=on")
    except RedisClusterException as exc:
        raise ConfigError(
            f"Redis at {redact(url)} does not answer as a cluster ({redact(str(exc))}): if it is a single Redis, "
            "set TRUTHSTREAM_REDIS_CLUSTER=off"
        ) from None
    except (RedisError, OSError) as exc:
        raise ConfigError(f"Redis at {redact(url)} does not answer ({redact(str(exc))}): {explain(url, exc)}") from None
    finally:
        await probe.aclose()
    return _client(url, cluster)
