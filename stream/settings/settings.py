"""The one settings object: defaults that work locally, overridden by TRUTHSTREAM_* variables and flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from stream.core.config import CoreConfig
from stream.core.per_model import parse_per_model
from stream.core.records import INFERENCE, LABEL, MULTICLASS, PROBLEM_TYPES, ProblemType, Side, canonical_class
from stream.core.sagemaker import CaptureFormat
from stream.errors import ConfigError
from stream.redact import MASK, redact, register_secret
from stream.settings.fields import ENV_PREFIX, GROUPS, convert, flag_type, read_secret_file, shown
from stream.settings.groups import (
    AppSettings,
    CaptureSettings,
    InputTopics,
    KafkaSettings,
    LimitSettings,
    ModelSettings,
    OutputTopics,
    RedisSettings,
    WindowSettings,
    WorkerSettings,
)
from stream.settings.validation import validate

if TYPE_CHECKING:  # the catalog imports river: only a command that judges windows loads it
    from stream.core.catalog import Catalog
    from stream.kafka_clients import KafkaConnection

Group = TypeVar("Group")


# The groups' fields in this order (a dataclass's bases contribute theirs last-base first).
@dataclass(frozen=True)
class Settings(
    WorkerSettings,
    CaptureSettings,
    LimitSettings,
    WindowSettings,
    ModelSettings,
    RedisSettings,
    AppSettings,
    OutputTopics,
    InputTopics,
    KafkaSettings,
):
    """Every knob of truthstream, all groups at once; each field reads `TRUTHSTREAM_<NAME>` and `--<name>`."""

    def group(self, kind: type[Group]) -> Group:
        """One group of the settings on its own (e.g. `settings.group(KafkaSettings)`)."""
        return kind(**{f.name: getattr(self, f.name) for f in fields(kind)})  # type: ignore[arg-type]

    def core(self) -> CoreConfig:
        """The part of the settings the core uses."""
        return CoreConfig(
            window_seconds=self.window_seconds,
            label_grace=self.label_grace,
            label_ttl=self.label_ttl,
            min_samples=self.min_samples,
            rolling_size=self.rolling_size,
            rolling_every=self.rolling_every,
            max_record_bytes=self.max_record_bytes,
            max_future_seconds=self.max_future_seconds,
            max_pending=self.max_pending,
            score_resolution=self.score_resolution,
            deviations=self.deviations,
            curve_points=self.curve_points,
            confidence_level=self.confidence_level,
            violation_rule=self.violation_rule,
            segment_cap=self.segment_cap,
            change_delta=self.change_delta,
            segment_min_samples=self.segment_min_samples,
            key_check=self.key_check,
            capture_model=self.capture_model,
            capture_format=CaptureFormat(
                self.capture_inference_attribute, self.capture_probability_attribute, self.capture_probability_threshold
            ),
        )

    def catalog(self, constraints: str | None = None) -> Catalog:
        """The models' catalog: constraints (these, or the `constraints` setting's), problem types, classes."""
        from stream.constraint_files import load_catalog

        return load_catalog(
            self.constraints if constraints is None else constraints,
            self.problem_type,  # type: ignore[arg-type]  # one of PROBLEM_TYPES: validated
            self.problem_type_map(),
            self.class_map(),
            self.calibration,
            self.segments,
            (self.data_quality, self.data_quality_statistics, self.data_quality_min_rows),
        )

    def output_topics(self) -> dict[str, str]:
        """The topic of each kind of output the core produces."""
        from stream.core.state import DEAD_LETTER, METRICS, VIOLATION

        return {METRICS: self.metrics_topic, VIOLATION: self.violations_topic, DEAD_LETTER: self.dead_letter_topic}

    def side_of(self, topic: str) -> Side:
        """Which input a topic is (the worker reads both as one stream)."""
        return INFERENCE if topic == self.inference_topic else LABEL

    def validate(self) -> Settings:
        """Raise ConfigError for values that cannot work; return self."""
        validate(self)
        self.problem_type_map()
        self.class_map()
        return self

    def class_map(self) -> dict[str, frozenset[str]]:
        """`model_classes` as a dict of model -> allowed (canonical) class labels."""
        variable = f"{ENV_PREFIX}MODEL_CLASSES"
        default, per_model = parse_per_model(self.model_classes, variable)
        if default:
            raise ConfigError(f"{variable} {self.model_classes!r} names no model: give model=class|class|...")
        return {
            model: frozenset(canonical_class(c, "classes", MULTICLASS) for c in classes)
            for model, classes in per_model.items()
        }

    def problem_type_map(self) -> dict[str, ProblemType]:
        """`model_problem_types` as a dict; raises ConfigError on a malformed entry."""
        variable = f"{ENV_PREFIX}MODEL_PROBLEM_TYPES"
        default, per_model = parse_per_model(self.model_problem_types, variable)
        out: dict[str, ProblemType] = {}
        for model, kinds in per_model.items():
            if len(kinds) != 1 or kinds[0] not in PROBLEM_TYPES:
                raise ConfigError(f"{variable} entry for {model!r} is not one of " + "|".join(PROBLEM_TYPES))
            out[model] = kinds[0]
        if default:
            raise ConfigError(f"{variable} {self.model_problem_types!r} names no model (the default is PROBLEM_TYPE)")
        return out

    @property
    def bootstrap_servers(self) -> list[str]:
        """`host:port` entries of the broker URL, for kafka-python and aiokafka."""
        return [urlsplit(item).netloc if "://" in item else item for item in map(str.strip, self.broker.split(","))]

    def kafka(self) -> KafkaConnection:
        """How every Kafka client connects (servers, TLS, SASL)."""
        from stream.kafka_clients import KafkaConnection

        return KafkaConnection(
            self.bootstrap_servers,
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            self.kafka_sasl_password,
            self.kafka_ssl_cafile,
            self.kafka_ssl_certfile,
            self.kafka_ssl_keyfile,
            self.kafka_ssl_key_password,
            self.kafka_msk_region,
        ).validate()

    def masked(self) -> dict[str, Any]:
        """The settings as a dict that is safe to print: secret settings set are ***, URLs redacted."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = MASK
            out[f.name] = redact(value) if isinstance(value, str) else value
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then TRUTHSTREAM_* variables, then explicit overrides (e.g. parsed flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            for name in (f.name, *f.metadata.get("aliases", ())):
                variable = ENV_PREFIX + name.upper()
                raw = environ.get(variable)
                if raw is None and variable + "_FILE" in environ:
                    raw = read_secret_file(variable + "_FILE", environ[variable + "_FILE"])
                if raw is not None:
                    values[f.name] = convert(name, f.type, raw)
                    break
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        for f in fields(cls):
            if f.metadata.get("secret") and getattr(settings, f.name):
                register_secret(getattr(settings, f.name))
        for url in (settings.redis_url, *settings.broker.split(",")):
            password = urlsplit(url.strip()).password
            if password:
                register_secret(password)
        return settings.validate()

    @classmethod
    def add_arguments(
        cls, parser: argparse.ArgumentParser, groups: tuple[str, ...] = tuple(GROUPS), only: tuple[str, ...] = ()
    ) -> None:
        """Add a `--name` flag per field of these groups (see GROUPS), one help section per group, and
        for the fields named in `only` (a command that takes one topic, not the group); defaults are
        left to the environment and the dataclass."""
        defaults = cls()
        for group in dict.fromkeys((*groups, *(f.metadata["group"] for f in fields(cls) if f.name in only))):
            section = parser.add_argument_group(f"settings: {GROUPS[group]}")
            for f in fields(cls):
                if f.metadata["group"] == group and (group in groups or f.name in only):
                    names = ["--" + n.replace("_", "-") for n in (f.name, *f.metadata.get("aliases", ()))]
                    default = shown(getattr(defaults, f.name))
                    section.add_argument(
                        *names,
                        dest=f.name,
                        type=flag_type(f),
                        default=None,
                        choices=f.metadata.get("choices"),
                        metavar="on|off" if str(f.type) == "bool" else None,
                        help=f"{f.metadata['help']} [env {ENV_PREFIX}{f.name.upper()}; default {default}]",
                    )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Settings from parsed flags over the environment."""
        names = {f.name for f in fields(cls)}
        return cls.from_env(**{k: v for k, v in vars(args).items() if k in names})
