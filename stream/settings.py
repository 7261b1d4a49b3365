"""The one settings object: defaults that work locally, overridden by TRUTHSTREAM_* variables and flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stream.errors import ConfigError
from stream.records import PROBLEM_TYPES
from stream.sagemaker import CaptureFormat

ENV_PREFIX = "TRUTHSTREAM_"


def setting(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - argparse's word
    """A settings field: its default and the help text shown by `--help`."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class Settings:
    """Every knob of truthstream; each field reads `TRUTHSTREAM_<NAME>` and `--<name>`."""

    broker: str = setting("kafka://127.0.0.1:9092", "Kafka bootstrap URL(s), comma separated")
    redis_url: str = setting("redis://127.0.0.1:6379/0", "Redis holding the join and window state")
    constraints: str = setting(
        "", "constraints.json for every model, a directory of MODEL.json files, or model=path,model=path"
    )
    problem_type: str = setting(
        "BinaryClassification", "problem type of models without constraints", choices=PROBLEM_TYPES
    )
    model_problem_types: str = setting(
        "",
        "per-model problem types, e.g. churn=BinaryClassification,species=MulticlassClassification "
        "(overrides the constraints file's)",
    )
    model_classes: str = setting(
        "",
        "per-model class lists for multiclass models, e.g. species=cat|dog|bird;color=red|blue; "
        "predictions and labels outside a model's list are dead-lettered",
    )
    window: float = setting(3600.0, "tumbling window size in seconds of event time")
    label_grace: float = setting(3600.0, "seconds after a window ends during which its labels may still arrive")
    label_ttl: float = setting(
        7 * 86400.0, "seconds of event time an unmatched inference or label waits before it counts as expired"
    )
    min_samples: int = setting(100, "windows with fewer joined samples are reported but not judged")
    rolling_size: int = setting(1000, "rolling window: the last N joined samples per model version (0: off)")
    rolling_every: int = setting(100, "evaluate the rolling window every M joined samples")
    idle_close: float = setting(
        0.0,
        "after this many seconds without input, advance event time to the wall clock so quiet models "
        "still report (0: never)",
    )
    inference_topic: str = setting("inferences", "topic of inference records")
    label_topic: str = setting("labels", "topic of ground-truth label records")
    metrics_topic: str = setting("metrics", "topic the metrics records go to")
    violations_topic: str = setting("violations", "topic the violation records go to")
    dead_letter_topic: str = setting("dead-letters", "topic rejected input goes to, with the reason")
    app_id: str = setting("truthstream", "consumer group / Faust app id")
    redis_prefix: str = setting("truthstream", "prefix of every Redis key this app writes")
    max_record_bytes: int = setting(262144, "larger input messages are dead-lettered")
    score_resolution: float = setting(1e-4, "scores are binned at this resolution for AUC and curves")
    curve_points: int = setting(101, "at most this many points per ROC / PR curve in a metrics record")
    batch_size: int = setting(1000, "events handled per batch (two Redis round trips apply a batch)")
    batch_timeout: float = setting(0.2, "seconds to wait for a batch to fill")
    fetch_wait: float = setting(
        0.1,
        "longest a fetch waits at the broker for new data, in seconds; brokers that hold a fetch "
        "for the full wait (tansu) add up to this much latency",
    )
    data_dir: str = setting("", "Faust's local data directory (default: a temporary directory)")
    capture_model: str = setting("sagemaker", "model name given to SageMaker capture records found on the topic")
    capture_inference_attribute: str = setting(
        "", "SageMaker inference_attribute: prediction's CSV column index or JSON path in a capture's output"
    )
    capture_probability_attribute: str = setting(
        "", "SageMaker probability_attribute: positive-class probability's CSV column or JSON path"
    )
    capture_probability_threshold: float = setting(
        0.5, "SageMaker probability_threshold_attribute: probability >= this is the positive class"
    )

    @property
    def capture_format(self) -> CaptureFormat:
        """How SageMaker capture records' outputs are read."""
        return CaptureFormat(
            self.capture_inference_attribute, self.capture_probability_attribute, self.capture_probability_threshold
        )

    def validate(self) -> "Settings":
        """Raise ConfigError for values that cannot work; return self."""
        positive = {
            "window": self.window,
            "label_ttl": self.label_ttl,
            "rolling_every": self.rolling_every,
            "max_record_bytes": self.max_record_bytes,
            "score_resolution": self.score_resolution,
            "batch_size": self.batch_size,
            "batch_timeout": self.batch_timeout,
            "fetch_wait": self.fetch_wait,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive, got {value}")
        for name in ("label_grace", "min_samples", "rolling_size", "idle_close"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must not be negative, got {getattr(self, name)}")
        if self.curve_points < 2:
            raise ConfigError(f"{ENV_PREFIX}CURVE_POINTS must be at least 2, got {self.curve_points}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"{ENV_PREFIX}PROBLEM_TYPE must be one of {', '.join(PROBLEM_TYPES)}")
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
        return self

    def class_map(self) -> dict[str, frozenset[str]]:
        """`model_classes` as a dict of model -> allowed (canonical) class labels."""
        from stream.records import MULTICLASS, canonical_class

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
        servers = []
        for item in self.broker.split(","):
            item = item.strip()
            servers.append(urlsplit(item).netloc if "://" in item else item)
        return servers

    def masked(self) -> dict[str, Any]:
        """The settings as a dict, with any password in a URL replaced by ***."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("broker", "redis_url"):
            parts = urlsplit(out[name])
            if parts.password:
                netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
                out[name] = urlunsplit(parts._replace(netloc=netloc))
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then TRUTHSTREAM_* variables, then explicit overrides (e.g. parsed flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values).validate()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
        """Add a `--name` flag per field (defaults left to the environment and the dataclass)."""
        defaults = cls()
        for f in fields(cls):
            if only is not None and f.name not in only:
                continue
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(
                "--" + f.name.replace("_", "-"),
                dest=f.name,
                type=kind,
                default=None,
                choices=f.metadata.get("choices"),
                help=f"{f.metadata['help']} [env {ENV_PREFIX}{f.name.upper()}; default {getattr(defaults, f.name)!r}]",
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        """Settings from parsed flags over the environment."""
        names = {f.name for f in fields(cls)}
        return cls.from_env(**{k: v for k, v in vars(args).items() if k in names})


def _convert(name: str, kind: Any, raw: str) -> Any:
    try:
        if str(kind) == "int":
            return int(raw)
        if str(kind) == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a {kind}") from None
    return raw
