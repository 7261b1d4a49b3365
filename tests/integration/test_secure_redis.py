"""Redis over TLS with an ACL user: the worker's store works through it, and every way of getting the
connection wrong is named in one line, without the password."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from stream.core.catalog import Catalog
from stream.errors import ConfigError
from stream.settings import Settings
from stream.stores.redis_connect import connect
from tests.factories import T0, Topic, inference, label
from tests.harness import Harness
from tests.integration.conftest import SecureRedis

pytestmark = pytest.mark.integration


def test_the_store_runs_over_tls_as_an_acl_user(secure_redis: SecureRedis) -> None:
    """Pairs joined through a TLS connection as the ACL user give the window scikit-learn would."""
    settings = Settings(window_seconds=60.0, label_grace=30.0, min_samples=1, rolling_size=0)
    h = Harness("redis", settings, Catalog(), 1, secure_redis.url(), prefix=f"tls-{uuid.uuid4().hex[:8]}")
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = [inf.msg(inference(f"e{i}", T0 + i, i % 2)) for i in range(10)]
    msgs += [lab.msg(label(f"e{i}", 1)) for i in range(10)]
    h.feed([*msgs, inf.msg(inference("tick", T0 + 100, 0))])
    [record] = h.metrics()
    assert record["sample_count"] == 10
    assert record["binary_classification_metrics"]["accuracy"]["value"] == 0.5


def failure(url: str) -> str:
    """The error the worker would stop with on this URL."""
    with pytest.raises(ConfigError) as err:
        asyncio.run(connect(url))
    return str(err.value)


def test_connection_mistakes_are_named_without_the_password(secure_redis: SecureRedis, redis_url: str) -> None:
    """Plain TCP to the TLS port, TLS to a plain port, an untrusted certificate and a wrong password
    each get their own advice; the password appears in none of them."""
    password = secure_redis.password
    plain_to_tls = failure(f"redis://{secure_redis.user}:{password}@127.0.0.1:{secure_redis.port}/0")
    assert "speaks TLS" in plain_to_tls and "rediss://" in plain_to_tls
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
    tls_to_plain = failure(f"rediss://127.0.0.1:{host_port.split(':')[1]}/0?ssl_ca_certs={secure_redis.ca}")
    assert "does not speak TLS" in tls_to_plain and "redis://" in tls_to_plain
    untrusted = failure(f"rediss://{secure_redis.user}:{password}@127.0.0.1:{secure_redis.port}/0")
    assert "not trusted" in untrusted and "ssl_ca_certs" in untrusted
    wrong = failure(secure_redis.url(password="not-the-password"))
    assert "refuses the user or password" in wrong
    for message in (plain_to_tls, tls_to_plain, untrusted, wrong):
        assert password not in message and "not-the-password" not in message
