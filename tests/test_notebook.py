"""truthstream from Python: baseline and check on DataFrames, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from connectors import notebook
from stream.errors import InputError


def frame(n: int = 500, seed: int = 3) -> pd.DataFrame:
    """A labelled binary data set with scores, labels as booleans and predictions as 0/1."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.4
    score = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.2, n), 0, 1).round(4)
    return pd.DataFrame({"y": truth, "yhat": (score > 0.5).astype(int), "p": score, "id": [f"e{i}" for i in range(n)]})


def test_baseline_of_a_dataframe_equals_scikit_learn() -> None:
    """The statistics of a DataFrame are scikit-learn's metrics of its columns, and the suggested
    constraints and the calibration come with them."""
    data = frame()
    found = notebook.baseline(
        data, "BinaryClassification", label="y", prediction="yhat", probability="p", event_id="id"
    )
    y, yhat = data["y"].astype(int), data["yhat"]
    assert found.metrics["accuracy"] == pytest.approx(accuracy_score(y, yhat))
    assert found.metrics["precision"] == pytest.approx(precision_score(y, yhat))
    assert found.metrics["recall"] == pytest.approx(recall_score(y, yhat))
    assert found.metrics["f1"] == pytest.approx(f1_score(y, yhat))
    assert found.metrics["auc"] == pytest.approx(roc_auc_score(y, data["p"]), abs=1e-3)
    assert found.statistics["dataset"]["item_count"] == len(data)
    assert "accuracy" in found.constraints["binary_classification_constraints"]
    assert found.calibration is not None


def test_check_of_a_dataframe_lists_each_broken_constraint() -> None:
    """A threshold above the data's accuracy is one row; one below it, none."""
    data = frame()
    accuracy = accuracy_score(data["y"].astype(int), data["yhat"])
    constraints = {
        "binary_classification_constraints": {
            "accuracy": {"threshold": accuracy + 0.05, "comparison_operator": "LessThanThreshold"},
            "recall": {"threshold": 0.0, "comparison_operator": "LessThanThreshold"},
        }
    }
    result = notebook.check(data, constraints, label="y", prediction="yhat")
    assert not result.passed
    assert result.violations["metric_name"].tolist() == ["accuracy"]
    assert result.violations["value"].iloc[0] == pytest.approx(accuracy)


def test_bad_input_is_one_clear_error() -> None:
    """A missing column, a value that is no class, or a negative margin: InputError saying which."""
    data = frame(20)
    with pytest.raises(InputError, match="no column 'label'"):
        notebook.baseline(data, "BinaryClassification")
    with pytest.raises(InputError, match="'yhat'"):
        notebook.baseline(data.assign(yhat="maybe"), "BinaryClassification", label="y", prediction="yhat")
    with pytest.raises(InputError, match="negative"):
        notebook.baseline(data, "BinaryClassification", label="y", prediction="yhat", margin_stds=-1)
