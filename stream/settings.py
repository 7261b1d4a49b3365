"""The one settings object: defaults that work locally, overridden by TRUTHSTREAM_* variables and flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stream.core.config import CoreConfig
from stream.core.records import INFERENCE, LABEL, MULTICLASS, PROBLEM_TYPES, Side, canonical_class
from stream.core.sagemaker import CaptureFormat
from stream.errors import ConfigError
from stream.redact import MASK, redact, register_secret

if TYPE_CHECKING:  # the catalog imports river: only a command that judges windows loads it
    from stream.core.catalog import Catalog
    from stream.kafka_clients import KafkaConnection

ENV_PREFIX = "TRUTHSTREAM_"
# Settings come in groups; a command takes the groups it uses, shown under these titles in --help.
GROUPS = {
    "kafka": "Kafka",
    "inputs": "input topics",
    "outputs": "output topics",
    "app": "application",
    "redis": "Redis state",
    "models": "models and constraints",
    "windows": "windows and metrics",
    "limits": "limits on input and state",
    "capture": "SageMaker capture records on the inference topic",
    "worker": "worker",
}


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A settings field: its default and the help text shown by `--help`."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class Settings:
    """Every knob of truthstream; each field reads `TRUTHSTREAM_<NAME>` and `--<name>`."""

    broker: str = setting("kafka://127.0.0.1:9092", "Kafka bootstrap URL(s), comma separated", group="kafka")
    kafka_security_protocol: str = setting(
        "PLAINTEXT",
        "Kafka's security.protocol",
        group="kafka",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    kafka_sasl_mechanism: str = setting(
        "",
        "Kafka's sasl.mechanism with SASL_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, or OAUTHBEARER (Amazon MSK IAM)",
        group="kafka",
    )
    kafka_sasl_username: str = setting("", "SASL user name (PLAIN, SCRAM)", group="kafka")
    kafka_sasl_password: str = setting(
        "", "SASL password (PLAIN, SCRAM); or a file in ..._FILE", group="kafka", secret=True
    )
    kafka_ssl_cafile: str = setting(
        "", "CA certificate file (PEM) the brokers' certificates are checked against", group="kafka"
    )
    kafka_ssl_certfile: str = setting("", "client certificate file (PEM), for brokers that ask for one", group="kafka")
    kafka_ssl_keyfile: str = setting("", "client certificate's private key file (PEM)", group="kafka")
    kafka_ssl_key_password: str = setting("", "password of the private key, if any", group="kafka", secret=True)
    kafka_msk_region: str = setting(
        "", "AWS region for OAUTHBEARER with Amazon MSK IAM (pip install 'truthstream[msk]')", group="kafka"
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis holding the join and window state: redis://[user:password@]host:port/db, or rediss:// for TLS "
        "(?ssl_ca_certs=PATH, &ssl_certfile=, &ssl_keyfile= for a client certificate)",
        group="redis",
    )
    redis_cluster: str = setting(
        "off",
        "on: TRUTHSTREAM_REDIS_URL names a node of a Redis Cluster (ElastiCache cluster mode); each input "
        "partition's state lives in one hash slot (rolling windows need one Redis: set TRUTHSTREAM_ROLLING_SIZE=0)",
        group="redis",
        choices=("on", "off"),
    )
    constraints: str = setting(
        "",
        "constraints.json for every model, a directory of MODEL.json files, or model=path,model=path",
        group="models",
    )
    calibration: str = setting(
        "",
        "calibration.json of classifiers' scores (written by `truthstream baseline`) for every model, a directory "
        "of MODEL.json files, or model=path,model=path: turns on label-free estimates (estimated_* metrics)",
        group="models",
    )
    segments: str = setting(
        "",
        "inference fields (JMESPath) whose values split the metrics: features.country,features.device for every "
        "model, or churn=features.country|features.device;fraud=features.region",
        group="models",
    )
    segment_cap: int = setting(
        20, "segment values per key and window at most; the rest count as __other__", group="models"
    )
    change_delta: float = setting(
        0.002,
        "sensitivity of change detection on each model version's (and segment's) outcomes: ADWIN's delta, the "
        "bound on a false alarm at each check (0: off)",
        group="windows",
    )
    segment_min_samples: int = setting(
        0, "segments with fewer joined samples are reported but not judged (0: TRUTHSTREAM_MIN_SAMPLES)", group="models"
    )
    problem_type: str = setting(
        "BinaryClassification",
        "problem type of models without constraints",
        choices=PROBLEM_TYPES,
        group="models",
    )
    model_problem_types: str = setting(
        "",
        "per-model problem types, e.g. churn=BinaryClassification,species=MulticlassClassification "
        "(overrides the constraints file's)",
        group="models",
    )
    model_classes: str = setting(
        "",
        "per-model class lists for multiclass models, e.g. species=cat|dog|bird;color=red|blue; "
        "predictions and labels outside a model's list are dead-lettered",
        group="models",
    )
    window_seconds: float = setting(
        3600.0, "tumbling window size in seconds of event time", group="windows", aliases=("window",)
    )
    label_grace: float = setting(
        3600.0, "seconds after a window ends during which its labels may still arrive", group="windows"
    )
    label_ttl: float = setting(
        7 * 86400.0,
        "seconds of event time an unmatched inference or label waits before it counts as expired",
        group="windows",
    )
    min_samples: int = setting(100, "windows with fewer joined samples are reported but not judged", group="windows")
    rolling_size: int = setting(
        1000, "rolling window: the last N joined samples per model version (0: off)", group="windows"
    )
    rolling_every: int = setting(100, "evaluate the rolling window every M joined samples", group="windows")
    idle_close: float = setting(
        0.0,
        "after this many seconds without input, advance event time to the wall clock so quiet models "
        "still report (0: never)",
        group="worker",
    )
    inference_topic: str = setting("inferences", "topic of inference records", group="inputs")
    label_topic: str = setting("labels", "topic of ground-truth label records", group="inputs")
    metrics_topic: str = setting("metrics", "topic the metrics records go to", group="outputs")
    violations_topic: str = setting("violations", "topic the violation records go to", group="outputs")
    dead_letter_topic: str = setting("dead-letters", "topic rejected input goes to, with the reason", group="outputs")
    app_id: str = setting("truthstream", "consumer group / Faust app id", group="app")
    redis_prefix: str = setting("truthstream", "prefix of every Redis key this app writes", group="redis")
    max_record_bytes: int = setting(262144, "larger input messages are dead-lettered", group="limits")
    max_future_seconds: float = setting(
        86400.0,
        "event times (inference_time, label_time) further ahead of the record's Kafka timestamp are "
        "dead-lettered, so one bad clock cannot close windows early",
        group="limits",
    )
    max_pending: int = setting(
        10_000_000,
        "waiting inferences and labels kept at most (over all partitions); beyond it those that would "
        "expire first are evicted and counted (evicted_*), so Redis cannot fill up (0: no bound)",
        group="limits",
    )
    score_resolution: float = setting(1e-4, "scores are binned at this resolution for AUC and curves", group="windows")
    deviations: str = setting(
        "on",
        "standard deviations of tumbling-window metrics from 5 subsamples of about 80%% (SageMaker's way; "
        "violations then quote them); off saves Redis memory and worker time",
        group="windows",
        choices=("on", "off"),
    )
    confidence_level: float = setting(
        0.95,
        "level of the confidence interval written beside each window metric (0: none)",
        group="windows",
    )
    violation_rule: str = setting(
        "value",
        "value: a metric beyond its threshold is a violation (SageMaker's rule); interval: only when its "
        "whole confidence interval is, so a small window's noise raises none (needs a confidence level)",
        group="windows",
        choices=("value", "interval"),
    )
    curve_points: int = setting(101, "at most this many points per ROC / PR curve in a metrics record", group="windows")
    batch_size: int = setting(1000, "events handled per batch (two Redis round trips apply a batch)", group="worker")
    batch_timeout: float = setting(0.2, "seconds to wait for a batch to fill", group="worker")
    engine_process: str = setting(
        "on",
        "on: the engine (decoding, joining, the Redis state) runs in a second process beside faust's, so "
        "the two use two cores; off: in faust's process (a machine with one core)",
        group="worker",
        choices=("on", "off"),
    )
    fetch_wait: float = setting(
        0.1,
        "longest a fetch waits at the broker for new data, in seconds; brokers that hold a fetch "
        "for the full wait (tansu) add up to this much latency",
        group="worker",
    )
    metrics_port: int = setting(
        0,
        "serve Prometheus metrics on this port at /metrics (0: off); each worker needs a port of its own",
        group="worker",
    )
    data_dir: str = setting("", "Faust's local data directory (default: a temporary directory)", group="worker")
    capture_model: str = setting(
        "sagemaker", "model name given to SageMaker capture records found on the topic", group="capture"
    )
    capture_inference_attribute: str = setting(
        "",
        "SageMaker inference_attribute: the prediction's CSV column index (0, 1, ...) or JMESPath "
        "(predicted_label, predictions[*].predicted_label) in a capture's output",
        group="capture",
    )
    capture_probability_attribute: str = setting(
        "",
        "SageMaker probability_attribute: the positive-class probability's CSV column index or JMESPath "
        "(score, predictions[*].score)",
        group="capture",
    )
    capture_probability_threshold: float = setting(
        0.5,
        "SageMaker probability_threshold_attribute: probability >= this is the positive class",
        group="capture",
    )

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
            deviations=self.deviations == "on",
            curve_points=self.curve_points,
            confidence_level=self.confidence_level,
            violation_rule=self.violation_rule,
            segment_cap=self.segment_cap,
            change_delta=self.change_delta,
            segment_min_samples=self.segment_min_samples or self.min_samples,
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
            self.problem_type,  # type: ignore[arg-type]
            self.problem_type_map(),  # type: ignore[arg-type]
            self.class_map(),
            self.calibration,
            self.segments,
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
        positive = {
            "window_seconds": self.window_seconds,
            "label_ttl": self.label_ttl,
            "rolling_every": self.rolling_every,
            "max_record_bytes": self.max_record_bytes,
            "score_resolution": self.score_resolution,
            "batch_size": self.batch_size,
            "batch_timeout": self.batch_timeout,
            "fetch_wait": self.fetch_wait,
            "segment_cap": self.segment_cap,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{setting_name(name)} must be positive, got {value}")
        for name in (
            "label_grace",
            "min_samples",
            "rolling_size",
            "idle_close",
            "max_future_seconds",
            "max_pending",
            "segment_min_samples",
            "change_delta",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{setting_name(name)} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.change_delta < 1:
            raise ConfigError(f"{setting_name('change_delta')} must be in [0, 1), got {self.change_delta}")
        if not 0 <= self.confidence_level < 1:
            raise ConfigError(
                f"{setting_name('confidence_level')} must be in [0, 1), e.g. 0.95, got {self.confidence_level}"
            )
        if self.violation_rule == "interval" and not self.confidence_level:
            raise ConfigError(
                f"{setting_name('violation_rule')}=interval needs confidence intervals: set "
                f"{setting_name('confidence_level')} above 0 (e.g. 0.95)"
            )
        if self.curve_points < 2:
            raise ConfigError(f"{setting_name('curve_points')} must be at least 2, got {self.curve_points}")
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise ConfigError(
                    f"{setting_name(f.name)} must be one of {', '.join(allowed)}, got {getattr(self, f.name)!r}"
                )
        if self.redis_cluster == "on" and self.rolling_size:
            raise ConfigError(
                f"{setting_name('rolling_size')} must be 0 with {setting_name('redis_cluster')}=on: a rolling "
                "window is one list per model version that every partition appends to, which a Redis Cluster "
                "cannot update in one transaction with the partition's batch (tumbling windows work on a cluster)"
            )
        self.problem_type_map()
        self.class_map()
        topics = [
            self.inference_topic,
            self.label_topic,
            self.metrics_topic,
            self.violations_topic,
            self.dead_letter_topic,
        ]
        if len(set(topics)) != len(topics):
            raise ConfigError(f"the five topics must be distinct, got {topics}")
        for item in self.broker.split(","):
            if "@" in urlsplit(item.strip()).netloc:
                raise ConfigError(
                    f"{ENV_PREFIX}BROKER {redact(item.strip())} holds credentials: give them as "
                    f"{ENV_PREFIX}KAFKA_SASL_USERNAME and {ENV_PREFIX}KAFKA_SASL_PASSWORD (or ..._PASSWORD_FILE)"
                )
        return self

    def class_map(self) -> dict[str, frozenset[str]]:
        """`model_classes` as a dict of model -> allowed (canonical) class labels."""
        out = {}
        for item in filter(None, (i.strip() for i in self.model_classes.split(";"))):
            model, _, classes = item.partition("=")
            labels = [c.strip() for c in classes.split("|") if c.strip()]
            if not model.strip() or not labels:
                raise ConfigError(f"{ENV_PREFIX}MODEL_CLASSES entry {item!r} is not model=class|class|...")
            out[model.strip()] = frozenset(canonical_class(c, "classes", MULTICLASS) for c in labels)
        return out

    def problem_type_map(self) -> dict[str, str]:
        """`model_problem_types` as a dict; raises ConfigError on a malformed entry."""
        out = {}
        for item in filter(None, (i.strip() for i in self.model_problem_types.split(","))):
            model, _, kind = item.partition("=")
            if not model.strip() or kind.strip() not in PROBLEM_TYPES:
                raise ConfigError(
                    f"{ENV_PREFIX}MODEL_PROBLEM_TYPES entry {item!r} is not model=" + "|".join(PROBLEM_TYPES)
                )
            out[model.strip()] = kind.strip()
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
                    raw = _read_secret_file(variable + "_FILE", environ[variable + "_FILE"])
                if raw is not None:
                    values[f.name] = _convert(name, f.type, raw)
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
                    _add_flag(section, f, getattr(defaults, f.name))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Settings from parsed flags over the environment."""
        names = {f.name for f in fields(cls)}
        return cls.from_env(**{k: v for k, v in vars(args).items() if k in names})


def _add_flag(parser: Any, f: Any, default: Any) -> None:
    """The flag of one settings field (and of its old names)."""
    kind = {"int": int, "float": float}.get(str(f.type), str)
    names = ["--" + n.replace("_", "-") for n in (f.name, *f.metadata.get("aliases", ()))]
    parser.add_argument(
        *names,
        dest=f.name,
        type=kind,
        default=None,
        choices=f.metadata.get("choices"),
        help=f"{f.metadata['help']} [env {ENV_PREFIX}{f.name.upper()}; default {default!r}]",
    )


def setting_name(name: str) -> str:
    """How a user may have given a setting: its flag and its variable, as errors name it."""
    return f"--{name.replace('_', '-')} / {ENV_PREFIX}{name.upper()}"


def _read_secret_file(variable: str, path: str) -> str:
    """A setting's value from the file a `*_FILE` variable names (Docker and Kubernetes secrets)."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror})") from None


def _convert(name: str, kind: Any, raw: str) -> Any:
    try:
        if str(kind) == "int":
            return int(raw)
        if str(kind) == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a {kind}") from None
    return raw
