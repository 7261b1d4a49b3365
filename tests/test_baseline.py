"""`truthstream baseline` on real data sets shipped with scikit-learn, checked against scikit-learn."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression

from connectors.cli import main
from stream.constraint_files import load_constraints
from stream.core.baseline import ERROR_METRICS
from stream.core.catalog import Catalog
from stream.core.constraints import parse_constraints
from stream.core.metrics import BINARY_SCALARS, MULTICLASS_SCALARS, REGRESSION_SCALARS
from stream.settings import Settings
from tests.factories import T0, Topic, inference, label
from tests.harness import Harness

RES = 1e-4


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Breast-cancer data scored by a logistic regression trained on its first half."""
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x[::2], y[::2])
    p = model.predict_proba(x)[:, 1]
    return pd.DataFrame({"label": y, "prediction": (p >= 0.5).astype(int), "probability": p})


def run(tmp_path: Path, data: Path, *extra: str) -> tuple[int, dict, dict]:
    out = tmp_path / "out"
    code = main(["baseline", str(data), "--output-dir", str(out), *extra])
    if code != 0:
        return code, {}, {}
    return code, json.loads((out / "statistics.json").read_text()), json.loads((out / "constraints.json").read_text())


BINARY_ARGS = (
    "--problem-type",
    "BinaryClassification",
    "--inference-attribute",
    "prediction",
    "--probability-attribute",
    "probability",
    "--ground-truth-attribute",
    "label",
)


