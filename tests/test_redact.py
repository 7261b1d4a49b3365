"""The one redaction helper: URL passwords and registered secrets are masked, formatting is kept."""

from __future__ import annotations

import logging

import pytest

from stream.redact import RedactingFilter, redact, register_secret


@pytest.mark.parametrize(
    "text,expected",
    [
        ("redis://:pw-1@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:pw-2@h:6380/0?ssl_ca_certs=/ca.pem", "rediss://user:***@h:6380/0?ssl_ca_certs=/ca.pem"),
        ("redis://h:6379/0?password=pw-3&db=1", "redis://h:6379/0?password=***&db=1"),
        ("kafka://u:pw-4@h:1,kafka://u:pw-5@h:2", "kafka://u:***@h:1,kafka://u:***@h:2"),
        ("POST http://alerts:pw-6@127.0.0.1:80/hook failed", "POST http://alerts:***@127.0.0.1:80/hook failed"),
        ("no secret at http://h:80/x?a=1", "no secret at http://h:80/x?a=1"),
    ],
)
def test_url_passwords_are_masked(text: str, expected: str) -> None:
    """The password of user:password@ and password-like query parameters, in any scheme, however many."""
    assert redact(text) == expected


def test_registered_secrets_are_masked_in_log_records_without_breaking_formatting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registered value vanishes from the message, its arguments and its traceback; %-formatting of
    other arguments (numbers, a literal %) still works."""
    register_secret("sasl-Secret-42")
    logger = logging.getLogger("truthstream.test-redact")
    caplog.handler.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="truthstream.test-redact"):
            logger.info("login with %s failed %d times (100%% sure)", "sasl-Secret-42", 3)
            try:
                raise RuntimeError("bad password sasl-Secret-42")
            except RuntimeError:
                logger.exception("connect to redis://:sasl-Secret-42@h:1/0")
    finally:
        caplog.handler.filters.clear()
    assert caplog.messages[0] == "login with *** failed 3 times (100% sure)"
    assert "sasl-Secret-42" not in caplog.text
    assert "bad password ***" in caplog.text


def test_the_dashboard_shows_why_reading_kafka_failed_without_secrets(monkeypatch) -> None:
    """The live page's reader never raises: a failure is shown on the page, with secrets redacted."""
    import asyncio
    import threading

    import connectors.consumers
    from connectors.live_page import Feed, read_topics
    from stream.redact import register_secret
    from stream.settings import Settings

    register_secret("s3cr3t-for-the-page")

    def refuse(*_: object) -> None:
        raise RuntimeError("SASL authentication failed for password s3cr3t-for-the-page")

    monkeypatch.setattr(connectors.consumers, "topic_reader", refuse)
    loop = asyncio.new_event_loop()
    try:
        feed = Feed(loop)
        read_topics(Settings(), None, feed, threading.Event())
        loop.run_until_complete(asyncio.sleep(0))  # the feed's events are delivered on its loop
        assert feed.error is not None and "SASL authentication failed" in feed.error
        assert "s3cr3t-for-the-page" not in feed.error
        assert [e["type"] for e in feed.records] == ["error"]
    finally:
        loop.close()
