"""The one redaction helper: secrets never reach a log line, an error message or printed settings.

`redact(text)` masks the password of any `scheme://user:password@host` URL, password-like query
parameters (`?password=...`), and every secret value the settings registered (SASL passwords,
key passwords, whatever a `*_FILE` variable held). The logging set-up applies it to every record.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:,]*:)[^@/\s,]*@")
_QUERY = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pass|pwd|token|secret|[a-z_]*_password)=)[^&\s,]*")
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask this exact value wherever it appears from now on (values shorter than 4 characters would
    mask ordinary text, so they are masked only inside URLs)."""
    if len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every secret masked."""
    text = _USERINFO.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _QUERY.sub(lambda m: m.group("head") + MASK, text)
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _redacted(value: object) -> object:
    """A log argument with its secrets masked; left as it is (for %d and the like) when it holds none."""
    text = str(value)
    masked = redact(text)
    return value if masked == text else masked


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in each record's message, arguments and traceback, keeping
    the record's shape (message and arguments apart) for the formatters of any framework."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask, and keep the record."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redacted(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
