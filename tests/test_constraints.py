"""constraints.json loading, validation and the four comparison operators."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stream.constraint_files import load_catalog, load_constraint_map, load_constraints
from stream.core.constraints import Constraint, parse_constraints
from stream.errors import ConstraintsError


@pytest.mark.parametrize(
    "op,value,violated",
    [
        ("LessThanThreshold", 0.7, True),
        ("LessThanThreshold", 0.8, False),
        ("LessThanOrEqualToThreshold", 0.8, True),
        ("LessThanOrEqualToThreshold", 0.81, False),
        ("GreaterThanThreshold", 0.9, True),
        ("GreaterThanThreshold", 0.8, False),
        ("GreaterThanOrEqualToThreshold", 0.8, True),
        ("GreaterThanOrEqualToThreshold", 0.79, False),
    ],
)
def test_operators_name_the_violating_condition(op: str, value: float, violated: bool) -> None:
    """Each operator fires exactly when its condition holds against the threshold."""
    assert Constraint("recall", 0.8, op).violated(value) is violated


@pytest.mark.parametrize("ulps", [-2, -1, 1, 2])
def test_a_value_within_rounding_of_its_threshold_compares_as_equal(ulps: int) -> None:
    """Relative 1e-9: strict operators do not fire, the OrEqual ones do; a real difference still counts."""
    threshold = 0.9395127993393898
    value = threshold
    for _ in range(abs(ulps)):
        value = math.nextafter(value, 1.0 if ulps > 0 else 0.0)
    assert value != threshold
    for op in ("LessThanThreshold", "GreaterThanThreshold"):
        assert not Constraint("auc", threshold, op).violated(value)
    for op in ("LessThanOrEqualToThreshold", "GreaterThanOrEqualToThreshold"):
        assert Constraint("auc", threshold, op).violated(value)
    assert Constraint("auc", threshold, "LessThanThreshold").violated(threshold * (1 - 1e-8))
    assert Constraint("mae", 0.0, "GreaterThanThreshold").violated(1e-11)
    assert not Constraint("mae", 0.0, "GreaterThanThreshold").violated(1e-13)


def test_violations_are_described_as_sagemaker_writes_them() -> None:
    """Full precision, `+/-` the deviation when there is one, the threshold quoted, camelCase rates."""
    auc = Constraint("auc", 0.9395127993393898, "LessThanThreshold")
    assert auc.describe(0.515363047795135, 0.012887520442626008) == (
        "Metric auc with 0.515363047795135 +/- 0.012887520442626008 was LessThanThreshold '0.9395127993393898'"
    )
    assert auc.describe(0.5, math.nan) == "Metric auc with 0.5 was LessThanThreshold '0.9395127993393898'"
    rate = Constraint("true_positive_rate", 0.5714285714285714, "LessThanThreshold")
    assert rate.reported_name == "truePositiveRate"
    assert rate.describe(0.11456752655538695, 0.0031164575525145627) == (
        "Metric truePositiveRate with 0.11456752655538695 +/- 0.0031164575525145627 was LessThanThreshold "
        "'0.5714285714285714'"
    )
    assert Constraint("f0_5", 0.5, "LessThanThreshold").reported_name == "f0_5"


def test_sagemaker_file_with_scientific_notation_loads(tmp_path: Path) -> None:
    """A file as SageMaker writes it, thresholds in scientific notation included, loads as written."""
    path = tmp_path / "constraints.json"
    path.write_text(
        '{"version": 0.0, "binary_classification_constraints": {'
        '"recall": {"threshold": 7.8E-1, "comparison_operator": "LessThanThreshold"},'
        '"false_positive_rate": {"threshold": 1e-1, "comparison_operator": "GreaterThanThreshold"}}}'
    )
    loaded = load_constraints(path)
    assert loaded.problem_type == "BinaryClassification"
    assert {c.metric_name: c.threshold for c in loaded.constraints} == {"recall": 0.78, "false_positive_rate": 0.1}
    assert loaded.check({"recall": 0.7, "false_positive_rate": 0.05}) == [(loaded.constraints[0], 0.7)]


@pytest.mark.parametrize(
    "doc,key,problem",
    [
        (
            {
                "binary_classification_constraints": {
                    "recal": {"threshold": 1, "comparison_operator": "LessThanThreshold"}
                }
            },
            "binary_classification_constraints.recal",
            "unknown metric",
        ),
        (
            {"binary_classification_constraints": {"recall": {"threshold": 1, "comparison_operator": "Below"}}},
            "binary_classification_constraints.recall.comparison_operator",
            "is not one of",
        ),
        (
            {
                "binary_classification_constraints": {
                    "recall": {"threshold": "high", "comparison_operator": "LessThanThreshold"}
                }
            },
            "binary_classification_constraints.recall.threshold",
            "finite number",
        ),
        (
            {"binary_classification_constraints": {"recall": 0.8}},
            "binary_classification_constraints.recall",
            "expected an object",
        ),
        (
            {
                "multiclass_classification_constraints": {
                    "recall": {"threshold": 1, "comparison_operator": "LessThanThreshold"}
                }
            },
            "multiclass_classification_constraints.recall",
            "unknown metric",
        ),
        ({"version": 0.0}, "", "expected exactly one of"),
        ([1, 2], "", "JSON object"),
    ],
)
def test_malformed_files_name_the_file_and_key(tmp_path: Path, doc, key: str, problem: str) -> None:
    """Every malformed file is refused with its path, the offending key and what is wrong."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConstraintsError) as err:
        load_constraints(path)
    assert err.value.path == str(path) and err.value.key == key
    assert problem in str(err.value) and str(path) in str(err.value)


