"""Every metric of a window against scikit-learn, the independent oracle."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest
from sklearn import metrics as skm

from stream.core.aggregate import WindowAggregate
from stream.core.metrics import BINARY_SCALARS, MULTICLASS_SCALARS, compute_metrics
from stream.core.records import Joined

RES = 1e-4


def binary_samples(n: int, seed: int, ties: bool = False, positive_share: float = 0.35) -> list[Joined]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        y = 1 if rng.random() < positive_share else 0
        score = min(1.0, max(0.0, rng.gauss(0.35 + 0.3 * y, 0.2)))
        if ties:
            score = round(score, 1)
        out.append(Joined("m", "1", float(i), str(y), str(int(score >= 0.5)), score))
    return out


def arrays(samples: list[Joined]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.array([int(s.y_true) for s in samples])
    p = np.array([int(s.y_pred) for s in samples])
    scores = np.array([round(s.score / RES) * RES for s in samples])
    return y, p, scores


def values(stats: dict) -> dict[str, float]:
    return {k: v["value"] for k, v in stats.items() if isinstance(v, dict) and "value" in v}


@pytest.mark.parametrize("seed,ties,share", [(1, False, 0.35), (2, True, 0.35), (3, False, 0.6)])
def test_binary_scalars_match_sklearn(seed: int, ties: bool, share: float) -> None:
    """Every binary scalar equals scikit-learn's value on the same samples to 1e-9 (a majority of
    negatives, then of positives, for the best constant classifier)."""
    samples = binary_samples(2000, seed, ties, share)
    stats = compute_metrics(WindowAggregate.of(samples, RES), "BinaryClassification", curve_points=100000)
    got = values(stats)
    y, p, scores = arrays(samples)
    # The current analyzer's best constant classifier: the ground truth's majority class (tie: 1).
    ones = np.full_like(y, 1 if 2 * int(np.sum(y)) >= len(y) else 0)
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    expected = {
        "recall": skm.recall_score(y, p),
        "precision": skm.precision_score(y, p),
        "accuracy": skm.accuracy_score(y, p),
        "f0_5": skm.fbeta_score(y, p, beta=0.5),
        "f1": skm.f1_score(y, p),
        "f2": skm.fbeta_score(y, p, beta=2),
        "true_positive_rate": tp / (tp + fn),
        "true_negative_rate": tn / (tn + fp),
        "false_positive_rate": fp / (fp + tn),
        "false_negative_rate": fn / (fn + tp),
        "recall_best_constant_classifier": skm.recall_score(y, ones, zero_division=0),
        "precision_best_constant_classifier": skm.precision_score(y, ones, zero_division=0),
        "accuracy_best_constant_classifier": skm.accuracy_score(y, ones),
        "f0_5_best_constant_classifier": skm.fbeta_score(y, ones, beta=0.5, zero_division=0),
        "f1_best_constant_classifier": skm.f1_score(y, ones, zero_division=0),
        "f2_best_constant_classifier": skm.fbeta_score(y, ones, beta=2, zero_division=0),
        "auc": skm.roc_auc_score(y, scores),
    }
    assert set(got) == set(BINARY_SCALARS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(float(value), abs=1e-9), name
    assert stats["confusion_matrix"] == {"0": {"0": int(tn), "1": int(fp)}, "1": {"0": int(fn), "1": int(tp)}}


def test_auc_on_unbinned_scores_is_within_documented_tolerance() -> None:
    """Binning scores at 1e-4 keeps AUC within 1e-3 of the exact value on raw scores."""
    samples = binary_samples(5000, 11)
    stats = compute_metrics(WindowAggregate.of(samples, RES), "BinaryClassification", curve_points=101)
    y = [int(s.y_true) for s in samples]
    raw = [s.score for s in samples]
    assert abs(stats["auc"]["value"] - skm.roc_auc_score(y, raw)) < 1e-3


@pytest.mark.parametrize("ties", [False, True])
def test_curves_match_sklearn_points(ties: bool) -> None:
    """Un-thinned ROC and PR curves are scikit-learn's points (ROC in its order, PR in SageMaker's)."""
    samples = binary_samples(800, 5, ties)
    stats = compute_metrics(WindowAggregate.of(samples, RES), "BinaryClassification", curve_points=100000)
    y, _, scores = arrays(samples)
    fpr, tpr, _ = skm.roc_curve(y, scores, drop_intermediate=False)
    roc = stats["receiver_operating_characteristic_curve"]
    np.testing.assert_allclose(roc["false_positive_rates"], fpr, atol=1e-12)
    np.testing.assert_allclose(roc["true_positive_rates"], tpr, atol=1e-12)
    precision, recall, _ = skm.precision_recall_curve(y, scores)
    pr = stats["precision_recall_curve"]
    # SageMaker's order, recall ascending: scikit-learn's points reversed. scikit-learn stops once
    # recall reaches 1; the rest of ours continues from there.
    assert pr["recalls"][0] == 0.0 and pr["precisions"][0] == 1.0
    assert all(a <= b for a, b in zip(pr["recalls"], pr["recalls"][1:]))
    np.testing.assert_allclose(pr["precisions"][: len(precision)], precision[::-1], atol=1e-12)
    np.testing.assert_allclose(pr["recalls"][: len(recall)], recall[::-1], atol=1e-12)


def test_thinned_curves_keep_only_true_points() -> None:
    """A curve capped at N points keeps its ends and only points of the full curve."""
    samples = binary_samples(3000, 8)
    agg = WindowAggregate.of(samples, RES)
    full = compute_metrics(agg, "BinaryClassification", curve_points=100000)["receiver_operating_characteristic_curve"]
    thin = compute_metrics(agg, "BinaryClassification", curve_points=51)["receiver_operating_characteristic_curve"]
    assert len(thin["false_positive_rates"]) <= 51
    pairs = set(zip(full["false_positive_rates"], full["true_positive_rates"]))
    assert set(zip(thin["false_positive_rates"], thin["true_positive_rates"])) <= pairs
    assert (thin["false_positive_rates"][0], thin["false_positive_rates"][-1]) == (0.0, 1.0)


def test_multiclass_matches_sklearn() -> None:
    """Weighted multiclass metrics and the majority-class constant classifier match scikit-learn."""
    rng = random.Random(4)
    classes = ["a", "b", "c", "d"]
    samples = []
    for i in range(1500):
        y = rng.choices(classes, weights=[5, 3, 2, 1])[0]
        pred = y if rng.random() < 0.7 else rng.choice(classes)
        samples.append(Joined("m", "", float(i), y, pred, None))
    stats = compute_metrics(WindowAggregate.of(samples, RES), "MulticlassClassification", curve_points=10)
    got = values(stats)
    y = [s.y_true for s in samples]
    p = [s.y_pred for s in samples]
    majority = ["a"] * len(y)
    kw = {"average": "weighted", "zero_division": 0}
    expected = {
        "accuracy": skm.accuracy_score(y, p),
        "weighted_recall": skm.recall_score(y, p, **kw),
        "weighted_precision": skm.precision_score(y, p, **kw),
        "weighted_f0_5": skm.fbeta_score(y, p, beta=0.5, **kw),
        "weighted_f1": skm.f1_score(y, p, **kw),
        "weighted_f2": skm.fbeta_score(y, p, beta=2, **kw),
        "accuracy_best_constant_classifier": skm.accuracy_score(y, majority),
        "weighted_recall_best_constant_classifier": skm.recall_score(y, majority, **kw),
        "weighted_precision_best_constant_classifier": skm.precision_score(y, majority, **kw),
        "weighted_f0_5_best_constant_classifier": skm.fbeta_score(y, majority, beta=0.5, **kw),
        "weighted_f1_best_constant_classifier": skm.f1_score(y, majority, **kw),
        "weighted_f2_best_constant_classifier": skm.fbeta_score(y, majority, beta=2, **kw),
    }
    assert set(got) == set(MULTICLASS_SCALARS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(float(value), abs=1e-9), name
    matrix = skm.confusion_matrix(y, p, labels=classes)
    for i, actual in enumerate(classes):
        for j, predicted in enumerate(classes):
            assert stats["confusion_matrix"].get(actual, {}).get(predicted, 0) == matrix[i, j]


def test_single_class_window_reports_nan_auc_as_string() -> None:
    """A window without negatives has no AUC; it is written as SageMaker's "NaN", never a float NaN."""
    samples = [Joined("m", "", 0.0, "1", "1", 0.9), Joined("m", "", 1.0, "1", "0", 0.2)]
    stats = compute_metrics(WindowAggregate.of(samples, RES), "BinaryClassification", curve_points=10)
    assert stats["auc"]["value"] == "NaN"
    assert stats["recall"]["value"] == 0.5
    assert all(
        not (isinstance(v, float) and math.isnan(v))
        for v in stats["receiver_operating_characteristic_curve"]["true_positive_rates"]
    )


