"""The data-quality core against files SageMaker's analyzer wrote from known inputs
(tests/data/sagemaker-data-quality, provenance in its SOURCES.md), and its statistical parts
against known truths: the exact two-sample KS statistic (scipy), population moments (numpy)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import ks_2samp

from stream.core.dataquality.checks import (
    COMPLETENESS,
    DATA_TYPE,
    DRIFT,
    EXTRA_COLUMN,
    MISSING_COLUMN,
    VALUES,
    check,
    chi_squared,
    outcome,
)
from stream.core.dataquality.moments import Moments
from stream.core.dataquality.profile import DataProfile, column_names
from stream.core.dataquality.sketch import QuantileSketch, capacity, linf_distance, robust
from stream.core.dataquality.suggest import suggest_constraints
from stream.core.javajson import dumps

DATA = Path(__file__).parent / "data" / "sagemaker-data-quality"
SDK, BOSTON, CHURN = DATA / "sdk-pipeline-dq-100rows", DATA / "packt-boston-housing", DATA / "sm-examples-churn-intro"


def profile_of(path: Path, header: bool, names: list[str] | None = None) -> DataProfile:
    """A CSV file read as the analyzer reads it: every cell as text, in file order."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if header:
        names, rows = rows[0], rows[1:]
    profile = DataProfile(list(names or column_names(len(rows[0]))))
    for row in rows:
        profile.add_row(row)
    return profile


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    ("folder", "data", "header", "statistics", "constraints"),
    [
        (SDK, "baseline_dataset.csv", False, "statistics.json", "constraints.good_cases.json"),
        (BOSTON, "housing.csv", True, "statistics.json", "constraints.json"),
    ],
)
def test_baseline_files_equal_the_services_byte_for_byte(
    folder: Path, data: str, header: bool, statistics: str, constraints: str
) -> None:
    """Every field, every sketch item in order, in the service's formatting."""
    profile = profile_of(folder / data, header)
    assert dumps(profile.statistics()) == (folder / statistics).read_text()
    assert dumps(suggest_constraints(profile)) == (folder / constraints).read_text()


