"""Label-free estimates (CBPE): the calibration fitted by the baseline, the estimate published when a
window's inferences are complete, and how it tracks the realized metrics under covariate shift and
misses concept drift, checked by simulation against a known truth (P(y | x) is chosen here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from stream.core.aggregate import WindowAggregate
from stream.core.baseline import Baseline
from stream.core.calibration import Calibration, fit_calibration, parse_calibration
from stream.core.catalog import Catalog
from stream.core.constraints import parse_constraints
from stream.core.estimates import count_estimate, estimated_metrics
from stream.core.timefmt import format_time
from stream.errors import ConfigError
from tests.factories import T0, Topic, inference, label
from tests.harness import Harness, base_settings

pytestmark = pytest.mark.redis_cluster  # its Redis tests run again on a Redis Cluster in CI

WINDOW = 60.0


def truth(x: np.ndarray) -> np.ndarray:
    """The world's P(y = 1 | x)."""
    return 1 / (1 + np.exp(-(2.0 * x - 0.5)))


def model_score(x: np.ndarray) -> np.ndarray:
    """The model's score: ranks like the truth but is over-confident (not calibrated)."""
    return 1 / (1 + np.exp(-(3.5 * x - 0.3)))


def calibration_from(rng: np.random.Generator, n: int = 100_000) -> Calibration:
    """What `truthstream baseline` fits on a labelled reference set (x ~ N(0, 1))."""
    x = rng.normal(0.0, 1.0, n)
    y = rng.random(n) < truth(x)
    s = model_score(x)
    base = Baseline("BinaryClassification")
    base.add(np.where(y, "1", "0").tolist(), np.where(s >= 0.5, "1", "0").tolist(), s, [str(i) for i in range(n)])
    return fit_calibration(base.full)[0]


def test_the_calibration_is_scikit_learns_isotonic_regression() -> None:
    """On the baseline's histogram (scores at 1e-4), the fitted map predicts what scikit-learn's
    IsotonicRegression fitted on the same rows predicts, at every score of a fine grid."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, 20_000)
    y = (rng.random(len(x)) < truth(x)).astype(float)
    s = np.round(model_score(x), 4)
    agg = WindowAggregate(1e-4)
    agg.add_columns(np.where(y == 1, "1", "0").tolist(), ["1"] * len(x), s)
    calibration, brier = fit_calibration(agg)
    oracle = IsotonicRegression(out_of_bounds="clip").fit(s, y)
    grid = np.linspace(0, 1, 2001)
    ours = np.array([calibration.probability(v) for v in grid])
    assert np.allclose(ours, oracle.predict(grid), atol=1e-9)
    assert brier["calibrated"] < brier["raw"]  # the scores were over-confident
    assert len(calibration.scores) < 2 * len(np.unique(s))  # only the blocks' ends are kept


def test_a_calibration_file_is_validated() -> None:
    calibration = Calibration((0.0, 0.5, 1.0), (0.1, 0.4, 0.9), 10)
    assert parse_calibration(calibration.to_doc(), "c.json") == calibration
    for broken, why in (
        ({"scores": [0.0, 1.0], "probabilities": [0.1]}, "same, non-zero length"),
        ({"scores": [0.5, 0.2], "probabilities": [0.1, 0.2]}, "non-decreasing"),
        ({"scores": [0.0, 1.0], "probabilities": [0.1, 1.5]}, r"lie in \[0, 1\]"),
        ({"problem_type": "Regression"}, "only classifiers"),
        ({"truthstream_calibration": 7}, "truthstream_calibration"),
    ):
        with pytest.raises(ConfigError, match=why):
            parse_calibration({**calibration.to_doc(), **broken}, "c.json")


def test_the_estimate_is_the_expected_confusion_matrix_and_its_variance() -> None:
    """The estimated metrics of a window equal the mean of the metrics over outcomes drawn from the
    calibrated probabilities, and their standard deviations the draws' (100,000 draws)."""
    rng = np.random.default_rng(11)
    p = rng.beta(2, 2, 400)
    predicted = p >= 0.45
    agg = WindowAggregate(1e-4)
    for pi, yi in zip(p, predicted):
        count_estimate(agg, "1" if yi else "0", float(pi), float(pi))
    found = estimated_metrics(agg, 0.95)
    y = rng.random((100_000, len(p))) < p
    tp, fp = (y & predicted).sum(1), (~y & predicted).sum(1)
    fn, tn = (y & ~predicted).sum(1), (~y & ~predicted).sum(1)
    draws = {
        "accuracy": (tp + tn) / len(p),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }
    for name, values in draws.items():
        entry = found[f"estimated_{name}"]
        assert entry["value"] == pytest.approx(values.mean(), abs=2e-3), name
        assert entry["standard_deviation"] == pytest.approx(values.std(), rel=0.03), name
        lo, hi = entry["confidence_interval"]
        assert 0.93 <= np.mean((values >= lo) & (values <= hi)) <= 0.97, name


