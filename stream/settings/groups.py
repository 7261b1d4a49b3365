"""The settings by group, each a small frozen dataclass; `Settings` is all of them at once.

Defaults of what the core uses come from the core's own configuration (`CORE`), so that the
settings and `CoreConfig` cannot disagree. On/off settings are booleans (see `fields.switch`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.core.config import CoreConfig
from stream.core.records import PROBLEM_TYPES
from stream.settings.fields import setting

CORE = CoreConfig()  # the defaults of the settings the core uses


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach Kafka: bootstrap servers, TLS, SASL."""

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


@dataclass(frozen=True)
class InputTopics:
    """The topics inference and label records are read from."""

    inference_topic: str = setting("inferences", "topic of inference records", group="inputs")
    label_topic: str = setting("labels", "topic of ground-truth label records", group="inputs")
    key_check: str = setting(
        CORE.key_check,
        "how input records must be keyed, so that an inference and its label meet in one partition: partition "
        "(keyed by event id and placed by Kafka's default murmur2 partitioner, as Java, kafka-python and aiokafka "
        "place them), key (keyed by event id, any partitioner both sides share), or off; others are dead-lettered",
        group="inputs",
        choices=("partition", "key", "off"),
    )


@dataclass(frozen=True)
class OutputTopics:
    """The topics metrics, violation and dead-letter records go to."""

    metrics_topic: str = setting("metrics", "topic the metrics records go to", group="outputs")
    violations_topic: str = setting("violations", "topic the violation records go to", group="outputs")
    dead_letter_topic: str = setting("dead-letters", "topic rejected input goes to, with the reason", group="outputs")


@dataclass(frozen=True)
class AppSettings:
    """The application: its consumer group."""

    app_id: str = setting("truthstream", "consumer group / Faust app id", group="app")


@dataclass(frozen=True)
class RedisSettings:
    """Where the join and window state lives."""

    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis holding the join and window state: redis://[user:password@]host:port/db, or rediss:// for TLS "
        "(?ssl_ca_certs=PATH, &ssl_certfile=, &ssl_keyfile= for a client certificate)",
        group="redis",
    )
    redis_cluster: bool = setting(
        False,
        "on: TRUTHSTREAM_REDIS_URL names a node of a Redis Cluster (ElastiCache cluster mode), or several, "
        "comma separated (redis://h1:6379,h2:6379/0), so that the worker starts while one is down; each input "
        "partition's state lives in one hash slot",
        group="redis",
    )
    redis_prefix: str = setting("truthstream", "prefix of every Redis key this app writes", group="redis")
    state_loss: str = setting(
        "stop",
        "when Redis lost state that Kafka can no longer give again (its records deleted by retention): stop "
        "(the worker refuses to start, naming the partitions), or resume from Kafka's committed offsets (the "
        "windows around the loss are incomplete). State Kafka still holds is always recomputed",
        group="redis",
        choices=("stop", "resume"),
    )


