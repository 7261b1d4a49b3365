"""Reading constraints.json and calibration.json files: one for every model, a directory of
MODEL.json, or a mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stream.core.calibration import Calibration, MulticlassCalibration, parse_calibration
from stream.core.catalog import Catalog
from stream.core.constraints import ConstraintSet, parse_constraints
from stream.core.dataquality.reference import QualityBaseline
from stream.core.per_model import parse_per_model
from stream.core.records import ProblemType
from stream.core.segments import parse_segment_keys
from stream.errors import ConfigError, ConstraintsError

T = TypeVar("T")


def load_constraints(path: str | Path) -> ConstraintSet:
    """Read and validate one constraints.json file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConstraintsError(str(path), "", f"cannot read: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConstraintsError(str(path), "", f"not valid JSON: {exc}") from None
    return parse_constraints(doc, str(path))


def load_constraint_map(spec: str) -> tuple[ConstraintSet | None, dict[str, ConstraintSet]]:
    """Load `TRUTHSTREAM_CONSTRAINTS`: one file for every model, a directory of `MODEL.json`,
    or a mapping `model=path,model=path`. Returns (default for all models, per-model sets)."""
    return _load_map(spec, load_constraints, lambda why: ConstraintsError(spec, "", why))


def _read_json(path: str | Path, named: str = "") -> Any:
    """A JSON file's document; ConfigError naming the file (after `named`) when it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{named}{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{named}{path}: not valid JSON: {exc}") from None


def load_calibration(path: str | Path) -> Calibration | MulticlassCalibration:
    """Read and validate one calibration.json file (see `stream.core.calibration`)."""
    return parse_calibration(_read_json(path), str(path))


def load_calibration_map(
    spec: str,
) -> tuple[Calibration | MulticlassCalibration | None, dict[str, Calibration | MulticlassCalibration]]:
    """Load `TRUTHSTREAM_CALIBRATION`, in the same forms as the constraints."""
    return _load_map(spec, load_calibration, lambda why: ConfigError(f"TRUTHSTREAM_CALIBRATION {spec!r}: {why}"))


def _load_map(spec: str, load: Callable[[Path], T], error: Callable[[str], Exception]) -> tuple[T | None, dict[str, T]]:
    """One file for every model (the default), a directory of `MODEL.json`, or `model=path,...`."""
    if not spec:
        return None, {}
    if "=" in spec:
        try:
            _, paths = parse_per_model(spec, "mapping")
        except ConfigError as exc:
            raise error(str(exc).replace("model=value (or model=value|value|...)", "model=path")) from None
        for model, found in paths.items():
            if len(found) != 1:
                raise error(f"mapping entry for {model!r} names {len(found)} files, not one")
        return None, {model: load(Path(found[0])) for model, found in paths.items()}
    where = Path(spec)
    if where.is_dir():
        files = sorted(where.glob("*.json"))
        if not files:
            raise error("directory holds no MODEL.json files")
        return None, {f.stem: load(f) for f in files}
    return load(where), {}


def _json_file(path: Path, setting: str) -> dict[str, Any]:
    doc = _read_json(path, f"{setting} ")
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise ConfigError(f"{setting} {path}: not a SageMaker data-quality file (no 'features' list)")
    return dict(doc)


def load_quality_map(
    constraints_spec: str, statistics_spec: str = "", min_rows: int = 0
) -> tuple[QualityBaseline | None, dict[str, QualityBaseline]]:
    """Load `TRUTHSTREAM_DATA_QUALITY` (data-quality constraints.json) and
    `TRUTHSTREAM_DATA_QUALITY_STATISTICS` (the baseline's statistics.json, for the drift check), each
    one file for every model, a directory of MODEL.json files or a mapping, as the constraints."""
    setting, stats = "TRUTHSTREAM_DATA_QUALITY", "TRUTHSTREAM_DATA_QUALITY_STATISTICS"
    default, per_model = _load_map(
        constraints_spec,
        lambda p: _json_file(p, setting),
        lambda why: ConfigError(f"{setting} {constraints_spec!r}: {why}"),
    )
    default_stats, model_stats = _load_map(
        statistics_spec, lambda p: _json_file(p, stats), lambda why: ConfigError(f"{stats} {statistics_spec!r}: {why}")
    )
    for model in model_stats:
        if model not in per_model and default is None:
            raise ConfigError(f"{stats}: {model!r} has statistics but no constraints in {setting}")
    if default_stats is not None and default is None and not per_model:
        raise ConfigError(f"{stats} is set but {setting} (the constraints.json to judge by) is not")
    base = QualityBaseline.of(default, default_stats, min_rows) if default is not None else None
    models = {
        model: QualityBaseline.of(doc, model_stats.get(model, default_stats), min_rows)
        for model, doc in per_model.items()
    }
    for model, doc in model_stats.items():
        if model not in models and default is not None:
            models[model] = QualityBaseline.of(default, doc, min_rows)
    return base, models


def load_catalog(
    constraints_spec: str,
    default_problem_type: ProblemType,
    problem_types: dict[str, ProblemType] | None = None,
    classes: dict[str, frozenset[str]] | None = None,
    calibration_spec: str = "",
    segments_spec: str = "",
    quality: tuple[str, str, int] = ("", "", 0),
) -> Catalog:
    """A catalog from a `TRUTHSTREAM_CONSTRAINTS` value (see `load_constraint_map`), a
    `TRUTHSTREAM_CALIBRATION` value and per-model settings."""
    default, per_model = load_constraint_map(constraints_spec)
    calibration, calibrations = load_calibration_map(calibration_spec)
    default_segments, segments = parse_segment_keys(segments_spec)
    default_quality, qualities = load_quality_map(*quality)
    return Catalog(
        default_problem_type,
        default,
        per_model,
        dict(problem_types or {}),
        dict(classes or {}),
        calibration,
        calibrations,
        default_segments,
        segments,
        default_quality,
        qualities,
    )
