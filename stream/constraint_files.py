"""Reading constraints.json files: one for every model, a directory of MODEL.json, or a mapping."""

from __future__ import annotations

import json
from pathlib import Path

from stream.core.catalog import Catalog
from stream.core.constraints import ConstraintSet, parse_constraints
from stream.core.records import ProblemType
from stream.errors import ConstraintsError


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
    if not spec:
        return None, {}
    if "=" in spec:
        per_model = {}
        for item in spec.split(","):
            model, _, path = item.partition("=")
            if not model.strip() or not path.strip():
                raise ConstraintsError(spec, "", f"mapping entry {item!r} is not model=path")
            per_model[model.strip()] = load_constraints(path.strip())
        return None, per_model
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise ConstraintsError(spec, "", "directory holds no MODEL.json files")
        return None, {f.stem: load_constraints(f) for f in files}
    return load_constraints(path), {}


def load_catalog(
    constraints_spec: str,
    default_problem_type: ProblemType,
    problem_types: dict[str, ProblemType] | None = None,
    classes: dict[str, frozenset[str]] | None = None,
) -> Catalog:
    """A catalog from a `TRUTHSTREAM_CONSTRAINTS` value (see `load_constraint_map`) and per-model settings."""
    default, per_model = load_constraint_map(constraints_spec)
    return Catalog(default_problem_type, default, per_model, dict(problem_types or {}), dict(classes or {}))
