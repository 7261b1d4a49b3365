"""Settings that cannot work are refused up front, each with one line naming the variable and flag."""

from __future__ import annotations

from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from stream.errors import ConfigError
from stream.redact import redact
from stream.settings.fields import ENV_PREFIX, setting_name

POSITIVE = (
    "window_seconds",
    "label_ttl",
    "rolling_every",
    "max_record_bytes",
    "score_resolution",
    "batch_size",
    "batch_timeout",
    "fetch_wait",
    "segment_cap",
    "engine_processes",
)
NOT_NEGATIVE = (
    "label_grace",
    "min_samples",
    "rolling_size",
    "idle_close",
    "max_future_seconds",
    "max_pending",
    "state_limit_mib",
    "segment_min_samples",
    "change_delta",
    "data_quality_min_rows",
)


def validate(s: Any) -> None:
    """Raise ConfigError for the first value of settings `s` that cannot work."""
    for name in POSITIVE:
        if getattr(s, name) <= 0:
            raise ConfigError(f"{setting_name(name)} must be positive, got {getattr(s, name)}")
    for name in NOT_NEGATIVE:
        if getattr(s, name) < 0:
            raise ConfigError(f"{setting_name(name)} must not be negative, got {getattr(s, name)}")
    if not 0 <= s.change_delta < 1:
        raise ConfigError(f"{setting_name('change_delta')} must be in [0, 1), got {s.change_delta}")
    if not 0 <= s.confidence_level < 1:
        raise ConfigError(f"{setting_name('confidence_level')} must be in [0, 1), e.g. 0.95, got {s.confidence_level}")
    if s.violation_rule == "interval" and not s.confidence_level:
        raise ConfigError(
            f"{setting_name('violation_rule')}=interval needs confidence intervals: set "
            f"{setting_name('confidence_level')} above 0 (e.g. 0.95)"
        )
    if s.engine_processes > 1 and not s.engine_process:
        raise ConfigError(
            f"{setting_name('engine_processes')}={s.engine_processes} needs the engine in processes of its own: "
            f"set {setting_name('engine_process')} on, or the engine processes to 1"
        )
    if s.curve_points < 2:
        raise ConfigError(f"{setting_name('curve_points')} must be at least 2, got {s.curve_points}")
    for f in fields(s):
        allowed = f.metadata.get("choices")
        if allowed and getattr(s, f.name) not in allowed:
            raise ConfigError(f"{setting_name(f.name)} must be one of {', '.join(allowed)}, got {getattr(s, f.name)!r}")
    topics = [s.inference_topic, s.label_topic, s.metrics_topic, s.violations_topic, s.dead_letter_topic]
    if len(set(topics)) != len(topics):
        raise ConfigError(f"the five topics must be distinct, got {topics}")
    scheme = urlsplit(s.redis_url).scheme if "://" in s.redis_url else ""
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"{setting_name('redis_url')} {redact(s.redis_url)}: the scheme must be redis://, rediss:// (TLS) or "
            f"unix:// (e.g. redis://localhost:6379/0), not {scheme + '://' if scheme else 'none'}"
        )
    for item in s.broker.split(","):
        if "@" in urlsplit(item.strip()).netloc:
            raise ConfigError(
                f"{ENV_PREFIX}BROKER {redact(item.strip())} holds credentials: give them as "
                f"{ENV_PREFIX}KAFKA_SASL_USERNAME and {ENV_PREFIX}KAFKA_SASL_PASSWORD (or ..._PASSWORD_FILE)"
            )