@dataclass(frozen=True)
class ModelSettings:
    """What is known of the models: constraints, calibrations, segments, problem types, classes."""

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
    data_quality: str = setting(
        "",
        "data-quality constraints.json (written by `truthstream baseline --data-quality`) for every model, a "
        "directory of MODEL.json files, or model=path,model=path: turns on the data-quality monitor (each "
        "window's feature statistics and checks, without labels)",
        group="models",
    )
    data_quality_statistics: str = setting(
        "",
        "the baseline's data-quality statistics.json, in the same forms: the reference of the drift check",
        group="models",
    )
    data_quality_min_rows: int = setting(
        0,
        "windows with fewer rows are reported too small for their drift to be judged (types and "
        "completeness still are); SageMaker has no such floor",
        group="models",
    )
    segment_cap: int = setting(
        CORE.segment_cap, "segment values per key and window at most; the rest count as __other__", group="models"
    )
    segment_min_samples: int = setting(
        CORE.segment_min_samples,
        "segments with fewer joined samples are reported but not judged (0: TRUTHSTREAM_MIN_SAMPLES)",
        group="models",
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


@dataclass(frozen=True)
class WindowSettings:
    """Windows, their metrics and how they are judged."""

    change_delta: float = setting(
        CORE.change_delta,
        "sensitivity of change detection on each model version's (and segment's) outcomes: ADWIN's delta, the "
        "bound on a false alarm at each check (0: off)",
        group="windows",
    )
    window_seconds: float = setting(
        CORE.window_seconds, "tumbling window size in seconds of event time", group="windows", aliases=("window",)
    )
    label_grace: float = setting(
        CORE.label_grace, "seconds after a window ends during which its labels may still arrive", group="windows"
    )
    label_ttl: float = setting(
        CORE.label_ttl,
        "seconds of event time an unmatched inference or label waits before it counts as expired",
        group="windows",
    )
    min_samples: int = setting(
        CORE.min_samples, "windows with fewer joined samples are reported but not judged", group="windows"
    )
    rolling_size: int = setting(
        CORE.rolling_size, "rolling window: the last N joined samples per model version (0: off)", group="windows"
    )
    rolling_every: int = setting(
        CORE.rolling_every, "evaluate the rolling window every M joined samples", group="windows"
    )
    score_resolution: float = setting(
        CORE.score_resolution, "scores are binned at this resolution for AUC and curves", group="windows"
    )
    deviations: bool = setting(
        CORE.deviations,
        "standard deviations of tumbling-window metrics from 5 subsamples of about 80%% (SageMaker's way; "
        "violations then quote them); off saves Redis memory and worker time",
        group="windows",
    )
    confidence_level: float = setting(
        CORE.confidence_level,
        "level of the confidence interval written beside each window metric (0: none)",
        group="windows",
    )
    violation_rule: str = setting(
        CORE.violation_rule,
        "value: a metric beyond its threshold is a violation (SageMaker's rule); interval: only when its "
        "whole confidence interval is, so a small window's noise raises none (needs a confidence level)",
        group="windows",
        choices=("value", "interval"),
    )
    curve_points: int = setting(
        CORE.curve_points, "at most this many points per ROC / PR curve in a metrics record", group="windows"
    )


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on input and state, so no record or clock can poison the worker."""

    max_record_bytes: int = setting(CORE.max_record_bytes, "larger input messages are dead-lettered", group="limits")
    max_future_seconds: float = setting(
        CORE.max_future_seconds,
        "event times (inference_time, label_time) further ahead of the record's Kafka timestamp are "
        "dead-lettered, so one bad clock cannot close windows early",
        group="limits",
    )
    max_pending: int = setting(
        CORE.max_pending,
        "waiting inferences and labels kept at most (over all partitions); beyond it those that would "
        "expire first are evicted and counted (evicted_*), so Redis cannot fill up (0: no bound)",
        group="limits",
    )
    state_limit_mib: int = setting(
        0,
        "Redis memory (used_memory, MiB) past which Prometheus's TruthstreamStateTooLarge alert fires: the worker "
        "exports it as truthstream_state_limit_bytes (0: no alert)",
        group="limits",
    )


@dataclass(frozen=True)
class CaptureSettings:
    """SageMaker capture records found on the inference topic."""

    capture_model: str = setting(
        CORE.capture_model, "model name given to SageMaker capture records found on the topic", group="capture"
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


@dataclass(frozen=True)
class WorkerSettings:
    """The worker process: batching, its engine process, its metrics endpoint."""

    idle_close: float = setting(
        0.0,
        "after this many seconds without input, advance event time to the wall clock so quiet models "
        "still report (0: never)",
        group="worker",
    )
    batch_size: int = setting(1000, "events handled per batch (two Redis round trips apply a batch)", group="worker")
    batch_timeout: float = setting(0.2, "seconds to wait for a batch to fill", group="worker")
    engine_process: bool = setting(
        True,
        "on: the engine (decoding, joining, the Redis state) runs in a second process beside faust's, so "
        "the two use two cores; off: in faust's process (a machine with one core)",
        group="worker",
    )
    engine_processes: int = setting(
        1,
        "engine processes beside faust's (with --engine-process on), input partition p handled by process "
        "p mod N: more than one pays off when messages carry many instances (batched SageMaker captures) "
        "and the machine has a core for each",
        group="worker",
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