def stream(rng: np.random.Generator, shifts: list[float], per_window: int, concept: list[bool]) -> list[list]:
    """Per window: its inferences (x ~ N(shift, 1)), then the labels of the window before (drawn from
    the truth, or from a flipped world where `concept` says so), so that a window's estimate is
    published (event time passes its end) before any of its labels comes."""
    inf, lab = Topic("inferences"), Topic("labels")
    batches, previous = [], []
    for w, (shift, drifted) in enumerate(zip(shifts, concept)):
        x = rng.normal(shift, 1.0, per_window)
        s = model_score(x)
        p = truth(-x) if drifted else truth(x)  # concept drift: P(y | x) turns around
        y = rng.random(per_window) < p
        times = T0 + w * WINDOW + np.sort(rng.uniform(0, WINDOW, per_window))
        ids = [f"w{w}-{i}" for i in range(per_window)]
        infs = [inf.msg(inference(e, float(t), int(si >= 0.5), float(si))) for e, t, si in zip(ids, times, s)]
        batches += [infs, previous]
        previous = [lab.msg(label(e, int(yi))) for e, yi in zip(ids, y)]
    end = T0 + len(shifts) * WINDOW
    batches += [[inf.msg(inference("tick", end + 1, 0, 0.1))], previous]  # the last window's estimate, labels
    batches.append([inf.msg(inference("tock", end + 1000, 0, 0.1))])  # close it
    return batches


def paired(h: Harness) -> list[tuple[dict, dict]]:
    """(estimate record, final record) of every window, in window order."""
    estimates = {r["window"]["start"]: r for r in h.metrics("provisional")}
    finals = {r["window"]["start"]: r for r in h.metrics("tumbling")}
    assert set(estimates) >= set(finals)
    return [(estimates[k], finals[k]) for k in sorted(finals)]


def run(rng: np.random.Generator, shifts: list[float], concept: list[bool], per_window: int = 400) -> Harness:
    catalog = Catalog(default_calibration=calibration_from(rng))
    h = Harness("memory", base_settings(window_seconds=WINDOW, label_grace=WINDOW), catalog)
    for batch in stream(rng, shifts, per_window, concept):
        h.feed(batch)  # one batch each: the estimate is published at a batch's end
    return h


def test_under_covariate_shift_the_estimate_tracks_the_realized_metrics() -> None:
    """The inputs move (x ~ N(-1.2 .. 1.5, 1)) while P(y | x) stays: accuracy moves between about 0.74 and
    0.91 with it. Each window's estimate, published before its labels, holds the realized accuracy
    and F1 within its 95 % interval in at least 90 % of 60 windows (of 400 inferences)."""
    rng = np.random.default_rng(2026)
    shifts = np.linspace(-1.2, 1.5, 60).tolist()
    h = run(rng, shifts, [False] * len(shifts))
    pairs = paired(h)
    assert len(pairs) == len(shifts)
    for name in ("accuracy", "f1"):
        inside = []
        for estimate, final in pairs:
            assert estimate["sample_count"] == 0  # published before any label of the window
            body = estimate["binary_classification_metrics"]
            lo, hi = body[f"estimated_{name}"]["confidence_interval"]
            realized = final["binary_classification_metrics"][name]["value"]
            inside.append(lo <= realized <= hi)
        assert np.mean(inside) >= 0.9, (name, np.mean(inside))
    realized = [f["binary_classification_metrics"]["accuracy"]["value"] for _, f in pairs]
    assert max(realized) - min(realized) > 0.15  # the shift did move the metric the estimate followed
    errors = [f["estimate_error"]["accuracy"] for _, f in pairs]
    assert abs(np.mean(errors)) < 0.01


