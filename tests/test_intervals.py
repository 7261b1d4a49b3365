"""Confidence intervals of window metrics: checked by simulation against a known truth (over many
windows of a stationary stream, each interval covers the population value at its stated rate),
and DeLong's variance against a direct computation from the raw scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from stream.core.aggregate import WindowAggregate, subsample_mask
from stream.core.catalog import Catalog
from stream.core.config import CoreConfig
from stream.core.intervals import _binary_draws, bootstrap, delong_auc, intervals, multiclass_draws, wilson, z_of
from stream.core.metrics import binary_cells, compute_metrics
from stream.core.outputs import evaluate, window_doc
from stream.core.records import Joined

LEVEL = 0.95
WINDOWS = 1000
# Coverage of WINDOWS independent windows is binomial: within 3 standard errors of LEVEL.
BAND = 3 * math.sqrt(LEVEL * (1 - LEVEL) / WINDOWS)


def binary_window(rng: np.random.Generator, w: int, n: int) -> WindowAggregate:
    """Prevalence 0.3, recall 0.8, false positive rate 0.1; scores: logistic of N(y, 1)."""
    agg = WindowAggregate(1e-4)
    y = rng.random(n) < 0.3
    pred = np.where(y, rng.random(n) < 0.8, rng.random(n) < 0.1)
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + y)))
    for i in range(n):
        sample = Joined("m", "1", 0.0, str(int(y[i])), str(int(pred[i])), float(score[i]), subsample_mask(f"{w}-{i}"))
        agg.add(sample)
    return agg


BINARY_TRUTH = {  # expected counts per sample: tp 0.24, fn 0.06, fp 0.07, tn 0.63
    "accuracy": 0.87,
    "recall": 0.8,
    "true_positive_rate": 0.8,
    "precision": 0.24 / 0.31,
    "true_negative_rate": 0.9,
    "false_positive_rate": 0.1,
    "false_negative_rate": 0.2,
    "f1": 0.48 / 0.61,
    "f0_5": 0.3 / 0.385,
    "f2": 1.2 / 1.51,
    "auc": 0.5 * math.erfc(-0.5),  # P(N(1,1) > N(0,1)) = Phi(1/sqrt 2)
    "accuracy_best_constant_classifier": 0.7,
}


def multiclass_window(rng: np.random.Generator, w: int, n: int) -> WindowAggregate:
    """Classes 0, 1, 2 with priors 0.5, 0.3, 0.2; right 80 % of the time, else one of the others."""
    agg = WindowAggregate(1e-4)
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    pred = np.where(rng.random(n) < 0.8, y, (y + rng.integers(1, 3, n)) % 3)
    for i in range(n):
        agg.add(Joined("m", "1", 0.0, str(y[i]), str(pred[i]), None, subsample_mask(f"{w}-{i}")))
    return agg


def multiclass_truth() -> dict[str, float]:
    priors = np.array([0.5, 0.3, 0.2])
    cells = np.array([[priors[a] * (0.8 if a == p else 0.1) for p in range(3)] for a in range(3)])
    precision, recall = np.diag(cells) / cells.sum(axis=0), np.full(3, 0.8)

    def f(beta: float) -> float:
        return float(priors @ ((1 + beta**2) * precision * recall / (beta**2 * precision + recall)))

    return {
        "accuracy": 0.8,
        "weighted_recall": 0.8,
        "weighted_precision": float(priors @ precision),
        "weighted_f0_5": f(0.5),
        "weighted_f1": f(1.0),
        "weighted_f2": f(2.0),
        "accuracy_best_constant_classifier": 0.5,
        "weighted_precision_best_constant_classifier": 0.25,
        "weighted_f1_best_constant_classifier": 0.5 * (2 * 0.5 / 1.5),
    }


def regression_window(rng: np.random.Generator, w: int, n: int) -> WindowAggregate:
    """y ~ N(0, 2²), prediction = y + N(0, 1): mae sqrt(2/pi), mse 1, rmse 1, r² 0.75."""
    agg = WindowAggregate(1e-4)
    y = rng.normal(0, 2, n)
    pred = y + rng.normal(0, 1, n)
    for i in range(n):
        agg.add(Joined("m", "1", 0.0, repr(float(y[i])), repr(float(pred[i])), None, subsample_mask(f"{w}-{i}")), True)
    return agg


REGRESSION_TRUTH = {"mae": math.sqrt(2 / math.pi), "mse": 1.0, "rmse": 1.0, "r2": 0.75}


def coverage(make, problem_type: str, truth: dict[str, float], n: int, seed: int) -> dict[str, float]:
    """Share of WINDOWS windows of n samples whose interval holds each metric's population value."""
    rng = np.random.default_rng(seed)
    covered = dict.fromkeys(truth, 0)
    for w in range(WINDOWS):
        agg = make(rng, w, n)
        found = intervals(agg, problem_type, LEVEL, compute_metrics(agg, problem_type, 0))
        for name, value in truth.items():
            interval = found.get(name)
            covered[name] += interval is not None and interval[0] <= value <= interval[1]
    return {name: hits / WINDOWS for name, hits in covered.items()}


