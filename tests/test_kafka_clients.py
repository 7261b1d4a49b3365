"""How every Kafka client connects: options for kafka-python, aiokafka and faust from the settings."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import faust
import pytest

from stream.errors import ConfigError
from stream.settings import Settings


def test_plaintext_is_the_default() -> None:
    """Without security settings, clients connect in plain text to the broker URL's hosts."""
    kafka = Settings(broker="kafka://a:9092,b:9093").kafka()
    assert kafka.kafka_python() == {"bootstrap_servers": ["a:9092", "b:9093"], "security_protocol": "PLAINTEXT"}
    assert kafka.faust_credentials() is None


def test_sasl_ssl_with_scram_reaches_every_kind_of_client(tmp_path: Path) -> None:
    """SASL_SSL + SCRAM-SHA-512: kafka-python and aiokafka get the mechanism, the user, the password and
    a TLS context trusting the CA; faust gets SASL credentials over TLS."""
    ca = tmp_path / "ca.pem"
    ca.write_text(_any_ca_pem())
    (tmp_path / "pw").write_text("s3cret-password\n")
    env = {
        "TRUTHSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TRUTHSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TRUTHSTREAM_KAFKA_SASL_USERNAME": "monitor",
        "TRUTHSTREAM_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "pw"),
        "TRUTHSTREAM_KAFKA_SSL_CAFILE": str(ca),
    }
    kafka = Settings.from_env(env).kafka()
    for options in (kafka.kafka_python(), kafka.aiokafka()):
        assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("monitor", "s3cret-password")
        assert options["ssl_context"].get_ca_certs()
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials) and credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.password == "s3cret-password"
    assert "s3cret-password" not in repr(kafka) and Settings.from_env(env).masked()["kafka_sasl_password"] == "***"


def _any_ca_pem() -> str:
    """A CA certificate in PEM from the system's trust store."""
    context = ssl.create_default_context()
    certs = context.get_ca_certs(binary_form=True)
    if not certs:
        pytest.skip("no system CA certificates to build a CA file from")
    return ssl.DER_cert_to_PEM_cert(certs[0])


@pytest.mark.parametrize(
    "env,message",
    [
        ({"TRUTHSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_MECHANISM must be one of"),
        (
            {"TRUTHSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "TRUTHSTREAM_KAFKA_SASL_MECHANISM": "PLAIN"},
            "PLAIN needs TRUTHSTREAM_KAFKA_SASL_USERNAME",
        ),
        ({"TRUTHSTREAM_KAFKA_SASL_MECHANISM": "PLAIN"}, "SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"TRUTHSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "TRUTHSTREAM_KAFKA_SSL_CAFILE": "/no/such/ca.pem"},
            "SSL_CAFILE: no file /no/such/ca.pem",
        ),
        (
            {"TRUTHSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "TRUTHSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "needs TRUTHSTREAM_KAFKA_MSK_REGION",
        ),
        ({"TRUTHSTREAM_BROKER": "kafka://u:pw1@h:1,kafka://u:pw2@h:2"}, "holds credentials"),
        ({"TRUTHSTREAM_KAFKA_SASL_PASSWORD_FILE": "/no/such/file"}, "KAFKA_SASL_PASSWORD_FILE: cannot read"),
    ],
)
def test_security_mistakes_name_the_setting(env: dict[str, str], message: str) -> None:
    """Each combination that cannot connect stops start-up with the variable to fix (and no password)."""
    with pytest.raises(ConfigError, match=message) as err:
        Settings.from_env(env).kafka()
    assert "pw1" not in str(err.value) and "pw2" not in str(err.value)


def test_msk_iam_tokens_are_signed_locally_for_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """OAUTHBEARER: both token providers return a signed MSK IAM token for the region (signing needs
    AWS credentials but no network), and faust gets OAuth credentials over TLS."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-key")
    env = {
        "TRUTHSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TRUTHSTREAM_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
        "TRUTHSTREAM_KAFKA_MSK_REGION": "eu-west-1",
    }
    kafka = Settings.from_env(env).kafka()
    token = kafka.kafka_python()["sasl_oauth_token_provider"].token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/") and "X-Amz-Signature=" in url
    assert asyncio.run(kafka.aiokafka()["sasl_oauth_token_provider"].token()).startswith(token[:20])
    credentials = kafka.faust_credentials()
    assert isinstance(credentials, faust.OAuthCredentials) and credentials.protocol.value == "SASL_SSL"