def test_under_concept_drift_the_estimate_stays_flat_while_the_realized_metrics_fall() -> None:
    """P(y | x) turns around half-way while the inputs stay: the estimate cannot see it (the same
    inputs, the same estimate), the realized accuracy falls, and `estimate_error` shows the gap."""
    rng = np.random.default_rng(7)
    concept = [False] * 20 + [True] * 20
    h = run(rng, [0.0] * 40, concept)
    pairs = paired(h)
    est = np.array([e["binary_classification_metrics"]["estimated_accuracy"]["value"] for e, _ in pairs])
    real = np.array([f["binary_classification_metrics"]["accuracy"]["value"] for _, f in pairs])
    assert abs(est[20:].mean() - est[:20].mean()) < 0.02
    assert real[:20].mean() - real[20:].mean() > 0.3
    errors = np.array([f["estimate_error"]["accuracy"] for _, f in pairs])
    assert np.all(np.abs(errors[:20]) < 0.1) and np.all(errors[20:] < -0.2)


def test_estimates_are_published_once_before_the_labels_and_judged(make) -> None:
    """On both stores: a window's estimate comes when event time passes its end, with no label yet,
    once (later batches and a late inference do not repeat it); an estimated accuracy under the
    threshold is a violation marked estimated; the final record carries the estimate over every
    inference and its error."""
    calibration = Calibration((0.0, 1.0), (0.0, 1.0))  # scores are calibrated already
    constraints = parse_constraints(
        {
            "binary_classification_constraints": {
                "accuracy": {"threshold": 0.9, "comparison_operator": "LessThanThreshold"}
            }
        },
        "c.json",
    )
    h = make(base_settings(label_grace=30.0), Catalog(default=constraints, default_calibration=calibration))
    inf, lab = Topic("inferences"), Topic("labels")
    scores = [0.9, 0.8, 0.3, 0.6, 0.1]
    h.feed([inf.msg(inference(f"e{i}", T0 + i, int(s >= 0.5), s)) for i, s in enumerate(scores)])
    assert h.metrics("provisional") == []
    h.feed([inf.msg(inference("next", T0 + 61, 0, 0.2))])  # event time passes the window's end
    [estimate] = h.metrics("provisional")
    expected = sum(s if s >= 0.5 else 1 - s for s in scores) / len(scores)  # P(correct) summed
    body = estimate["binary_classification_metrics"]
    assert body["estimated_accuracy"]["value"] == pytest.approx(expected)
    assert estimate["inference_count"] == 5 and estimate["sample_count"] == 0 and estimate["revision"] == 0
    assert estimate["estimated_confusion_matrix"]["1"]["1"] == pytest.approx(0.9 + 0.8 + 0.6)
    [violation] = h.records(h.settings.violations_topic)
    assert violation["estimated"] is True and violation["metric_name"] == "estimated_accuracy"
    assert violation["window"]["kind"] == "provisional"
    late = inf.msg(inference("late", T0 + 59, 1, 0.95))  # a late inference: counted in the final only
    h.feed([late] + [lab.msg(label(f"e{i}", y)) for i, y in enumerate([1, 1, 0, 0, 0])])
    h.feed([inf.msg(inference("tick", T0 + 200, 0, 0.2))])
    assert [r["window"]["start"] for r in h.metrics("provisional")].count(format_time(T0)) == 1
    [final] = [r for r in h.metrics() if r["window"]["start"] == format_time(T0)]
    assert final["revision"] == 1  # supersedes the provisional record
    final_body = final["binary_classification_metrics"]
    with_late = (sum(s if s >= 0.5 else 1 - s for s in scores) + 0.95) / 6
    assert final_body["estimated_accuracy"]["value"] == pytest.approx(with_late)
    assert final_body["accuracy"]["value"] == pytest.approx(4 / 5)
    assert final["estimate_error"]["accuracy"] == pytest.approx(4 / 5 - with_late)
    first = [v for v in h.records(h.settings.violations_topic) if v["window"]["start"] == format_time(T0)]
    assert [v.get("estimated", False) for v in first] == [True, False]  # the estimate's, then the labels'
    assert first[0]["violation_id"] != first[1]["violation_id"]
    assert not math.isnan(final_body["estimated_auc"]["value"])


def test_sagemaker_reports_of_an_estimated_window_keep_sagemakers_shape() -> None:
    """The S3 sink's statistics.json of a window with estimates holds SageMaker's metrics only."""
    from connectors.s3 import sagemaker_reports
    from stream.core.metrics import BINARY_SCALARS

    h = run(np.random.default_rng(5), [0.0, 0.5], [False, False], per_window=250)
    final = h.metrics()[0]
    assert "estimated_accuracy" in final["binary_classification_metrics"]
    body = sagemaker_reports(final)["statistics.json"]["binary_classification_metrics"]
    curves = {"confusion_matrix", "receiver_operating_characteristic_curve", "precision_recall_curve"}
    assert set(body) == set(BINARY_SCALARS) | curves
    assert all(set(body[name]) == {"value", "standard_deviation"} for name in BINARY_SCALARS)


