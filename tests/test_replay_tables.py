"""Replay's tables, summary and charts from metrics records (no broker needed)."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from connectors.charts import matplotlib_figure, panels, plotly_figure
from connectors.replay import Replay
from connectors.replay_tables import rejudge, summary, violations_frame, windows_frame, write_frame
from stream.core.catalog import Catalog
from stream.core.constraints import parse_constraints
from stream.errors import ConfigError
from stream.settings import Settings
from tests.factories import T0, Topic, inference, label
from tests.harness import Harness


def constraints(threshold: float) -> Catalog:
    return Catalog(
        default=parse_constraints(
            {
                "binary_classification_constraints": {
                    "recall": {"threshold": threshold, "comparison_operator": "LessThanThreshold"},
                    "accuracy": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"},
                }
            },
            f"c{threshold}.json",
        )
    )


@pytest.fixture(scope="module")
def harness() -> Harness:
    """Six 60-second windows of two models whose recall falls from the fourth window on."""
    h = Harness(
        "memory", Settings(window_seconds=60.0, label_grace=10.0, min_samples=10, rolling_size=0), constraints(0.8)
    )
    inf, lab = Topic("inferences"), Topic("labels")
    rng = random.Random(2)
    msgs = []
    for i in range(720):
        t = T0 + i * 0.5
        model = "churn" if i % 2 else "fraud"
        y = rng.randint(0, 1)
        good = rng.random() < (0.95 if t < T0 + 180 else 0.6)
        msgs += [
            inf.msg(inference(f"e{i}", t, y if good else 1 - y, rng.random(), model=model)),
            lab.msg(label(f"e{i}", y, label_time=t + 1)),
        ]
    msgs += [inf.msg(inference("end", T0 + 1000, 0)), lab.msg(label("end-l", 0, label_time=T0 + 1000))]
    h.feed(msgs, batch=100)
    return h


@pytest.fixture(scope="module")
def records(harness: Harness) -> list[dict]:
    """The tumbling windows' metrics records."""
    return harness.metrics()


def test_windows_frame_has_one_row_per_model_window_with_every_metric(records) -> None:
    """Rows are (model, version, window); columns hold counts and every scalar metric."""
    frame = windows_frame(records)
    assert len(frame) == 12 and set(frame["model"]) == {"churn", "fraud"}
    assert {"recall", "auc", "f2_best_constant_classifier", "late", "rejected"} <= set(frame.columns)
    assert isinstance(frame["window_start"].dtype, pd.DatetimeTZDtype) and str(frame["window_start"].dt.tz) == "UTC"


def test_two_constraint_sets_judge_the_same_windows(harness: Harness, records) -> None:
    """A stricter candidate raises at least the violations of the current one, on the same windows;
    judged again, the current constraints give exactly the engine's own violation records."""
    published = [v for v in harness.records("violations") if v["constraint_check_type"] != "ChangeDetected"]
    assert rejudge(records, constraints(0.8), min_samples=10) == published  # changes are not constraints
    frame = violations_frame({"current": published, "strict": rejudge(records, constraints(0.9), min_samples=10)})
    current = frame[frame["constraints"] == "current"]
    strict = frame[frame["constraints"] == "strict"]
    assert len(strict) > len(current) > 0
    assert set(current["violation_id"]) <= set(strict["violation_id"])
    windows = windows_frame(records)
    expected = windows[windows["recall"] < 0.8][["model", "window_start"]]
    got = current[current["metric_name"] == "recall"][["model", "window_start"]]
    assert sorted(map(tuple, got.values.tolist())) == sorted(map(tuple, expected.values.tolist()))
    text = summary(windows, frame, Replay(records, published, 0, 1442, 0))
    assert "12 closed windows (2 models)" in text and "worst windows:" in text and "strict" in text


def test_charts_draw_metric_threshold_and_violations_per_panel(records, tmp_path: Path) -> None:
    """Each (model, constrained metric) panel has the metric, its threshold, and violation markers."""
    catalog = constraints(0.8)
    windows = windows_frame(records)
    violations = violations_frame({"c": rejudge(records, catalog, min_samples=10)})
    assert [(m, c.metric_name) for m, c in panels(windows, catalog)] == [
        ("churn", "recall"),
        ("churn", "accuracy"),
        ("fraud", "recall"),
        ("fraud", "accuracy"),
    ]
    fig = matplotlib_figure(windows, violations, catalog)
    for ax in fig.axes:
        assert len(ax.lines) == 2  # metric and threshold
    recall_axes = [ax for ax in fig.axes if ax.get_title(loc="left").endswith("recall")]
    assert all(len(ax.collections) == 2 for ax in recall_axes)  # the interval band and the violating windows
    for ax in fig.axes:  # the band spans each window's interval, around its value
        band = ax.collections[0].get_paths()[0].vertices
        assert band[:, 1].min() >= 0.0 and band[:, 1].max() <= 1.0
    assert (windows["recall_lower"] <= windows["recall"]).all() and (windows["recall"] <= windows["recall_upper"]).all()
    assert windows["label_coverage"].between(0, 1).all() and (windows["inferences"] >= windows["sample_count"]).all()
    html = plotly_figure(windows, violations, catalog)
    violated = len({(m, n) for m, n in violations[["model", "metric_name"]].values.tolist()})
    assert len(html.data) == 4 * 3 + violated  # metric, band, threshold per panel; violation markers
    assert sum("confidence interval" in trace.name for trace in html.data) == 4


def test_tables_are_written_atomically(tmp_path: Path) -> None:
    """CSV and Parquet round-trip; an unknown extension writes nothing."""
    frame = pd.DataFrame({"a": [1, 2]})
    write_frame(frame, tmp_path / "t.csv")
    write_frame(frame, tmp_path / "t.parquet")
    assert pd.read_parquet(tmp_path / "t.parquet").equals(pd.read_csv(tmp_path / "t.csv"))
    with pytest.raises(ConfigError):
        write_frame(frame, tmp_path / "t.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]