def test_binary_statistics_match_sklearn_key_by_key(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """Every binary statistic equals scikit-learn's to 1e-9, in SageMaker's shape, with standard deviations."""
    data = tmp_path / "cancer.csv"
    cancer.to_csv(data, index=False)
    code, stats, _ = run(tmp_path, data, *BINARY_ARGS)
    assert code == 0
    assert stats["version"] == 0.0 and stats["dataset"]["item_count"] == len(cancer)
    body = stats["binary_classification_metrics"]
    assert set(body) == set(BINARY_SCALARS) | {
        "confusion_matrix",
        "receiver_operating_characteristic_curve",
        "precision_recall_curve",
    }
    for name in BINARY_SCALARS:
        assert set(body[name]) == {"value", "standard_deviation"}
        assert isinstance(body[name]["standard_deviation"], float), name  # 569 rows >= 200
    y, p = cancer["label"].to_numpy(), cancer["prediction"].to_numpy()
    ones = np.ones_like(y)
    binned = np.round(cancer["probability"].to_numpy() / RES) * RES
    expected = {
        "recall": skm.recall_score(y, p),
        "precision": skm.precision_score(y, p),
        "accuracy": skm.accuracy_score(y, p),
        "f0_5": skm.fbeta_score(y, p, beta=0.5),
        "f1": skm.f1_score(y, p),
        "f2": skm.fbeta_score(y, p, beta=2),
        "auc": skm.roc_auc_score(y, binned),
        "accuracy_best_constant_classifier": skm.accuracy_score(y, ones),
        "f1_best_constant_classifier": skm.f1_score(y, ones),
    }
    for name, value in expected.items():
        assert body[name]["value"] == pytest.approx(value, abs=1e-9), name
    assert abs(body["auc"]["value"] - skm.roc_auc_score(y, cancer["probability"])) < 1e-3
    tn, fp, fn, tp = skm.confusion_matrix(y, p).ravel()
    assert body["confusion_matrix"] == {"0": {"0": int(tn), "1": int(fp)}, "1": {"0": int(fn), "1": int(tp)}}
    fpr, tpr, _ = skm.roc_curve(y, binned, drop_intermediate=False)
    roc = body["receiver_operating_characteristic_curve"]
    if len(fpr) <= 1001:
        np.testing.assert_allclose(roc["false_positive_rates"], fpr, atol=1e-12)
        np.testing.assert_allclose(roc["true_positive_rates"], tpr, atol=1e-12)


def test_standard_deviation_is_reproducible_and_needs_200_rows(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """Same ids, same deviations whatever the chunk size; other ids differ; under 200 rows it is "NaN"."""
    data = tmp_path / "cancer.csv"
    cancer.assign(id=[f"x{i}" for i in range(len(cancer))]).to_csv(data, index=False)
    _, a, _ = run(tmp_path / "a", data, *BINARY_ARGS)
    _, b, _ = run(tmp_path / "b", data, *BINARY_ARGS, "--chunk-rows", "37")
    _, c, _ = run(tmp_path / "c", data, *BINARY_ARGS, "--event-id-attribute", "id")
    std = {k: v["standard_deviation"] for k, v in a["binary_classification_metrics"].items() if "value" in v}
    assert std == {k: v["standard_deviation"] for k, v in b["binary_classification_metrics"].items() if "value" in v}
    assert std != {k: v["standard_deviation"] for k, v in c["binary_classification_metrics"].items() if "value" in v}
    small = tmp_path / "small.csv"
    cancer.head(150).to_csv(small, index=False)
    _, s, _ = run(tmp_path / "s", small, *BINARY_ARGS)
    assert all(v["standard_deviation"] == "NaN" for v in s["binary_classification_metrics"].values() if "value" in v)


def _in_subsample(event_id: str, k: int) -> bool:
    """The documented rule, written out independently: bytes 2k and 2k+1 of BLAKE2b-80 of the id,
    big-endian, below 0.8 * 65536."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=10).digest()
    return int.from_bytes(digest[2 * k : 2 * k + 2], "big") < 52428


def test_standard_deviations_equal_a_resampling_oracle(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """Each deviation is scikit-learn's metric on the 5 documented subsamples, sample standard deviation."""
    data = tmp_path / "cancer.csv"
    cancer.to_csv(data, index=False)
    _, stats, _ = run(tmp_path, data, *BINARY_ARGS)
    body = stats["binary_classification_metrics"]
    y, p, score = cancer["label"].to_numpy(), cancer["prediction"].to_numpy(), cancer["probability"].to_numpy()
    rows = [np.array([_in_subsample(str(i), k) for i in range(len(cancer))]) for k in range(5)]
    for name, metric in (
        ("recall", lambda t, q, s: skm.recall_score(t, q)),
        ("precision", lambda t, q, s: skm.precision_score(t, q)),
        ("accuracy", lambda t, q, s: skm.accuracy_score(t, q)),
        ("f1", lambda t, q, s: skm.f1_score(t, q)),
        ("auc", lambda t, q, s: skm.roc_auc_score(t, np.round(s / 0.01) * 0.01)),  # subsamples bin at 0.01
    ):
        values = [metric(y[keep], p[keep], score[keep]) for keep in rows]
        assert body[name]["standard_deviation"] == pytest.approx(float(np.std(values, ddof=1)), abs=1e-12), name


def test_subsample_membership_is_a_fair_independent_coin() -> None:
    """By simulation over 200,000 ids: each subsample holds 80 % of them and two subsamples 64 %."""
    from stream.core.aggregate import subsample_mask

    masks = np.array([subsample_mask(f"id-{i}") for i in range(200_000)])
    bits = np.array([(masks >> k) & 1 for k in range(5)], dtype=float)
    assert np.all(np.abs(bits.mean(axis=1) - 0.8) < 0.005)  # ~5.6 standard errors
    for a in range(5):
        for b in range(a + 1, 5):
            assert abs((bits[a] * bits[b]).mean() - 0.64) < 0.006
    assert all(_in_subsample(f"id-{i}", k) == bool(masks[i] >> k & 1) for i in range(1000) for k in range(5))


def test_every_format_gives_the_same_statistics(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """CSV with and without header (column indexes), JSON Lines and Parquet give identical statistics."""
    cancer.to_csv(tmp_path / "h.csv", index=False)
    cancer.to_csv(tmp_path / "n.csv", index=False, header=False)
    cancer.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    cancer.to_parquet(tmp_path / "d.parquet", index=False)
    results = [
        run(tmp_path / "1", tmp_path / "h.csv", *BINARY_ARGS)[1],
        run(
            tmp_path / "2",
            tmp_path / "n.csv",
            "--no-header",
            "--problem-type",
            "BinaryClassification",
            "--inference-attribute",
            "1",
            "--probability-attribute",
            "2",
            "--ground-truth-attribute",
            "0",
        )[1],
        run(tmp_path / "3", tmp_path / "d.jsonl", *BINARY_ARGS)[1],
        run(tmp_path / "4", tmp_path / "d.parquet", *BINARY_ARGS)[1],
    ]
    bodies = [json.dumps(r["binary_classification_metrics"], sort_keys=True) for r in results]
    assert len(set(bodies)) == 1


def test_prediction_from_probability_uses_greater_or_equal(tmp_path: Path) -> None:
    """Without an inference attribute, probability >= threshold is the positive class."""
    data = tmp_path / "t.csv"
    pd.DataFrame({"y": [1, 0, 1, 0], "p": [0.7, 0.7, 0.2, 0.1]}).to_csv(data, index=False)
    _, stats, _ = run(
        tmp_path,
        data,
        "--problem-type",
        "BinaryClassification",
        "--probability-attribute",
        "p",
        "--probability-threshold-attribute",
        "0.7",
        "--ground-truth-attribute",
        "y",
    )
    assert stats["binary_classification_metrics"]["confusion_matrix"] == {"1": {"1": 1, "0": 1}, "0": {"1": 1, "0": 1}}


def test_multiclass_wine_matches_sklearn(tmp_path: Path) -> None:
    """Weighted multiclass statistics on the wine data set equal scikit-learn's."""
    x, y = load_wine(return_X_y=True)
    pred = LogisticRegression(max_iter=10000).fit(x[::3], y[::3]).predict(x)
    data = tmp_path / "wine.parquet"
    pd.DataFrame({"label": y, "prediction": pred}).to_parquet(data)
    _, stats, constraints = run(
        tmp_path,
        data,
        "--problem-type",
        "MulticlassClassification",
        "--inference-attribute",
        "prediction",
        "--ground-truth-attribute",
        "label",
    )
    body = stats["multiclass_classification_metrics"]
    assert set(body) == set(MULTICLASS_SCALARS) | {"confusion_matrix"}
    kw = {"average": "weighted", "zero_division": 0}
    for name, value in {
        "accuracy": skm.accuracy_score(y, pred),
        "weighted_f1": skm.f1_score(y, pred, **kw),
        "weighted_recall": skm.recall_score(y, pred, **kw),
        "weighted_precision": skm.precision_score(y, pred, **kw),
        "weighted_f2": skm.fbeta_score(y, pred, beta=2, **kw),
    }.items():
        assert body[name]["value"] == pytest.approx(value, abs=1e-9), name
    assert "multiclass_classification_constraints" in constraints


def test_regression_diabetes_matches_sklearn_and_constraints_point_the_right_way(tmp_path: Path) -> None:
    """MAE/MSE/RMSE/R² equal scikit-learn's; error metrics alert when they rise, R² when it falls."""
    x, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(x[::2], y[::2]).predict(x)
    data = tmp_path / "diabetes.jsonl"
    pd.DataFrame({"target": y, "score": pred}).to_json(data, orient="records", lines=True)
    _, stats, constraints = run(
        tmp_path,
        data,
        "--problem-type",
        "Regression",
        "--inference-attribute",
        "score",
        "--ground-truth-attribute",
        "target",
    )
    body = stats["regression_metrics"]
    assert set(body) == set(REGRESSION_SCALARS)
    expected = {
        "mae": skm.mean_absolute_error(y, pred),
        "mse": skm.mean_squared_error(y, pred),
        "rmse": math.sqrt(skm.mean_squared_error(y, pred)),
        "r2": skm.r2_score(y, pred),
    }
    for name, value in expected.items():
        assert body[name]["value"] == pytest.approx(value, rel=1e-9), name
    section = constraints["regression_constraints"]
    for name, c in section.items():
        std = body[name]["standard_deviation"]
        if name in ERROR_METRICS:
            assert c["comparison_operator"] == "GreaterThanThreshold"
            assert c["threshold"] == pytest.approx(body[name]["value"] + 3 * std)
        else:
            assert c["comparison_operator"] == "LessThanThreshold"
            assert c["threshold"] == pytest.approx(body[name]["value"] - 3 * std)


def test_suggested_constraints_load_and_explain_themselves(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """The suggestion loads as a constraints file, skips the constant classifier and says how it was derived."""
    data = tmp_path / "cancer.csv"
    cancer.to_csv(data, index=False)
    _, stats, constraints = run(tmp_path, data, *BINARY_ARGS, "--margin-stds", "2")
    loaded = load_constraints(tmp_path / "out" / "constraints.json")
    names = {c.metric_name for c in loaded.constraints}
    assert "recall" in names and "auc" in names and not any("constant" in n for n in names)
    body = stats["binary_classification_metrics"]
    fpr = constraints["binary_classification_constraints"]["false_positive_rate"]
    assert fpr["comparison_operator"] == "GreaterThanThreshold"
    assert fpr["threshold"] == pytest.approx(
        body["false_positive_rate"]["value"] + 2 * body["false_positive_rate"]["standard_deviation"]
    )
    explained = constraints["truthstream_suggestion"]["metrics"]["recall"]
    assert explained["rule"] == "2 standard deviations" and explained["baseline_value"] == body["recall"]["value"]
    # The baseline's own data never violates its suggested constraints.
    assert loaded.check({k: v["value"] for k, v in body.items() if isinstance(v, dict) and "value" in v}) == []


def test_sagemaker_statistics_file_is_accepted(tmp_path: Path) -> None:
    """A statistics.json as SageMaker writes it ("NaN" deviations included) yields suggested constraints."""
    sagemaker = {
        "version": 0.0,
        "dataset": {"item_count": 150, "evaluation_time": "2022-02-14T18:00:00.000Z"},
        "binary_classification_metrics": {
            "confusion_matrix": {"0": {"0": 100, "1": 10}, "1": {"0": 5, "1": 35}},
            "recall": {"value": 0.875, "standard_deviation": "NaN"},
            "precision": {"value": 0.7777777777777778, "standard_deviation": 0.012},
            "false_positive_rate": {"value": 0.09, "standard_deviation": "NaN"},
            "auc": {"value": 0.93, "standard_deviation": "NaN"},
        },
    }
    source = tmp_path / "statistics.json"
    source.write_text(json.dumps(sagemaker))
    assert main(["baseline", "--from-statistics", str(source), "--output-dir", str(tmp_path / "o")]) == 0
    section = json.loads((tmp_path / "o" / "constraints.json").read_text())["binary_classification_constraints"]
    assert section["recall"] == {"threshold": pytest.approx(0.875 - 0.0875), "comparison_operator": "LessThanThreshold"}
    assert section["precision"]["threshold"] == pytest.approx(0.7777777777777778 - 3 * 0.012)
    assert section["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"
    assert not (tmp_path / "o" / "statistics.json").exists()


def test_baseline_equals_the_workers_window_on_the_same_data(cancer: pd.DataFrame, tmp_path: Path) -> None:
    """One metric implementation: the worker's record for a window holding the data set equals the
    baseline, standard deviations included (the same event ids put rows in the same subsamples)."""
    data = tmp_path / "cancer.csv"
    cancer.assign(id=[f"e{i}" for i in range(len(cancer))]).to_csv(data, index=False)
    _, stats, _ = run(tmp_path, data, *BINARY_ARGS, "--event-id-attribute", "id")
    h = Harness("memory", Settings(window_seconds=3600.0, label_grace=0.0, min_samples=1, rolling_size=0), Catalog())
    inf, lab = Topic("inferences"), Topic("labels")
    msgs = []
    for i, row in cancer.iterrows():
        msgs += [
            inf.msg(inference(f"e{i}", T0 + i, int(row["prediction"]), float(row["probability"]))),
            lab.msg(label(f"e{i}", int(row["label"]))),
        ]
    h.feed([*msgs, inf.msg(inference("end", T0 + 7200, 0))])
    [record] = h.metrics()
    worker = record["binary_classification_metrics"]
    baseline = stats["binary_classification_metrics"]
    assert record["sample_count"] == stats["dataset"]["item_count"]
    assert worker["confusion_matrix"] == baseline["confusion_matrix"]
    for name in BINARY_SCALARS:
        assert worker[name]["value"] == baseline[name]["value"], name
        assert worker[name]["standard_deviation"] == baseline[name]["standard_deviation"], name
        assert isinstance(worker[name]["standard_deviation"], float), name

    # SageMaker's suggestion puts each threshold at the baseline's value; recomputed in another
    # order, a value may differ in its last bits. Neither raises a violation on the same data.
    for ulps in (0, 3, -3):
        doc = {
            "binary_classification_constraints": {
                name: {
                    "threshold": _ulps(baseline[name]["value"], ulps),
                    "comparison_operator": "GreaterThanThreshold" if name.startswith("false_") else "LessThanThreshold",
                }
                for name in BINARY_SCALARS
                if not name.endswith("_best_constant_classifier")
            }
        }
        judged = Harness(
            "memory",
            Settings(window_seconds=3600.0, label_grace=0.0, min_samples=1, rolling_size=0),
            Catalog(default=parse_constraints(doc, "suggested.json")),
        )
        judged.feed([*msgs, inf.msg(inference("end", T0 + 7200, 0))])
        assert judged.records("violations") == [], ulps


def _ulps(value: float, n: int) -> float:
    """`value` moved by `n` units in the last place."""
    for _ in range(abs(n)):
        value = math.nextafter(value, math.inf if n > 0 else -math.inf)
    return value


BAD_CASES = [
    (
        "missing column",
        {"label": [1, 0], "prediction": [1, 0], "probability": [0.9, 0.1]},
        ("--ground-truth-attribute", "truth"),
        "no column 'truth'",
    ),
    ("empty file", None, (), "empty"),
    (
        "non-numeric probability",
        {"label": [1, 0, 1], "prediction": [1, 0, 1], "probability": [0.9, "high", 0.2]},
        (),
        "column 'probability', row 2 (line 3): not a number: 'high'",
    ),
    (
        "probability above 1",
        {"label": [1, 0], "prediction": [1, 0], "probability": [0.9, 1.5]},
        (),
        "row 2 (line 3): probability outside [0, 1]",
    ),
    (
        "missing label",
        {"label": [1, None, 0], "prediction": [1, 0, 1], "probability": [0.9, 0.1, 0.2]},
        (),
        "column 'label', row 2 (line 3): missing value",
    ),
    (
        "three classes for binary",
        {"label": [1, 0, 2], "prediction": [1, 0, 1], "probability": [0.9, 0.1, 0.2]},
        (),
        "column 'label', row 3 (line 4): binary classes are 0 and 1",
    ),
    (
        "two bad rows: the earlier one is named",
        {"label": [1, 0, 1, None], "prediction": [1, 7, 1, 0], "probability": [0.9, 0.1, 0.2, 0.3]},
        (),
        "column 'prediction', row 2 (line 3): binary classes are 0 and 1",
    ),
]


@pytest.mark.parametrize("case,columns,extra,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_column_and_row_and_writes_nothing(
    tmp_path: Path, capsys, case, columns, extra, message
) -> None:
    """Each bad input exits non-zero with the file, column and first offending row, and leaves no output."""
    data = tmp_path / "bad.csv"
    if columns is None:
        data.write_text("")
    else:
        pd.DataFrame(columns).to_csv(data, index=False)
    args = list(BINARY_ARGS)
    if extra:
        args[args.index(extra[0]) + 1] = extra[1]
    code = main(["baseline", str(data), "--output-dir", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert str(data) in err and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_check_judges_a_data_set_as_sagemakers_monitoring_run(cancer: pd.DataFrame, tmp_path: Path, capsys) -> None:
    """`check` on the baseline's own data: nothing against thresholds at its values (SageMaker's
    suggestion) or against truthstream's suggestion; one edited threshold gives exactly that violation."""
    data = tmp_path / "cancer.csv"
    cancer.to_csv(data, index=False)
    _, stats, suggested = run(tmp_path, data, *BINARY_ARGS)
    body = stats["binary_classification_metrics"]
    at_values = {
        name: {
            "threshold": body[name]["value"],
            "comparison_operator": "GreaterThanThreshold" if name.startswith("false_") else "LessThanThreshold",
        }
        for name in BINARY_SCALARS
        if not name.endswith("_best_constant_classifier")
    }
    check_args = [a for a in BINARY_ARGS if a not in ("--problem-type", "BinaryClassification")]
    for name, doc in (
        ("sagemaker.json", {"binary_classification_constraints": at_values}),
        ("suggested.json", suggested),
    ):
        (tmp_path / name).write_text(json.dumps(doc))
        out = tmp_path / f"check-{name}"
        code = main(["check", str(data), *check_args, "--constraints", str(tmp_path / name), "--output-dir", str(out)])
        assert code == 0, capsys.readouterr()
        assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}
        assert (
            json.loads((out / "statistics.json").read_text())["binary_classification_metrics"]["recall"]
            == (body["recall"])
        )
    assert "Completed: 569 rows, no violation" in capsys.readouterr().out

    edited = dict(at_values, true_positive_rate={"threshold": 0.999, "comparison_operator": "LessThanThreshold"})
    (tmp_path / "edited.json").write_text(json.dumps({"binary_classification_constraints": edited}))
    out = tmp_path / "check-edited"
    code = main(
        ["check", str(data), *check_args, "--constraints", str(tmp_path / "edited.json"), "--output-dir", str(out)]
    )
    assert code == 1
    tpr = body["true_positive_rate"]
    assert json.loads((out / "constraint_violations.json").read_text()) == {
        "violations": [
            {
                "metric_name": "truePositiveRate",
                "constraint_check_type": "LessThanThreshold",
                "description": f"Metric truePositiveRate with {tpr['value']!r} +/- {tpr['standard_deviation']!r} "
                "was LessThanThreshold '0.999'",
            }
        ]
    }
    assert f"CompletedWithViolations: 569 rows, 1 of {len(edited)} constraints broken" in capsys.readouterr().out

    code = main(
        ["check", str(data), "--problem-type", "Regression", *check_args,
         "--constraints", str(tmp_path / "edited.json"), "--output-dir", str(tmp_path / "never")]
    )  # fmt: skip
    assert code == 2 and "holds BinaryClassification constraints" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_a_binary_baseline_with_scores_fits_the_calibration_the_worker_reads(
    cancer: pd.DataFrame, tmp_path: Path, capsys
) -> None:
    """calibration.json is scikit-learn's isotonic regression of the labels on the (binned) scores of the
    data set, and TRUTHSTREAM_CALIBRATION gives it to the catalog; without scores, no calibration."""
    from sklearn.isotonic import IsotonicRegression

    data = tmp_path / "cancer.csv"
    cancer.to_csv(data, index=False)
    assert run(tmp_path, data, *BINARY_ARGS)[0] == 0
    assert "calibration: Brier score" in capsys.readouterr().out
    path = tmp_path / "out" / "calibration.json"
    doc = json.loads(path.read_text())
    assert doc["samples"] == len(cancer) and doc["brier_score"]["calibrated"] <= doc["brier_score"]["raw"]
    catalog = Settings(calibration=str(path)).catalog()
    binned = np.round(cancer["probability"].to_numpy() / RES) * RES
    oracle = IsotonicRegression(out_of_bounds="clip").fit(binned, cancer["label"].to_numpy())
    grid = np.linspace(0, 1, 501)
    found = [catalog.calibration("any-model").probability(v) for v in grid]
    np.testing.assert_allclose(found, oracle.predict(grid), atol=1e-9)
    no_scores = [a for a in BINARY_ARGS if a not in ("--probability-attribute", "probability")]
    assert run(tmp_path / "plain", data, *no_scores)[0] == 0
    assert not (tmp_path / "plain" / "out" / "calibration.json").exists()


def test_a_multiclass_baseline_with_class_probabilities_fits_one_vs_rest_calibrations(tmp_path: Path) -> None:
    """`--probabilities-attribute` (a column of JSON objects, as text in a CSV): calibration.json holds
    each class's isotonic map, scikit-learn's IsotonicRegression of "is this class" on that class's
    (binned) probability; `check --calibration` then writes estimates.json for the same file."""
    from sklearn.isotonic import IsotonicRegression

    x, y = load_wine(return_X_y=True)
    model = LogisticRegression(max_iter=10000).fit(x[::3], y[::3])
    p = model.predict_proba(x)
    names = ["barolo", "grignolino", "barbera"]
    frame = pd.DataFrame(
        {
            "label": [names[i] for i in y],
            "prediction": [names[i] for i in p.argmax(axis=1)],
            "probabilities": [json.dumps(dict(zip(names, row.round(6).tolist()))) for row in p],
        }
    )
    data = tmp_path / "wine.csv"
    frame.to_csv(data, index=False)
    args = ["--problem-type", "MulticlassClassification", "--inference-attribute", "prediction"]
    args += ["--ground-truth-attribute", "label", "--probabilities-attribute", "probabilities"]
    assert run(tmp_path, data, *args)[0] == 0
    doc = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert doc["problem_type"] == "MulticlassClassification" and set(doc["classes"]) == set(names)
    calibration = Settings(calibration=str(tmp_path / "out" / "calibration.json")).catalog().calibration("m")
    grid = np.linspace(0, 1, 201)
    for i, name in enumerate(names):
        binned = np.round(p[:, i].round(6) / RES) * RES
        oracle = IsotonicRegression(out_of_bounds="clip").fit(binned, (y == i).astype(float))
        found = [calibration.classes[name].probability(v) for v in grid]
        np.testing.assert_allclose(found, oracle.predict(grid), atol=1e-9, err_msg=name)
    (tmp_path / "c.json").write_text(json.dumps({"multiclass_classification_constraints": {}}))
    check = ["check", str(data), *args[2:], "--constraints", str(tmp_path / "c.json"), "--output-dir"]
    code = main([*check, str(tmp_path / "check"), "--calibration", str(tmp_path / "out" / "calibration.json")])
    assert code == 0
    estimates = json.loads((tmp_path / "check" / "estimates.json").read_text())
    assert set(estimates["estimated_metrics"]) >= {"estimated_accuracy", "estimated_weighted_f1"}
    assert abs(estimates["estimate_error"]["accuracy"]) < 0.05  # calibrated on these very rows


def test_a_bad_class_probability_names_its_row_and_writes_nothing(tmp_path: Path, capsys) -> None:
    frame = pd.DataFrame(
        {
            "label": ["a", "b", "a"],
            "prediction": ["a", "b", "b"],
            "probabilities": ['{"a": 0.9, "b": 0.1}', "not json", '{"a": 1.5, "b": 0.1}'],
        }
    )
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    args = ["--problem-type", "MulticlassClassification", "--inference-attribute", "prediction"]
    args += ["--ground-truth-attribute", "label", "--probabilities-attribute", "probabilities"]
    assert main(["baseline", str(data), "--output-dir", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert "column 'probabilities', row 2 (line 3): not a JSON object" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