def test_invalid_json_and_missing_file_are_refused(tmp_path: Path) -> None:
    """Unreadable or non-JSON files give an error naming the file."""
    bad = tmp_path / "c.json"
    bad.write_text("{oops")
    with pytest.raises(ConstraintsError, match="not valid JSON"):
        load_constraints(bad)
    with pytest.raises(ConstraintsError, match="cannot read"):
        load_constraints(tmp_path / "missing.json")


def test_directory_and_mapping_give_per_model_constraints(tmp_path: Path) -> None:
    """A directory of MODEL.json files, or a model=path list, sets constraints (and problem type) per model."""
    binary = {
        "binary_classification_constraints": {"f1": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}}
    }
    multi = {
        "multiclass_classification_constraints": {
            "accuracy": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}
        }
    }
    (tmp_path / "churn.json").write_text(json.dumps(binary))
    (tmp_path / "species.json").write_text(json.dumps(multi))
    default, per_model = load_constraint_map(str(tmp_path))
    assert default is None and set(per_model) == {"churn", "species"}
    mapped = load_catalog(
        f"churn={tmp_path / 'churn.json'},species={tmp_path / 'species.json'}", "BinaryClassification"
    )
    assert mapped.problem_type("species") == "MulticlassClassification"
    assert mapped.problem_type("other") == "BinaryClassification"
    assert mapped.constraints("other") is None
    with pytest.raises(ConstraintsError, match="not model=path"):
        load_constraint_map("churn=")


def test_regression_constraints_load_with_error_metrics() -> None:
    """regression_constraints accept mae/mse/rmse/r2 and refuse classification metrics."""
    loaded = parse_constraints(
        {
            "regression_constraints": {
                "mae": {"threshold": 4.5e1, "comparison_operator": "GreaterThanThreshold"},
                "r2": {"threshold": 0.3, "comparison_operator": "LessThanThreshold"},
            }
        },
        "r.json",
    )
    assert loaded.problem_type == "Regression"
    assert [c.metric_name for c, _ in loaded.check({"mae": 50.0, "r2": 0.5})] == ["mae"]
    with pytest.raises(ConstraintsError, match="unknown metric for Regression"):
        parse_constraints(
            {"regression_constraints": {"recall": {"threshold": 1, "comparison_operator": "LessThanThreshold"}}},
            "r.json",
        )


def test_per_model_problem_type_setting_wins() -> None:
    """TRUTHSTREAM_MODEL_PROBLEM_TYPES sets a model's problem type even without constraints."""
    from stream.errors import ConfigError
    from stream.settings import Settings

    catalog = Settings(model_problem_types="species=MulticlassClassification").catalog()
    assert catalog.problem_type("species") == "MulticlassClassification"
    assert catalog.problem_type("churn") == "BinaryClassification"
    with pytest.raises(ConfigError, match="MODEL_PROBLEM_TYPES"):
        Settings.from_env({"TRUTHSTREAM_MODEL_PROBLEM_TYPES": "species=Ranking"})