def test_churn_baseline_equals_the_services_29_features_and_its_constraints() -> None:
    """2,333 rows: two-level sketches (283 rows as they came, then the even-index half of the first
    2,050 sorted), field for field; the constraints (identical in 6 runs, 2020-2022) byte for byte."""
    profile = profile_of(CHURN / "training-dataset-with-header.csv", header=True)
    real = load(CHURN / "statistics.first29features.derived.json")
    ours = profile.statistics()
    assert ours["dataset"] == real["dataset"]
    assert ours["features"][:29] == real["features"]
    sketch = ours["features"][0]["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    assert [len(level) for level in sketch] == [283, 1025]
    assert dumps(suggest_constraints(profile)) == (CHURN / "constraints.json").read_text()


def test_the_boston_monitoring_run_gives_the_services_violations() -> None:
    """The two requests read under the baseline's names with the output column first: four
    data_type_check violations; no drift (2 rows: the robust distance is 0) and no check of
    is_non_negative (medv -4.98). The service's order is not stable: compared as a set."""
    constraints, statistics = load(BOSTON / "constraints.json"), load(BOSTON / "statistics.json")
    window = profile_of(
        BOSTON / "monitored-window.csv", header=False, names=[f["name"] for f in constraints["features"]]
    )
    found = check(window, constraints, statistics)
    real = load(BOSTON / "constraint_violations.json")["violations"]
    assert sorted(map(json.dumps, found)) == sorted(map(json.dumps, real))
    assert outcome(found) == "CompletedWithViolations: Job completed successfully with 4 violations."


def window_of(values: dict[str, list[str | None]]) -> DataProfile:
    """A window with these columns' values, row by row."""
    names = list(values)
    profile = DataProfile(names)
    for row in zip(*values.values()):
        profile.add_row(list(row))
    return profile


def baseline_of(values: dict[str, list[str | None]]) -> tuple[dict[str, Any], dict[str, Any]]:
    profile = window_of(values)
    return profile.statistics(), suggest_constraints(profile)


def test_completeness_and_type_changes_use_the_services_wording() -> None:
    """9 of 1,009 values present, and 1,912 of 1,919 Integral: the exact descriptions of the
    service's files (dsoa and churn runs)."""
    _, constraints = baseline_of({"Flow Duration": [str(i) for i in range(200)], "Calls": ["1"] * 200})
    rows = 1009
    flow = [str(i) for i in range(9)] + [None] * (rows - 9)
    window = window_of({"Flow Duration": flow, "Calls": ["2"] * rows})
    found = {(v["feature_name"], v["constraint_check_type"]): v["description"] for v in check(window, constraints)}
    dsoa = {
        v["constraint_check_type"]: v["description"]
        for v in load(DATA / "dsoa-aim362-network-traffic" / "constraint_violations.json")["violations"]
    }
    assert found["Flow Duration", COMPLETENESS] == dsoa[COMPLETENESS]
    assert found["Flow Duration", DATA_TYPE] == dsoa[DATA_TYPE].replace("Tot Fwd Pkts", "Flow Duration")
    calls = window_of({"Flow Duration": ["1"] * 1919, "Calls": ["1"] * 1912 + ["1.5"] * 7})
    described = [v["description"] for v in check(calls, constraints) if v["constraint_check_type"] == DATA_TYPE]
    assert described == [
        "Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. "
        "Observed: Only 99.6352266805628% of data is Integral."
    ]


def test_drift_is_raised_from_the_window_it_starts_and_not_before() -> None:
    """A feature whose distribution shifts from window 5 on: baseline_drift_check in windows 5-9
    and none before, with the service's wording; the distance is the sketches' KS statistic."""
    rng = random.Random(7)
    base = [rng.gauss(0, 1) for _ in range(5000)]
    statistics, constraints = baseline_of({"x": [repr(v) for v in base]})
    flagged = []
    for w in range(10):
        shift = 0.8 if w >= 5 else 0.0
        window = window_of({"x": [repr(rng.gauss(shift, 1)) for _ in range(1000)]})
        found = [v for v in check(window, constraints, statistics) if v["constraint_check_type"] == DRIFT]
        if found:
            flagged.append(w)
            assert found[0]["description"].startswith("Baseline drift distance: ")
            assert found[0]["description"].endswith(" exceeds threshold: 0.1")
    assert flagged == [5, 6, 7, 8, 9]


@pytest.mark.parametrize("seed", range(5))
def test_the_sketch_distance_agrees_with_the_exact_ks_statistic(seed: int) -> None:
    """Sketches of 20,000 and 3,000 values (several compactions) against scipy's exact two-sample
    KS statistic: within 0.01, the error documented for this sketch size."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 20_000), rng.normal(0.1 * seed, 1 + 0.1 * seed, 3_000)
    sa, sb = QuantileSketch(), QuantileSketch()
    sa.extend(a.tolist())
    sb.extend(b.tolist())
    assert len(sa.levels) > 2
    assert abs(linf_distance(sa, sb) - ks_2samp(a, b).statistic) < 0.01


def test_the_sketch_keeps_every_value_up_to_2050_and_the_weight_always() -> None:
    """Level 0 is the data in order until it is full; afterwards the total weight is exact, and
    the levels' sizes stay within their capacities (bounded state)."""
    sketch = QuantileSketch()
    values = [float(i % 997) for i in range(2050)]
    sketch.extend(values)
    assert sketch.levels == [values]
    sketch.extend([1.0] * 100_000)
    assert sketch.weight == 102_050
    # Condensing keeps the items within the levels' room (each level alone may run over its own).
    assert sum(len(level) for level in sketch.levels) <= sum(capacity(h) for h in range(len(sketch.levels)))
    assert sum(len(level) for level in sketch.levels) < 6000


def test_merged_parts_give_the_same_statistics_whatever_the_batching() -> None:
    """Parts merged in a fixed order give the same state however the rows were batched into them
    (each batch a part of its own, then merged in order), and the counts and moments of the data."""
    rng = random.Random(3)
    values = [repr(round(rng.uniform(-5, 5), 3)) for _ in range(6000)]

    def merged(batch: int) -> dict[str, Any]:
        total = DataProfile(["x"])
        for start in range(0, len(values), batch):
            part = window_of({"x": values[start : start + batch]})
            total.merge(part)
        return total.statistics()

    one, other = merged(250), merged(250)
    assert one == other
    numbers = np.array([float(v) for v in values])
    stats = one["features"][0]["numerical_statistics"]
    assert stats["common"]["num_present"] == 6000
    assert stats["mean"] == pytest.approx(numbers.mean(), rel=1e-12)
    assert stats["std_dev"] == pytest.approx(numbers.std(), rel=1e-12)
    assert sum(b["count"] for b in stats["distribution"]["kll"]["buckets"]) == 6000


def test_moments_merge_as_one_pass() -> None:
    """Chan's merge of two parts equals one pass over both, to rounding."""
    rng = random.Random(1)
    xs = [rng.uniform(0, 100) for _ in range(1000)]
    whole, left, right = Moments(), Moments(), Moments()
    for x in xs:
        whole.add(x)
    for x in xs[:400]:
        left.add(x)
    for x in xs[400:]:
        right.add(x)
    left.merge(right)
    assert left.n == whole.n and left.std_dev == pytest.approx(whole.std_dev, rel=1e-12)
    assert whole.std_dev == pytest.approx(float(np.std(xs)), rel=1e-12)


def test_robust_distance_needs_enough_rows() -> None:
    """With 2 rows against 506 the correction (1.275) exceeds any distance: 0, as in Boston's run."""
    assert robust(1.0, 506, 2) == 0.0
    assert robust(0.2, 2333, 1919) == pytest.approx(0.2 - 1.8 * ((2333 + 1919) / (2333 * 1919)) ** 0.5)


def test_missing_extra_columns_domains_and_overrides() -> None:
    """truthstream's own checks (wording documented as its own): a missing and an extra column,
    values outside a string domain; a feature's override turns its checks off."""
    statistics, constraints = baseline_of({"a": ["1"] * 50, "colour": ["red", "blue"] * 25, "b": ["2"] * 50})
    assert constraints["features"][1]["string_constraints"]["domains"] == ["blue", "red"]
    window = DataProfile(["a", "colour"])
    for _ in range(10):
        window.add_row(["1", "green", "9"])
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in check(window, constraints, statistics)}
    assert ("b", MISSING_COLUMN) in kinds and ("_c2", EXTRA_COLUMN) in kinds and ("colour", VALUES) in kinds
    assert ("colour", DRIFT) in kinds  # every value is new: the categorical distance is 1
    constraints["features"][1]["monitoring_config_overrides"] = {"evaluate_constraints": "Disabled"}
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in check(window, constraints, statistics)}
    assert not any(name == "colour" for name, _ in kinds)