def test_replays_table_and_charts_show_the_estimate_beside_the_realized_metric(tmp_path) -> None:
    """Replay's table has `estimated_<metric>` with its bounds; both charts draw the estimate and its
    band next to the realized metric and its band. (TRUTHSTREAM_ESTIMATE_FIGURE=path.png saves the
    chart: the README's figure, 18 windows of covariate shift then 6 of concept drift.)"""
    import os

    from connectors.charts import matplotlib_figure, plotly_figure
    from connectors.replay_tables import rejudge, violations_frame, windows_frame

    rng = np.random.default_rng(9)
    h = run(rng, np.linspace(-1, 1.2, 18).tolist() + [1.2] * 6, [False] * 18 + [True] * 6, per_window=300)
    windows = windows_frame(h.metrics())
    for column in ("estimated_accuracy", "estimated_accuracy_lower", "estimated_accuracy_upper", "accuracy"):
        assert windows[column].notna().all(), column
    assert (windows["estimated_accuracy_lower"] <= windows["estimated_accuracy"]).all()
    constraints = parse_constraints(
        {
            "binary_classification_constraints": {
                "accuracy": {"threshold": 0.7, "comparison_operator": "LessThanThreshold"}
            }
        },
        "c.json",
    )
    catalog = Catalog(default=constraints)
    violations = violations_frame({"c": rejudge(h.metrics(), catalog, min_samples=1)})
    assert len(violations) == 6  # the concept drift's windows, by their realized accuracy only
    figure = matplotlib_figure(windows, violations, catalog)
    [ax] = figure.axes
    labels = [line.get_label() for line in ax.lines]
    assert labels[0] == "accuracy" and "estimated from the scores (no labels)" in labels
    assert {c.get_label() for c in ax.collections} >= {"confidence interval", "estimate's interval"}
    names = [trace.name for trace in plotly_figure(windows, violations, catalog).data]
    assert sum("estimate" in n for n in names) == 2 and sum("violations" in n for n in names) == 1
    if os.environ.get("TRUTHSTREAM_ESTIMATE_FIGURE"):
        ax.set_title(
            "accuracy: realized (blue) and estimated before labels (green); concept drift from 16:18", loc="left"
        )
        figure.savefig(os.environ["TRUTHSTREAM_ESTIMATE_FIGURE"], dpi=110)


def test_check_computes_the_workers_estimate_on_a_data_set(tmp_path, capsys) -> None:
    """`check --calibration` on a file gives the estimate the worker gives a window of the same rows,
    and its error against the labels."""
    import json

    import pandas as pd

    from connectors.cli import main

    rng = np.random.default_rng(21)
    calibration = calibration_from(rng, 20_000)
    (tmp_path / "calibration.json").write_text(json.dumps(calibration.to_doc()))
    x = rng.normal(0.7, 1.0, 900)
    s, y = np.round(model_score(x), 6), (rng.random(900) < truth(x)).astype(int)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(900)], "label": y, "score": s})
    frame["prediction"] = (frame["score"] >= 0.5).astype(int)
    frame.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "c.json").write_text(json.dumps({"binary_classification_constraints": {}}))
    args = ["check", str(tmp_path / "data.csv"), "--inference-attribute", "prediction", "--probability-attribute"]
    args += ["score", "--ground-truth-attribute", "label", "--event-id-attribute", "id", "--constraints"]
    args += [str(tmp_path / "c.json"), "--output-dir", str(tmp_path / "out"), "--calibration"]
    assert main([*args, str(tmp_path / "calibration.json")]) == 0
    assert "estimated accuracy" in capsys.readouterr().out
    found = json.loads((tmp_path / "out" / "estimates.json").read_text())

    settings = base_settings(window_seconds=3600.0, label_ttl=86400.0)
    h = Harness("memory", settings, Catalog(default_calibration=calibration))
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = [
        inf.msg(inference(r.id, T0 + i, int(r.prediction), float(r.score))) for i, r in enumerate(frame.itertuples())
    ]
    msgs += [lab.msg(label(r.id, int(r.label))) for r in frame.itertuples()]
    h.feed([*msgs, inf.msg(inference("tick", T0 + 9000, 0, 0.1))])
    [window] = h.metrics()
    assert window["sample_count"] == len(frame)
    body = window["binary_classification_metrics"]
    for name, entry in found["estimated_metrics"].items():
        assert entry["value"] == pytest.approx(body[name]["value"], abs=1e-9), name
        assert entry["confidence_interval"] == pytest.approx(body[name]["confidence_interval"], abs=1e-9), name
    assert found["estimate_error"] == pytest.approx(window["estimate_error"], abs=1e-9)


