"""What a new inference adds to its window before any label: the count behind the label coverage,
its score for the label-free change detector, and its calibrated estimate."""

from __future__ import annotations

from stream.core.aggregate import WindowAggregate
from stream.core.calibration import Calibration, MulticlassCalibration
from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.estimates import count_estimate, count_multiclass_estimate
from stream.core.records import Inference
from stream.core.state import StepResult
from stream.core.windows import WindowKey


def count_arrival(
    result: StepResult,
    config: CoreConfig,
    catalog: Catalog,
    inference: Inference,
    now: float,
    rows: list[str] | None = None,
) -> None:
    """Count a new inference in its window (the denominator of the label coverage), unless the
    window is final already (`now`: its partition's event time). The count rides with the window's
    state but does not open the window: a window opens with its first joined pair, so that its
    closing still waits for the labels' event time (a backlog of inferences read before any label
    must not close windows that its labels will fill). The inference's feature `rows` (data quality)
    join the window while its partition's event time has not passed its end: after that, the
    window's data-quality record may be out, and they are counted `late_features`."""
    window = WindowKey.at(inference.model, inference.model_version, inference.time, config.window_seconds)
    if rows and window.end <= now:
        result.count(inference.model, "late_features", len(rows))
    if window.end + config.label_grace <= now:
        return
    part = result.unopened.get(window)
    if part is None:
        part = result.unopened[window] = WindowAggregate(config.score_resolution)
    if window.end > now:
        result.provisional.add(window)
        if rows:
            result.quality.setdefault(window, []).extend(rows)
    part.add_inference()
    if config.change_delta:  # the score distribution, for the label-free change detector
        if inference.score is not None:
            part.add_score(inference.score)
        elif inference.probabilities:
            part.add_score(max(p for _, p in inference.probabilities))
    calibration = catalog.calibration(inference.model)
    if isinstance(calibration, Calibration) and inference.score is not None:
        count_estimate(part, inference.prediction, calibration.probability(inference.score), inference.score)
    elif isinstance(calibration, MulticlassCalibration) and inference.probabilities:
        count_multiclass_estimate(part, inference.prediction, calibration.calibrate_vector(inference.probabilities))