def test_regression_metrics_match_sklearn() -> None:
    """MAE, MSE, RMSE and R² from a window's sums equal scikit-learn's, also after merging partial windows."""
    rng = random.Random(6)
    samples = []
    for i in range(3000):
        y = rng.gauss(150, 70)
        samples.append(Joined("m", "", float(i), repr(y), repr(y + rng.gauss(3, 40)), None))
    whole = WindowAggregate.of(samples, RES, regression=True)
    merged = WindowAggregate.of(samples[:1000], RES, regression=True)
    merged.merge(WindowAggregate.of(samples[1000:], RES, regression=True))
    y = [float(s.y_true) for s in samples]
    p = [float(s.y_pred) for s in samples]
    expected = {
        "mae": skm.mean_absolute_error(y, p),
        "mse": skm.mean_squared_error(y, p),
        "rmse": math.sqrt(skm.mean_squared_error(y, p)),
        "r2": skm.r2_score(y, p),
    }
    for agg in (whole, merged):
        got = values(compute_metrics(agg, "Regression", curve_points=10))
        assert set(got) == set(expected)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9), name
    constant = WindowAggregate.of([Joined("m", "", 0.0, "2.0", "2.0", None)] * 3, RES, regression=True)
    assert values(compute_metrics(constant, "Regression", 10))["r2"] == skm.r2_score([2, 2, 2], [2, 2, 2])