def test_the_commands_write_the_services_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`baseline --data-quality` writes Boston's two files byte for byte; `check --data-quality` on
    the monitored window, given as the CSV the endpoint saw and as SageMaker capture records, writes
    the real violations and exits 1 (0 on the baseline's own rows)."""
    from connectors.cli import main

    out = tmp_path / "baseline"
    assert main(["baseline", str(BOSTON / "housing.csv"), "--data-quality", "--output-dir", str(out)]) == 0
    for name in ("statistics.json", "constraints.json"):
        assert (out / name).read_bytes() == (BOSTON / name).read_bytes()
    captures = tmp_path / "capture.jsonl"
    with (BOSTON / "monitored-window.csv").open() as f, captures.open("w") as sink:
        for i, line in enumerate(f):
            prediction, inputs = line.strip().split(",", 1)
            doc = {
                "captureData": {
                    "endpointInput": {
                        "observedContentType": "text/csv",
                        "mode": "INPUT",
                        "data": inputs,
                        "encoding": "CSV",
                    },
                    "endpointOutput": {
                        "observedContentType": "text/csv",
                        "mode": "OUTPUT",
                        "data": prediction,
                        "encoding": "CSV",
                    },
                },
                "eventMetadata": {"eventId": f"e{i}", "inferenceTime": "2021-07-07T20:00:00Z"},
                "eventVersion": "0",
            }
            sink.write(json.dumps(doc) + "\n")
    real = sorted(map(json.dumps, load(BOSTON / "constraint_violations.json")["violations"]))
    judged = [
        "--data-quality",
        "--constraints",
        str(out / "constraints.json"),
        "--statistics",
        str(out / "statistics.json"),
    ]
    for data, extra in ((BOSTON / "monitored-window.csv", ["--no-header"]), (captures, [])):
        report = tmp_path / data.stem
        assert main(["check", str(data), *extra, *judged, "--output-dir", str(report)]) == 1
        assert sorted(map(json.dumps, load(report / "constraint_violations.json")["violations"])) == real
    assert "CompletedWithViolations: Job completed successfully with 4 violations." in capsys.readouterr().out
    same = tmp_path / "same"
    assert main(["check", str(BOSTON / "housing.csv"), *judged, "--output-dir", str(same)]) == 0
    assert load(same / "constraint_violations.json") == {"violations": []}


def test_the_python_functions_give_the_same_files() -> None:
    """From pandas: the same documents as the command, and the same violations."""
    import pandas as pd

    from connectors.notebook import data_quality_baseline, data_quality_check

    result = data_quality_baseline(pd.read_csv(BOSTON / "housing.csv", dtype=str, keep_default_na=False))
    assert dumps(result.statistics) == (BOSTON / "statistics.json").read_text()
    assert dumps(result.constraints) == (BOSTON / "constraints.json").read_text()
    assert result.features.loc["chas", "inferred_type"] == "Integral"
    window = pd.read_csv(BOSTON / "monitored-window.csv", header=None, dtype=str, keep_default_na=False)
    found = data_quality_check(window, result.constraints, result.statistics)
    assert sorted(found["feature_name"]) == ["chas", "nox", "rad", "tax"]


def test_distinct_values_are_exact_up_to_the_cap_then_estimated_within_10_percent() -> None:
    """A String column's distinct_count: exact with a categorical distribution up to 120 values;
    past that a HyperLogLog estimate, also across merged parts (the values 2,000-2,999 in both)."""
    small = window_of({"s": [f"v{i % 50}" for i in range(500)]}).statistics()["features"][0]["string_statistics"]
    assert small["distinct_count"] == 50.0 and len(small["distribution"]["categorical"]["buckets"]) == 50
    left, right = (
        window_of({"s": [f"v{i}" for i in range(3000)]}),
        window_of({"s": [f"v{i}" for i in range(2000, 6000)]}),
    )
    left.merge(right)
    large = left.statistics()["features"][0]["string_statistics"]
    assert "distribution" not in large and abs(large["distinct_count"] - 6000) < 600


def test_columns_shifted_by_the_output_column_are_noticed() -> None:
    """Boston's monitored window is the baseline's columns one place off (the output first): the
    shift is 1; the baseline's own rows are not shifted."""
    from stream.core.dataquality.checks import shifted_by

    constraints = load(BOSTON / "constraints.json")
    names = [f["name"] for f in constraints["features"]]
    assert shifted_by(profile_of(BOSTON / "monitored-window.csv", header=False, names=names), constraints) == 1
    assert shifted_by(profile_of(BOSTON / "housing.csv", header=True), constraints) == 0


def test_a_window_under_min_rows_is_not_judged_for_drift() -> None:
    """8 rows of a moved distribution: drift by default (the Simple method would flag it), none
    with min_rows 30; the other checks still run."""
    rng = random.Random(2)
    statistics, constraints = baseline_of({"x": [repr(rng.gauss(0, 1)) for _ in range(2000)]})
    constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    window = window_of({"x": [repr(rng.gauss(3, 1)) for _ in range(8)] + [None] * 2})
    kinds = [v["constraint_check_type"] for v in check(window, constraints, statistics)]
    assert kinds == [DATA_TYPE, COMPLETENESS, DRIFT]  # missing values count against the type too, as in the service
    judged = check(window, constraints, statistics, min_rows=30)
    assert [v["constraint_check_type"] for v in judged] == [DATA_TYPE, COMPLETENESS]


def chi_squared_setup(threshold: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A baseline of 10,000 rows of plan a/b/c in shares 0.5/0.3/0.2, judged by ChiSquared."""
    rng = random.Random(11)
    reference = window_of({"plan": [rng.choices("abc", (0.5, 0.3, 0.2))[0] for _ in range(10_000)]})
    constraints = suggest_constraints(reference, analyzer="2023")
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    distribution.update(categorical_drift_method="ChiSquared", categorical_comparison_threshold=threshold)
    return constraints, reference.statistics()


def test_chi_squared_flags_about_its_threshold_of_windows_of_the_baseline_and_every_moved_one() -> None:
    """ChiSquared (truthstream's rule: a p-value below the threshold is drift): 400 windows of 300 rows
    drawn from the baseline's own shares are flagged at the test's size (0.05, within binomial
    bounds), and windows drawn from 0.3/0.3/0.4 always; the statistic is Pearson's, computed here
    from its definition."""
    constraints, statistics = chi_squared_setup(0.05)
    rng = random.Random(12)
    flagged = 0
    for _ in range(400):
        window = window_of({"plan": [rng.choices("abc", (0.5, 0.3, 0.2))[0] for _ in range(300)]})
        found = [
            v for v in check(window, constraints, statistics) if v["constraint_check_type"] == "baseline_drift_check"
        ]
        flagged += bool(found)
    assert 0.05 * 400 - 3 * np.sqrt(400 * 0.05 * 0.95) <= flagged <= 0.05 * 400 + 3 * np.sqrt(400 * 0.05 * 0.95)
    moved = window_of({"plan": [rng.choices("abc", (0.3, 0.3, 0.4))[0] for _ in range(300)]})
    (drift,) = [
        v for v in check(moved, constraints, statistics) if v["constraint_check_type"] == "baseline_drift_check"
    ]
    assert drift["description"].startswith("Baseline drift p-value: ")
    assert drift["description"].endswith(" is below threshold: 0.05 (ChiSquared)")
    shares = {
        b["value"]: b["count"] / 10_000
        for b in statistics["features"][0]["string_statistics"]["distribution"]["categorical"]["buckets"]
    }
    counts = moved.features["plan"].categories
    pearson = sum((counts[k] - 300 * shares[k]) ** 2 / (300 * shares[k]) for k in "abc")
    assert chi_squared(statistics["features"][0], moved.features["plan"])[0] == pytest.approx(pearson, rel=1e-12)


def test_chi_squared_merges_sparse_categories_until_the_table_is_valid() -> None:
    """Baseline shares 0.95/0.03/0.02. 200 rows expect 190/6/4: one cell in three under 5 is over
    20 %, so b and c merge (10 expected) and the test runs on 2 cells; 150 rows expect 142.5/4.5/3:
    b and c merge into 7.5, under Cochran's 10 for two cells, and nothing is left to test."""
    reference = window_of({"plan": ["a"] * 950 + ["b"] * 30 + ["c"] * 20})
    statistics = reference.statistics()["features"][0]
    window = window_of({"plan": ["a"] * 180 + ["b"] * 12 + ["c"] * 8})
    statistic, _ = chi_squared(statistics, window.features["plan"])
    assert statistic == pytest.approx((20 - 10) ** 2 / 10 + (180 - 190) ** 2 / 190, rel=1e-12)
    small = window_of({"plan": ["a"] * 140 + ["b"] * 6 + ["c"] * 4})
    assert chi_squared(statistics, small.features["plan"]) is None
    assert chi_squared(statistics, window_of({"plan": ["z"] * 10}).features["plan"]) is None


def test_the_distinct_counter_keeps_rivers_registers_with_its_faster_hash() -> None:
    """`Distinct` is river's NUnique with another hash and its bit counting done otherwise: given the
    same hash, the same registers; filled lazily past the category cap, the same registers as a
    counter fed every value."""
    from river.sketch import NUnique

    from stream.core.dataquality.profile import Distinct, FeatureProfile

    ours, rivers = Distinct(error_rate=0.05, seed=0), NUnique(error_rate=0.05, seed=0)
    rivers._hash = ours._hash  # type: ignore[method-assign]
    rng = random.Random(3)
    values = [f"v{rng.randrange(5000)}" for _ in range(20_000)]
    for v in values:
        ours.update(v)
        rivers.update(v)
    assert ours.buckets == rivers.buckets
    lazy = FeatureProfile("f")
    for v in values:
        lazy.add(v)
    assert lazy.high_cardinality and lazy.distinct.buckets == ours.buckets
