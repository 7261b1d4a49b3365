"""Per-segment metrics: a window's metrics split by inference fields, judged per segment, with the
number of segment values bounded whatever the traffic; on both stores."""

from __future__ import annotations

import random

import pytest
from sklearn import metrics as skm

from stream.core.catalog import Catalog
from stream.core.constraints import parse_constraints
from stream.core.segments import MISSING, OTHER
from stream.core.timefmt import format_time
from tests.factories import T0, Topic, inference, label
from tests.harness import base_settings

pytestmark = pytest.mark.redis_cluster  # its Redis tests run again on a Redis Cluster in CI

ACCURACY_AT_LEAST_0_8 = {
    "binary_classification_constraints": {"accuracy": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"}}
}


def catalog(keys: tuple[str, ...] = ("features.country",)) -> Catalog:
    return Catalog(default=parse_constraints(ACCURACY_AT_LEAST_0_8, "c.json"), default_segments=keys)


def test_a_segment_that_collapsed_violates_while_the_whole_window_does_not(make) -> None:
    """DE (900 samples, accuracy 0.9) and FR (100, accuracy 0.5): the window's accuracy (0.86) keeps
    its constraint, FR's breaks it; each segment's metrics equal scikit-learn's on its rows, and a
    record without the field counts under __missing__."""
    h = make(base_settings(min_samples=10, segment_min_samples=20, label_ttl=86400.0), catalog())
    inf, lab = Topic("inferences"), Topic("labels")
    rng = random.Random(4)
    rows, msgs = [], []
    for i in range(1000):
        country = "FR" if i % 10 == 0 else "DE"
        y = rng.randint(0, 1)
        right = rng.random() < (0.5 if country == "FR" else 0.9)
        pred = y if right else 1 - y
        features = {"country": country, "age": rng.randint(18, 90)}
        rows.append((country, y, pred))
        msgs.append(inf.msg(inference(f"e{i}", T0 + i * 0.05, pred, 0.7 if pred else 0.3, features=features)))
        msgs.append(lab.msg(label(f"e{i}", y)))
    msgs.append(inf.msg(inference("bare", T0 + 55, 1, 0.9)))  # no features at all
    msgs.append(lab.msg(label("bare", 1)))
    h.feed([*msgs, inf.msg(inference("tick", T0 + 1000, 0, 0.1))])
    [record] = [r for r in h.metrics() if r["window"]["start"] == format_time(T0)]
    assert record["status"] == "ok" and record["sample_count"] == 1001
    countries = record["segments"]["features.country"]
    assert set(countries) == {"DE", "FR", MISSING}
    for country in ("DE", "FR"):
        y = [r[1] for r in rows if r[0] == country]
        p = [r[2] for r in rows if r[0] == country]
        body = countries[country]["binary_classification_metrics"]
        assert countries[country]["sample_count"] == len(y)
        assert body["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
        assert body["recall"]["value"] == pytest.approx(skm.recall_score(y, p), abs=1e-12)
        assert isinstance(body["accuracy"]["confidence_interval"], list)
    assert countries["FR"]["status"] == "violations" and countries["DE"]["status"] == "ok"
    assert countries[MISSING] == {**countries[MISSING], "sample_count": 1, "status": "insufficient_data"}
    [violation] = h.records(h.settings.violations_topic)
    assert violation["segment"] == {"key": "features.country", "value": "FR"}
    assert violation["metric_name"] == "accuracy" and violation["description"].startswith("Segment features.country=FR")


@pytest.mark.slow
def test_a_cardinality_attack_stays_within_the_cap(make) -> None:
    """100,000 distinct values of a segment key in one window: each window part admits 20, the rest
    count as __other__, and the record has at most 20 values besides __other__, every sample counted."""
    settings = base_settings(window_seconds=3600.0, label_ttl=86400.0, segment_cap=20)
    h = make(settings, Catalog(default_segments=("features.user",)))
    inf, lab = Topic("inferences"), Topic("labels")
    n = 100_000
    msgs = []
    for i in range(n):
        msgs.append(inf.msg(inference(f"e{i}", T0 + i * 0.01, i % 2, 0.6, features={"user": f"u{i}"})))
        msgs.append(lab.msg(label(f"e{i}", i % 3 == 0)))
    h.feed(msgs, batch=5000)
    if h.kind == "redis":  # the window's state: at most 21 segments' counters
        import redis as sync_redis

        from tests.harness import CLUSTER

        client = (sync_redis.RedisCluster if CLUSTER else sync_redis.Redis).from_url(h.redis_url)
        [part] = [k for k in client.scan_iter(f"{h.prefix}:*:w:*") if b":g:" not in k]
        values = {f.split(b"\x1f")[2] for f in client.hkeys(part) if f.startswith(b"k\x1f")}
        assert len(values) == 21 and OTHER.encode() in values
        client.close()
    h.feed([inf.msg(inference("tick", T0 + 9000, 0, 0.1))])
    [record] = h.metrics()
    users = record["segments"]["features.user"]
    assert len(users) == 21 and OTHER in users
    assert sum(u["sample_count"] for u in users.values()) == record["sample_count"] == n
    assert users[OTHER]["sample_count"] == n - 20


def test_replay_tables_and_charts_show_the_segments(tmp_path) -> None:
    """The segments table has a row per window and segment value; violations name their segment; the
    chart draws the segment that broke the constraint as a line of its own, and the window's own
    violation marks leave segment violations out."""
    from connectors.charts import matplotlib_figure, plotly_figure
    from connectors.replay import Replay
    from connectors.replay_tables import rejudge, segments_frame, summary, violations_frame, windows_frame
    from tests.harness import Harness

    h = Harness("memory", base_settings(min_samples=10, segment_min_samples=20, label_ttl=86400.0), catalog())
    inf, lab = Topic("inferences"), Topic("labels")
    rng = random.Random(8)
    msgs = []
    for i in range(3000):  # three 60 s windows; FR collapses in the last two
        country = "FR" if i % 5 == 0 else "DE"
        y = rng.randint(0, 1)
        right = rng.random() < (0.4 if country == "FR" and i >= 1000 else 0.92)
        msgs.append(
            inf.msg(inference(f"e{i}", T0 + i * 0.06, y if right else 1 - y, 0.5, features={"country": country}))
        )
        msgs.append(lab.msg(label(f"e{i}", y)))
    h.feed([*msgs, inf.msg(inference("tick", T0 + 2000, 0, 0.1))])
    records = h.metrics()
    segments = segments_frame(records)
    assert len(segments) == 2 * len(records) and set(segments["segment_value"]) == {"DE", "FR"}
    events = h.records(h.settings.violations_topic)
    published = [v for v in events if v["constraint_check_type"] != "ChangeDetected"]
    assert rejudge(records, catalog(), 10, segment_min_samples=20) == published  # a backtest gives the same
    # FR's collapse is found as a change, in FR and (a fifth of the traffic) in the whole window
    changes = {str(v.get("segment")): v["change"] for v in events if v["constraint_check_type"] == "ChangeDetected"}
    assert set(changes) == {"None", str({"key": "features.country", "value": "FR"})}
    assert all(c["since"] == format_time(T0 + 60) and c["before"]["accuracy"] > 0.85 for c in changes.values())
    violations = violations_frame({"c": published})
    assert set(violations["segment"]) == {"features.country=FR"} and len(violations) == 2
    assert "features.country=FR" in summary(windows_frame(records), violations, Replay(records, published, 0, 1, 0))
    [ax] = matplotlib_figure(windows_frame(records), violations, catalog(), segments).axes
    assert "segment features.country=FR" in [line.get_label() for line in ax.lines]
    assert not any(c.get_label().startswith("violations") for c in ax.collections)  # the whole window: none
    names = [t.name for t in plotly_figure(windows_frame(records), violations, catalog(), segments).data]
    assert "churn segment features.country=FR (2 violations)" in names


def test_check_judges_each_segment_of_a_data_set(tmp_path, capsys) -> None:
    """`check --segment-attribute country`: segments.json has each country's metrics (scikit-learn's on
    its rows); FR's collapse fails the check (exit 1) while the data set as a whole passes."""
    import json

    import pandas as pd

    from connectors.cli import main

    rng = random.Random(12)
    rows = []
    for i in range(2000):
        country = "FR" if i % 10 == 0 else "DE"
        y = rng.randint(0, 1)
        right = rng.random() < (0.5 if country == "FR" else 0.92)
        rows.append({"id": f"r{i}", "country": country, "label": y, "prediction": y if right else 1 - y})
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "c.json").write_text(json.dumps(ACCURACY_AT_LEAST_0_8))
    args = ["check", str(tmp_path / "data.csv"), "--inference-attribute", "prediction", "--ground-truth-attribute"]
    args += ["label", "--constraints", str(tmp_path / "c.json"), "--output-dir", str(tmp_path / "out")]
    assert main([*args, "--segment-attribute", "country"]) == 1
    out = capsys.readouterr().out
    assert "Segment country=FR: Metric accuracy" in out and "Completed:" in out
    segments = json.loads((tmp_path / "out" / "segments.json").read_text())["country"]
    for country in ("DE", "FR"):
        part = frame[frame["country"] == country]
        accuracy = segments[country]["binary_classification_metrics"]["accuracy"]["value"]
        assert accuracy == pytest.approx(skm.accuracy_score(part["label"], part["prediction"]), abs=1e-12)
    assert (segments["FR"]["status"], segments["DE"]["status"]) == ("violations", "ok")
    assert json.loads((tmp_path / "out" / "constraint_violations.json").read_text()) == {"violations": []}