def test_subsample_counters_are_bounded_and_survive_the_hash_form() -> None:
    """20,000 samples in one window: the masked cells stay within 31 masks x 4 cells x 102 coarse
    bins, and the Redis hash form gives back the same metrics and deviations."""
    from stream.core.aggregate import subsample_mask

    samples = [
        Joined(s.model, s.model_version, s.time, s.y_true, s.y_pred, s.score, subsample_mask(f"id-{i}"))
        for i, s in enumerate(binary_samples(20_000, 7))
    ]
    agg = WindowAggregate.of(samples, RES)
    assert len(agg.mcells) <= 31 * 4 * 102
    # A sample is in no subsample with probability 0.2 ** 5: about 6 of these 20,000.
    assert sum(agg.mcells.values()) + sum(agg.cells.values()) == 20_000 and sum(agg.cells.values()) < 30
    again = WindowAggregate(RES, agg.fields())
    stats = compute_metrics(agg, "BinaryClassification", curve_points=101)
    assert compute_metrics(again, "BinaryClassification", curve_points=101) == stats
    assert all(isinstance(v["standard_deviation"], float) for v in stats.values() if "value" in v)


@pytest.mark.slow
def test_multiclass_metrics_are_the_same_bytes_in_every_process() -> None:
    """The weighted metrics of a multiclass window do not depend on the process's string hash seed
    (river lists a confusion matrix's classes from a set): two workers, or a replay and the live
    worker, write the same digits."""
    import subprocess
    import sys

    code = (
        "import json; from stream.core.metrics import compute_metrics; from stream.core.aggregate import "
        "WindowAggregate; a = WindowAggregate(1e-4); import random; r = random.Random(5); "
        "c = ['cat', 'dog', 'bird', 'fish', 'owl']; y = [r.choice(c) for _ in range(500)]; "
        "p = [t if r.random() < 0.6 else r.choice(c) for t in y]; a.add_columns(y, p, None, False); "
        "print(json.dumps(compute_metrics(a, 'MulticlassClassification', 0), sort_keys=True))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    assert len(outputs) == 1 and "weighted_f2" in outputs.pop()
