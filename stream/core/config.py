"""The core's configuration: only what joining, windowing, metrics and judging need."""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.core.sagemaker import CaptureFormat


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """What the step and the engine need to know; the settings build it (`Settings.core()`). These
    defaults are the settings' defaults too (`stream.settings.groups.CORE`): one source."""

    window_seconds: float = 3600.0  # tumbling window size, in seconds of event time
    label_grace: float = 3600.0  # seconds after a window ends during which its labels may still arrive
    label_ttl: float = 7 * 86400.0  # seconds of event time an unmatched inference or label waits
    min_samples: int = 100  # windows with fewer joined samples are reported but not judged
    rolling_size: int = 1000  # last N joined samples per model version (0: no rolling window)
    rolling_every: int = 100  # evaluate the rolling window every M joined samples
    max_record_bytes: int = 262144  # larger input messages are dead-lettered
    max_future_seconds: float = 86400.0  # event times further ahead of the record's timestamp are dead-lettered
    max_pending: int = 10_000_000  # waiting join entries kept at most, over all partitions (0: no bound)
    score_resolution: float = 1e-4  # score bin width for AUC and the curves
    deviations: bool = True  # keep the 5 subsamples behind the metrics' standard deviations
    curve_points: int = 101  # at most this many points per ROC / PR curve
    confidence_level: float = 0.95  # of the interval beside each window metric (0: none)
    violation_rule: str = "value"  # "interval": a violation only when the whole interval breaks the constraint
    segment_cap: int = 20  # segment values per key and window part (and closed window); the rest: __other__
    segment_min_samples: int = 0  # segments with fewer joined samples are not judged (0: min_samples)
    key_check: str = "partition"  # partition: keyed by event id, placed by Kafka's default partitioner; key; off

    @property
    def segment_threshold(self) -> int:
        """The joined samples a segment needs to be judged."""
        return self.segment_min_samples or self.min_samples

    change_delta: float = 0.002  # ADWIN's delta for change detection on the joined outcomes (0: off)
    capture_model: str = "sagemaker"  # model name of SageMaker capture records found on the inference topic
    capture_format: CaptureFormat = field(default_factory=lambda: CaptureFormat("", "", 0.5))