# -- multiclass ----------------------------------------------------------------------------------
CLASSES = ("a", "b", "c")
W = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])  # the world's logits: P(y | x) = softmax(W x)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def multiclass_rows(rng: np.random.Generator, n: int, centre: tuple[float, float], drifted: bool = False):
    """Inputs around `centre`, the model's over-confident probabilities, and labels from the world
    (whose P(y | x) rotates under concept drift)."""
    x = rng.normal(centre, 1.0, (n, 2))
    truth_p = softmax(x @ (W[[1, 2, 0]] if drifted else W).T)
    model_p = np.round(softmax(1.8 * x @ W.T), 4)
    y = np.array([rng.choice(3, p=p) for p in truth_p])
    return model_p, y


def multiclass_calibration(rng: np.random.Generator) -> dict:
    """What `baseline --probabilities-attribute` fits on 60,000 reference rows."""
    p, y = multiclass_rows(rng, 60_000, (0.0, 0.0))
    base = Baseline("MulticlassClassification")
    truth = [CLASSES[i] for i in y]
    predicted = [CLASSES[i] for i in p.argmax(axis=1)]
    rows = [dict(zip(CLASSES, r.tolist())) for r in p]
    base.add(truth, predicted, None, [str(i) for i in range(len(y))], rows)
    return base.calibration_doc()


def test_multiclass_estimates_track_the_realized_metrics_under_covariate_shift() -> None:
    """Three classes, the inputs moving across the plane while P(y | x) stays: the estimated accuracy
    and weighted F1 hold the realized ones within their 95 % intervals in at least 90 % of 40 windows
    of 400 inferences; when P(y | x) rotates, the estimate stays and the realized accuracy falls."""
    rng = np.random.default_rng(31)
    doc = multiclass_calibration(rng)
    assert doc["problem_type"] == "MulticlassClassification" and set(doc["classes"]) == set(CLASSES)
    catalog = Catalog(default_problem_type="MulticlassClassification", default_calibration=parse_calibration(doc, "c"))
    h = Harness("memory", base_settings(window_seconds=WINDOW, label_grace=WINDOW, label_ttl=86400.0), catalog)
    inf, lab = Topic("inferences"), Topic("labels")
    centres = [(np.cos(a) * 1.2, np.sin(a) * 1.2) for a in np.linspace(0, 2 * np.pi, 40)]
    previous: list = []
    for w, centre in enumerate([*centres, *centres[:8]]):
        p, y = multiclass_rows(rng, 400, centre, drifted=w >= len(centres))
        times = T0 + w * WINDOW + np.sort(rng.uniform(0, WINDOW, len(y)))
        ids = [f"w{w}-{i}" for i in range(len(y))]
        docs = [
            inference(e, float(t), CLASSES[int(row.argmax())], probabilities=dict(zip(CLASSES, row.tolist())))
            for e, t, row in zip(ids, times, p)
        ]
        h.feed([inf.msg(d) for d in docs])
        h.feed(previous)
        previous = [lab.msg(label(e, CLASSES[yi])) for e, yi in zip(ids, y)]
    end = T0 + (len(centres) + 8) * WINDOW
    h.feed([inf.msg(inference("tick", end + 1, "a"))])
    h.feed(previous)
    h.feed([inf.msg(inference("tock", end + 1000, "a"))])
    finals = sorted(h.metrics(), key=lambda r: r["window"]["start"])
    provisional = {r["window"]["start"]: r for r in h.metrics("provisional")}
    assert len(finals) == len(centres) + 8
    body = [provisional[r["window"]["start"]]["multiclass_classification_metrics"] for r in finals]
    for name in ("accuracy", "weighted_f1"):
        inside = [
            b[f"estimated_{name}"]["confidence_interval"][0]
            <= r["multiclass_classification_metrics"][name]["value"]
            <= b[f"estimated_{name}"]["confidence_interval"][1]
            for b, r in zip(body[: len(centres)], finals)
        ]
        assert np.mean(inside) >= 0.9, (name, np.mean(inside))
    errors = np.array([r["estimate_error"]["accuracy"] for r in finals])
    assert np.abs(errors[: len(centres)]).mean() < 0.03
    assert errors[len(centres) :].max() < -0.2  # concept drift: the estimate is blind, the error shows it
    matrix = finals[0]["estimated_confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == pytest.approx(finals[0]["labels"]["inferences"])