@pytest.mark.parametrize(
    ("make", "problem_type", "truth", "n"),
    [
        (binary_window, "BinaryClassification", BINARY_TRUTH, 150),
        (multiclass_window, "MulticlassClassification", multiclass_truth(), 150),
        (regression_window, "Regression", REGRESSION_TRUTH, 300),
    ],
    ids=["binary", "multiclass", "regression"],
)
def test_intervals_cover_the_population_value_at_their_stated_rate(make, problem_type, truth, n) -> None:
    """1,000 windows of a stationary stream (150 samples a window; regression 300, its MSE, RMSE
    and R² intervals need the subsamples' deviations, from 200 samples on)."""
    rates = coverage(make, problem_type, truth, n, seed=11)
    off = {name: rate for name, rate in rates.items() if abs(rate - LEVEL) > BAND}
    assert not off, f"coverage outside {LEVEL} +/- {BAND:.3f}: {off} (all: {rates})"


def test_wilson_is_the_score_interval_and_stays_inside_0_1() -> None:
    # 8 successes of 10 at 95 %: the textbook value (Wilson 1927; e.g. Agresti & Coull 1998)
    lower, upper = wilson(8, 10, 0.95)
    assert lower == pytest.approx(0.4902, abs=1e-4) and upper == pytest.approx(0.9433, abs=1e-4)
    assert wilson(10, 10, 0.95)[1] == 1.0 and wilson(10, 10, 0.95)[0] < 1.0  # not [1, 1] for 10 of 10
    assert wilson(0, 0, 0.95) is None
    assert z_of(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_delong_equals_a_direct_computation_from_the_raw_scores() -> None:
    """AUC equals scikit-learn's; the variance equals DeLong's formula evaluated pair by pair."""
    rng = np.random.default_rng(5)
    y = rng.random(400) < 0.4
    scores = np.clip(np.round(0.5 + 0.15 * (rng.normal(0, 1, 400) + y), 1), 0, 1)  # on the 0.1 bins: many ties
    agg = WindowAggregate(0.1)
    for i in range(400):
        agg.add(Joined("m", "1", 0.0, str(int(y[i])), "1", float(scores[i]), 0))
    _, negatives, positives = agg.score_histogram()
    lower, upper = delong_auc(negatives, positives, LEVEL)
    pos, neg = scores[y], scores[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    assert auc == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    se = math.sqrt(psi.mean(axis=1).var(ddof=1) / len(pos) + psi.mean(axis=0).var(ddof=1) / len(neg))
    logit, half = math.log(auc / (1 - auc)), z_of(LEVEL) * se / (auc * (1 - auc))
    assert lower == pytest.approx(1 / (1 + math.exp(-(logit - half))), abs=1e-9)
    assert upper == pytest.approx(1 / (1 + math.exp(-(logit + half))), abs=1e-9)


def test_every_scalar_of_a_metrics_record_carries_an_interval_around_its_value() -> None:
    """And the same window always gets the same intervals (the bootstrap is seeded by the window's
    counts), so a replay equals the live worker."""
    for make, problem_type in (
        (binary_window, "BinaryClassification"),
        (multiclass_window, "MulticlassClassification"),
        (regression_window, "Regression"),
    ):
        records = [
            evaluate(
                "m", "1", window_doc("tumbling", 0, 60), make(np.random.default_rng(2), 0, 250), {}, CoreConfig(),
                Catalog(problem_type),
            )[0]
            for _ in range(2)
        ]  # fmt: skip
        assert records[0] == records[1]
        assert records[0]["confidence_level"] == LEVEL
        body = next(v for k, v in records[0].items() if k.endswith("_metrics"))
        for name, entry in body.items():
            if isinstance(entry, dict) and "value" in entry:
                lower, upper = entry["confidence_interval"]
                assert lower <= entry["value"] <= upper, (problem_type, name, entry)


def test_small_windows_and_no_level() -> None:
    """Below 200 samples MSE, RMSE and R² have no interval ("NaN"); level 0 writes none at all."""
    rng = np.random.default_rng(3)
    record, _ = evaluate(
        "m", "1", window_doc("tumbling", 0, 60), regression_window(rng, 0, 50), {}, CoreConfig(), Catalog("Regression")
    )
    body = record["regression_metrics"]
    assert body["mse"]["confidence_interval"] == "NaN" and isinstance(body["mae"]["confidence_interval"], list)
    record, _ = evaluate(
        "m",
        "1",
        window_doc("tumbling", 0, 60),
        binary_window(rng, 0, 50),
        {},
        CoreConfig(confidence_level=0.0),
        Catalog(),
    )
    assert "confidence_level" not in record
    assert all("confidence_interval" not in e for e in record["binary_classification_metrics"].values())


def accuracy_window(right: int, n: int) -> WindowAggregate:
    """A binary window of n samples, `right` of them predicted correctly."""
    agg = WindowAggregate(1e-4)
    for i in range(n):
        y = i % 2
        agg.add(Joined("m", "1", 0.0, str(y), str(y if i < right else 1 - y), None, 0))
    return agg


def test_the_interval_rule_raises_only_violations_beyond_the_noise() -> None:
    """Accuracy 0.78 of 150 against 'below 0.8' is noise (its interval reaches 0.8): a violation
    under SageMaker's rule, none under the interval rule, which lists it as within the noise;
    0.6 of 150 is a violation under both, and every violation carries its interval."""
    from stream.core.constraints import Constraint, ConstraintSet

    constraints = ConstraintSet("BinaryClassification", (Constraint("accuracy", 0.8, "LessThanThreshold"),))
    catalog = Catalog(default=constraints)
    window = window_doc("tumbling", 0, 60)
    noisy, clear = accuracy_window(117, 150), accuracy_window(90, 150)  # accuracy 0.78 and 0.6
    for rule, noisy_violations in (("value", 1), ("interval", 0)):
        config = CoreConfig(min_samples=10, violation_rule=rule)
        record, violations = evaluate("m", "1", window, noisy, {}, config, catalog)
        assert len(violations) == noisy_violations
        assert record.get("within_noise", []) == (["accuracy"] if rule == "interval" else [])
        record, violations = evaluate("m", "1", window, clear, {}, config, catalog)
        assert [v["metric_name"] for v in violations] == ["accuracy"] and record["status"] == "violations"
        lower, upper = violations[0]["confidence_interval"]
        assert lower < 0.6 < upper < 0.8 and violations[0]["confidence_level"] == LEVEL


def test_the_bootstraps_metrics_equal_the_reported_values_on_any_matrix() -> None:
    """The bootstrap redraws the metrics the record reports (river's values): on 300 random binary and
    multiclass confusion matrices, zeros and missing classes included, its formulas give them exactly."""
    from stream.core.intervals import _binary_draws, multiclass_draws

    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(2, 5))
        cells = rng.integers(0, 6, size=(k, k)) * (rng.random((k, k)) < 0.7)
        if not cells.sum():
            continue
        agg = WindowAggregate(1e-4)
        for a in range(k):
            for p in range(k):
                for _ in range(int(cells[a, p])):
                    agg.add(Joined("m", "1", 0.0, str(a), str(p), None, 0))
        body = compute_metrics(agg, "MulticlassClassification", 0)
        seen = sorted({a for a in range(k) if cells[a].sum()} | {p for p in range(k) if cells[:, p].sum()})
        sub = cells[np.ix_(seen, seen)]
        mine = multiclass_draws(len(seen), int(np.argmax(sub.sum(axis=1))))(sub.reshape(1, -1))
        for name, values in mine.items():
            assert values[0] == pytest.approx(body[name]["value"], abs=1e-12), (name, sub.tolist())
        tp, fn, fp, tn = (int(x) for x in rng.integers(0, 8, 4))
        if tp + fn + fp + tn:
            agg = WindowAggregate(1e-4)
            for a, p, n in (("1", "1", tp), ("1", "0", fn), ("0", "1", fp), ("0", "0", tn)):
                for _ in range(n):
                    agg.add(Joined("m", "1", 0.0, a, p, None, 0))
            body = compute_metrics(agg, "BinaryClassification", 0)
            mine = _binary_draws(tp + fn >= tn + fp)(np.array([[tp, fn, fp, tn]]))
            for name, values in mine.items():
                assert values[0] == pytest.approx(body[name]["value"], abs=1e-12), (name, (tp, fn, fp, tn))


def test_a_remembered_bootstrap_is_the_bootstrap_of_the_windows_counts() -> None:
    """Windows with the same counts share one bootstrap (remembered by counts): each gets exactly what
    a bootstrap of its own counts gives, and what a caller does with its intervals reaches no other."""
    for _ in range(2):  # the second round is answered from memory
        for n in range(1, 30):
            window = binary_window(np.random.default_rng(n % 7), 0, n)
            found = intervals(window, "BinaryClassification", LEVEL, {})
            tp, fn, fp, tn = binary_cells(window.confusion())
            expected = bootstrap(np.array([tp, fn, fp, tn]), _binary_draws(tp + fn >= tn + fp), LEVEL)
            assert expected and {name: found[name] for name in expected} == expected
            found.clear()
            window = multiclass_window(np.random.default_rng(n % 5), 0, n)
            found = intervals(window, "MulticlassClassification", LEVEL, {})
            matrix = window.confusion()
            classes = sorted(set(matrix) | {p for row in matrix.values() for p in row})
            counts = np.array([matrix.get(a, {}).get(p, 0) for a in classes for p in classes])
            majority = int(np.argmax(counts.reshape(len(classes), len(classes)).sum(axis=1)))
            expected = bootstrap(counts, multiclass_draws(len(classes), majority), LEVEL)
            assert expected and {name: found[name] for name in expected} == expected


def test_delong_near_an_auc_of_0_or_1_stays_a_number_in_0_1() -> None:
    """Label-free estimates weigh samples by fractional probabilities: an AUC within a hair of 0 (or
    1) with a wide interval put the logit bounds hundreds of units out, where `exp` overflowed and
    stopped the worker (found by bench/soak.py). The bounds are now 0 and 1 there."""
    for weight in (1e-3, 1e-6, 1e-9, 1e-12):
        low, high = delong_auc(np.array([1000.0, 0.0]), np.array([weight, 2.0]), 0.95)
        assert 0.0 <= low <= high <= 1.0
        low, high = delong_auc(np.array([0.0, 1000.0]), np.array([2.0, weight]), 0.95)
        assert 0.0 <= low <= high <= 1.0
