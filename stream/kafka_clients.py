"""How every Kafka client of the project connects: bootstrap servers and security (TLS, SASL).

One `KafkaConnection` (built by `Settings.kafka()`) gives the keyword arguments of kafka-python's
clients (connectors, replay, topic set-up, benchmark), aiokafka's (benchmark) and the credentials
faust hands to its aiokafka clients (the worker), so all of them connect the same way.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider as AsyncTokenProvider

from stream.errors import ConfigError

try:  # kafka-python 3
    from kafka.net.sasl.oauth import AbstractTokenProvider as TokenProvider
except ImportError:  # kafka-python 2
    from kafka.sasl.oauth import AbstractTokenProvider as TokenProvider

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# A client library waits 30 s or more before it gives up on a broker that is not there; a TCP probe
# of the bootstrap servers says so within this long (a broker still starting gets this much time).
REACH_TIMEOUT_S = 10.0
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them (Kafka's own setting names)."""

    servers: list[str]
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: str = field(default="", repr=False)
    msk_region: str = ""  # OAUTHBEARER: Amazon MSK IAM tokens for this AWS region

    def validate(self) -> KafkaConnection:
        """Raise ConfigError (naming the setting) for a combination that cannot connect; return self."""
        name = "TRUTHSTREAM_KAFKA_"
        if self.security_protocol not in PROTOCOLS:
            raise ConfigError(f"{name}SECURITY_PROTOCOL must be one of {', '.join(PROTOCOLS)}")
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and self.sasl_mechanism not in MECHANISMS:
            raise ConfigError(
                f"{name}SASL_MECHANISM must be one of {', '.join(MECHANISMS)} with {self.security_protocol}"
            )
        if sasl and self.sasl_mechanism != "OAUTHBEARER" and not (self.sasl_username and self.sasl_password):
            raise ConfigError(f"{self.sasl_mechanism} needs {name}SASL_USERNAME and {name}SASL_PASSWORD (or _FILE)")
        if sasl and self.sasl_mechanism == "OAUTHBEARER" and not self.msk_region:
            raise ConfigError(f"OAUTHBEARER (Amazon MSK IAM) needs {name}MSK_REGION")
        if not sasl and self.sasl_mechanism:
            raise ConfigError(f"{name}SASL_MECHANISM is set but {name}SECURITY_PROTOCOL is {self.security_protocol}")
        for setting, path in (
            ("SSL_CAFILE", self.ssl_cafile),
            ("SSL_CERTFILE", self.ssl_certfile),
            ("SSL_KEYFILE", self.ssl_keyfile),
        ):
            if path and not Path(path).is_file():
                raise ConfigError(f"{name}{setting}: no file {path}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError(f"a client certificate needs both {name}SSL_CERTFILE and {name}SSL_KEYFILE")
        return self

    def require_reachable(self, timeout_s: float = REACH_TIMEOUT_S) -> KafkaConnection:
        """Return self once a bootstrap server accepts a TCP connection; ConfigError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            for server in self.servers:
                host, _, port = server.rpartition(":")
                try:
                    with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
                        return self
                except (OSError, ValueError):
                    continue
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"no Kafka broker answers at {','.join(self.servers)}; check TRUTHSTREAM_BROKER (or --broker)"
                )
            time.sleep(0.5)

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (CA file, optional client certificate), or None without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password or None)
        return context

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        return self._options(MskTokenProvider)

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients."""
        return self._options(AsyncMskTokenProvider)

    def _options(self, token_provider: type) -> dict[str, Any]:
        """Client options in the names kafka-python and aiokafka share; they differ only in the kind
        of OAUTHBEARER token provider they call."""
        options: dict[str, Any] = {"bootstrap_servers": self.servers, "security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism == "OAUTHBEARER":
            options.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=token_provider(self.msk_region))
        elif self.sasl_mechanism:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return options

    def faust_credentials(self) -> Any:
        """The credentials a faust App passes to its aiokafka clients (None: plaintext)."""
        import faust

        context = self.ssl_context()
        if self.sasl_mechanism == "OAUTHBEARER":
            return faust.OAuthCredentials(oauth_cb=AsyncMskTokenProvider(self.msk_region), ssl_context=context)
        if self.sasl_mechanism:  # SASL_SSL when given a TLS context, else SASL_PLAINTEXT
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                ssl_context=context,
                mechanism=self.sasl_mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None


def _msk_token(region: str) -> tuple[str, int]:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError:
        raise ConfigError("OAUTHBEARER for Amazon MSK needs: pip install 'truthstream[msk]'") from None
    token, expires_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return str(token), int(expires_ms)


class _MskToken:
    """An Amazon MSK IAM token for a region, renewed a minute before it expires."""

    def __init__(self, region: str) -> None:
        self.region, self.value, self.expires_ms = region, "", 0

    def current(self) -> str:
        """A valid token."""
        if time.time() * 1000 > self.expires_ms - 60_000:
            self.value, self.expires_ms = _msk_token(self.region)
        return self.value


class MskTokenProvider(TokenProvider):  # type: ignore[misc]  # kafka-python ships no types
    """kafka-python's OAUTHBEARER token provider for Amazon MSK IAM."""

    def __init__(self, region: str) -> None:
        super().__init__()
        self.msk = _MskToken(region)

    def token(self) -> str:
        """A valid token."""
        return self.msk.current()


class AsyncMskTokenProvider(AsyncTokenProvider):  # type: ignore[misc]  # aiokafka ships no types
    """aiokafka's (and so faust's) OAUTHBEARER token provider for Amazon MSK IAM."""

    def __init__(self, region: str) -> None:
        self.msk = _MskToken(region)

    async def token(self) -> str:
        """A valid token (signing is local: no I/O to await)."""
        return self.msk.current()
