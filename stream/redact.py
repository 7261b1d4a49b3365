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


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's final message (its arguments and traceback included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, redact it, and keep the record."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
