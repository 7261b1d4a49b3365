"""The worker end to end on a real broker and a real Redis, checked against scikit-learn."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.core.calibration import Calibration
from tests.integration.conftest import Deployment, counted, tumbling
from tests.integration.workload import arrival_order, expected_windows, workload

pytestmark = [pytest.mark.integration, pytest.mark.redis_cluster]

WINDOW = 60.0
GRACE = 30.0
CONSTRAINTS = {
    "version": 0.0,
    "binary_classification_constraints": {
        "recall": {"threshold": 8.0e-1, "comparison_operator": "LessThanThreshold"},
        "accuracy": {"threshold": 0.8, "comparison_operator": "LessThanOrEqualToThreshold"},
    },
}


def write_constraints(tmp_path: Path) -> str:
    path = tmp_path / "constraints.json"
    path.write_text(json.dumps(CONSTRAINTS))
    return str(path)


def write_calibration(tmp_path: Path) -> str:
    """A calibration.json that takes the workload's scores as they are (they are calibrated)."""
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(Calibration((0.0, 1.0), (0.0, 1.0)).to_doc()))
    return str(path)


def produce(dep: Deployment, records: list[tuple[str, str, dict]], chunk: int = 500) -> None:
    """Produce records in arrival order, a chunk of each topic at a time."""
    pending: dict[str, list] = {"inferences": [], "labels": []}
    for kind, key, value in records:
        pending[kind].append((key, value))
        if len(pending[kind]) >= chunk:
            dep.send(kind, pending[kind])
            pending[kind] = []
    for kind, rest in pending.items():
        if rest:
            dep.send(kind, rest)


def assert_matches_sklearn(published: dict[str, dict], expected: dict[str, dict]) -> None:
    assert sorted(published) == sorted(expected)
    for start, want in expected.items():
        record = published[start]
        stats = record["binary_classification_metrics"]
        assert record["sample_count"] == want["sample_count"], start
        for name in ("recall", "precision", "accuracy", "f1", "auc"):
            assert stats[name]["value"] == pytest.approx(want[name], abs=1e-9), (start, name)


def settings(tmp_path: Path, **extra) -> dict:
    defaults = dict(
        window_seconds=WINDOW,
        label_grace=GRACE,
        min_samples=50,
        constraints=write_constraints(tmp_path),
        rolling_size=200,
        rolling_every=100,
    )
    return {**defaults, **extra}


@pytest.mark.kafka_sasl
@pytest.mark.parametrize("engine_process", ["on", pytest.param("off", marks=pytest.mark.slow)])
def test_drift_raises_violations_only_in_the_windows_after_it(
    deployment: Deployment, tmp_path: Path, engine_process: str
) -> None:
    """Metrics per window equal scikit-learn's; violations name exactly the drifted windows (with the
    engine in a process of its own, and in Faust's)."""
    pairs = workload(n=1200, per_window=150, window=WINDOW, drift_window=4, seed=1, max_label_delay=20)
    deployment.configure(**settings(tmp_path, engine_process=engine_process))
    deployment.start_worker()
    produce(deployment, arrival_order(pairs))
    deployment.close_all_windows(pairs[-1].time + 1000)
    expected = expected_windows(pairs, WINDOW)
    published = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w
    )
    assert_matches_sklearn(published, expected)
    violations = deployment.read("violations")
    drifted = sorted(expected)[4:]
    tumbling_violations = [
        v for v in violations if v["window"]["kind"] == "tumbling" and v["constraint_check_type"] != "ChangeDetected"
    ]
    assert sorted({v["window"]["start"] for v in tumbling_violations}) == drifted
    assert {v["metric_name"] for v in tumbling_violations} == {"recall", "accuracy"}
    for v in tumbling_violations:
        assert v["model"] == "churn" and v["sample_count"] == 150
        assert v["description"].startswith(f"Metric {v['metric_name']} with ")
    assert len({v["violation_id"] for v in tumbling_violations}) == len(tumbling_violations)
    rolling = [r for r in deployment.read("metrics") if r["window"]["kind"] == "rolling"]
    assert rolling and all(0 < r["window"]["size"] <= 200 for r in rolling)  # on a Redis Cluster too


def test_bad_records_go_to_dead_letters_and_the_worker_keeps_going(deployment: Deployment, tmp_path: Path) -> None:
    """Malformed, incomplete, out-of-range and oversized input is dead-lettered with its reason and origin."""
    pairs = workload(n=300, per_window=150, window=WINDOW, drift_window=99, seed=2, max_label_delay=5)
    deployment.configure(**settings(tmp_path))
    deployment.start_worker()
    good = arrival_order(pairs)
    produce(deployment, good[:200])
    bad = {
        "inferences": [
            ("b1", b"{not json"),
            ("b2", {"event_id": "b2", "model": "churn", "prediction": 1}),
            (
                "b3",
                {
                    "event_id": "b3",
                    "model": "churn",
                    "inference_time": pairs[0].time,
                    "prediction": 1,
                    "probability": 1.5,
                },
            ),
            (
                "b4",
                {
                    "event_id": "b4",
                    "model": "churn",
                    "inference_time": pairs[0].time,
                    "prediction": 1,
                    "features": {"blob": "x" * 300_000},
                },
            ),
        ],
        "labels": [(pairs[0].event_id + "-x", {"event_id": pairs[5].event_id + "-x"}), ("b5", b"\x00\x01")],
    }
    sent = {kind: deployment.send(kind, records) for kind, records in bad.items()}
    produce(deployment, good[200:])
    deployment.close_all_windows(pairs[-1].time + 1000)
    published = deployment.wait_for(
        "2 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 2 and w
    )
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
    dead = deployment.wait_for("6 dead letters", lambda: (d := deployment.read("dead-letters")) and len(d) >= 6 and d)
    by_origin = {(d["topic"], d["partition"], d["offset"]): d for d in dead}
    fields = {}
    for kind, metas in sent.items():
        for meta in metas:
            letter = by_origin[(deployment.topic(kind), meta.partition, meta.offset)]
            fields[letter["key"]] = letter["field"]
            assert letter["reason"]
    assert fields["b2"] == "inference_time" and fields["b3"] == "probability" and fields["b1"] is None
    assert (
        "over the limit"
        in by_origin[(deployment.topic("inferences"), sent["inferences"][3].partition, sent["inferences"][3].offset)][
            "reason"
        ]
    )
    # counted in their model's windows, or, naming no model, in accounting records with model null
    deployment.wait_for("6 rejects counted", lambda: counted(deployment, "rejected") == 6)
    unattributed = [r for r in deployment.read("metrics") if r["window"]["kind"] == "accounting" and not r["model"]]
    assert all(r["model"] is None for r in unattributed)


def test_sigkilled_worker_restarts_without_losing_or_double_counting(deployment: Deployment, tmp_path: Path) -> None:
    """A worker killed with SIGKILL twice mid-stream and restarted ends with exactly the full data's metrics."""
    pairs = workload(n=24000, per_window=3000, window=WINDOW, drift_window=5, seed=3, max_label_delay=20)
    deployment.configure(**settings(tmp_path, batch_size=500))
    records = arrival_order(pairs)
    produce(deployment, records[: len(records) // 2])
    rng = random.Random(5)
    worker = deployment.start_worker()
    deployment.wait_for("the first closed window", lambda: tumbling(deployment.read("metrics")))
    deployment.kill(worker)
    produce(deployment, records[len(records) // 2 :])
    worker = deployment.start_worker()
    time.sleep(rng.uniform(12, 16))  # the restarted worker joins its group (10 s session) and gets going
    deployment.kill(worker)
    deployment.start_worker()
    deployment.close_all_windows(pairs[-1].time + 1000)
    published = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w, timeout=240
    )
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
    counts = [r["counts"] for r in published.values()]
    assert sum(c["duplicates"] for c in counts) == 0 and sum(c["late"] for c in counts) == 0


def engine_process(worker_pid: int) -> int | None:
    """The pid of a worker's engine process (its child running multiprocessing's spawn), if it has one."""
    for pid in Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split():
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return int(pid)
    return None


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_engine_process_ends_the_worker_and_nothing_is_lost(deployment: Deployment, tmp_path: Path) -> None:
    """SIGKILL of the engine process (out of memory, say) ends its worker at once, without committing;
    SIGKILL of a worker ends its engine process; the restarted worker ends with exactly the data's metrics."""
    pairs = workload(n=12000, per_window=3000, window=WINDOW, drift_window=2, seed=4, max_label_delay=20)
    deployment.configure(**settings(tmp_path, batch_size=500))
    records = arrival_order(pairs)
    produce(deployment, records[: len(records) // 2])
    worker = deployment.start_worker()
    deployment.wait_for("the first closed window", lambda: tumbling(deployment.read("metrics")))
    engine = engine_process(worker.pid)
    assert engine is not None
    os.kill(engine, signal.SIGKILL)
    assert worker.wait(30) == 70
    deployment.retire(worker)
    assert "the engine process ended" in deployment.tail()
    produce(deployment, records[len(records) // 2 :])
    worker = deployment.start_worker()
    engine = deployment.wait_for("the restarted worker's engine process", lambda: engine_process(worker.pid))
    deployment.kill(worker)
    deployment.wait_for("the killed worker's engine process to end", lambda: not alive(engine), timeout=30)
    deployment.start_worker()
    deployment.close_all_windows(pairs[-1].time + 1000)
    published = deployment.wait_for(
        "4 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 4 and w, timeout=240
    )
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
    assert sum(r["counts"]["duplicates"] for r in published.values()) == 0


EXITS_WITHOUT_STOPPING = """
import asyncio
from stream.settings import Settings
from stream.worker.engine_process import EngineProcess

settings = Settings.from_env()
engine = EngineProcess(settings, settings.catalog(), 4, "warning")
asyncio.run(engine.start())
print(engine.child.pid, flush=True)
"""


@pytest.mark.slow
def test_a_process_that_exits_without_stopping_its_engine_does_not_hang(deployment: Deployment, tmp_path: Path) -> None:
    """The engine process ignores SIGTERM and ends on EOF: a worker that exits without closing it
    (a crash before its services stop) must still exit, and take its engine process with it."""
    deployment.configure(**settings(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", EXITS_WITHOUT_STOPPING],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[0])
    deployment.wait_for("the engine process to end", lambda: not alive(child), timeout=10)


@pytest.mark.kafka_sasl
def test_two_workers_split_the_partitions_and_agree(deployment: Deployment, tmp_path: Path) -> None:
    """Two workers in one group each take part of the four partitions; results equal scikit-learn's."""
    pairs = workload(n=4800, per_window=600, window=WINDOW, drift_window=6, seed=4, max_label_delay=20)
    deployment.configure(**settings(tmp_path))
    deployment.start_worker()
    deployment.start_worker()
    split = deployment.wait_for("both workers to hold partitions", lambda: assignments(deployment))
    inference_sets = [s[deployment.topic("inferences")] for s in split]
    assert all(inference_sets) and set().union(*inference_sets) == set(range(4))
    assert not inference_sets[0] & inference_sets[1]
    assert all(s[deployment.topic("labels")] == s[deployment.topic("inferences")] for s in split)
    produce(deployment, arrival_order(pairs))
    deployment.close_all_windows(pairs[-1].time + 1000)
    published = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w, timeout=180
    )
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))


def test_engine_processes_split_the_partitions_and_agree(deployment: Deployment, tmp_path: Path) -> None:
    """One worker with two engine processes (partitions 0 and 2 to one, 1 and 3 to the other):
    results equal scikit-learn's, whatever process closed each window."""
    pairs = workload(n=4800, per_window=600, window=WINDOW, drift_window=6, seed=5, max_label_delay=20)
    deployment.configure(**settings(tmp_path), engine_processes=2)
    worker = deployment.start_worker()
    produce(deployment, arrival_order(pairs))
    deployment.close_all_windows(pairs[-1].time + 1000)
    published = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w, timeout=180
    )
    assert_matches_sklearn(published, expected_windows(pairs, WINDOW))
    children = subprocess.run(["pgrep", "-P", str(worker.pid), "-f", "spawn_main"], capture_output=True, text=True)
    assert len(children.stdout.split()) == 2  # the two engine processes


def _partitions(text: str) -> set[int]:
    """Parse Faust's partition set notation, e.g. `{0-1}` or `{0, 3}`."""
    out: set[int] = set()
    for item in text.strip("{} ").split(","):
        if "-" in item:
            low, high = item.split("-")
            out.update(range(int(low), int(high) + 1))
        elif item.strip():
            out.add(int(item))
    return out


def assignments(dep: Deployment) -> list[dict[str, set[int]]]:
    """Each worker's latest assignment, as its log reports it; [] until both have one."""
    found = []
    for log in sorted(dep.logs.glob("worker-*.log")):
        text = log.read_text(errors="replace")
        last = text.rfind("Setting newly assigned partitions")
        if last < 0:
            return []
        rows = re.findall(r"^\| (\S+)\s+\| (\{[^}]*\})", text[last : last + 2000], re.M)
        found.append({topic: _partitions(parts) for topic, parts in rows})
    return (
        found
        if len(found) == 2 and all(found) and sum(len(f.get(dep.topic("inferences"), ())) for f in found) == 4
        else []
    )


def test_regression_model_end_to_end(deployment: Deployment, tmp_path: Path) -> None:
    """A regression model's windows carry MAE/MSE/RMSE/R² equal to scikit-learn's, judged by regression_constraints."""
    from sklearn import metrics as skm

    from stream.core.timefmt import format_time
    from tests.factories import T0

    path = tmp_path / "regression.json"
    path.write_text(
        json.dumps(
            {"regression_constraints": {"mae": {"threshold": 12.0, "comparison_operator": "GreaterThanThreshold"}}}
        )
    )
    deployment.configure(
        window_seconds=WINDOW, label_grace=GRACE, min_samples=50, constraints=str(path), rolling_size=0
    )
    deployment.start_worker()
    rng = random.Random(8)
    rows = []
    for i in range(600):
        t = T0 + i * 0.4  # 4 windows of 150
        y = rng.gauss(100, 30)
        noise = 5 if t < T0 + 120 else 25  # the model degrades in the last two windows
        rows.append((f"r{i}", t, y, y + rng.gauss(0, noise)))
    records = []
    for event_id, t, y, pred in rows:
        records.append(
            ("inferences", event_id, {"event_id": event_id, "model": "price", "inference_time": t, "prediction": pred})
        )
        records.append(("labels", event_id, {"event_id": event_id, "label": y, "label_time": format_time(t + 1)}))
    produce(deployment, records)
    deployment.close_all_windows(T0 + 2000)
    published = deployment.wait_for(
        "4 windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 4 and w
    )
    for start, record in published.items():
        window = [(y, p) for _, t, y, p in rows if format_time(t - (t - T0) % WINDOW) == start]
        ys, ps = zip(*window)
        stats = record["regression_metrics"]
        assert stats["mae"]["value"] == pytest.approx(skm.mean_absolute_error(ys, ps), rel=1e-9)
        assert stats["r2"]["value"] == pytest.approx(skm.r2_score(ys, ps), rel=1e-9)
    violated = sorted(v["window"]["start"] for v in deployment.read("violations"))
    assert violated == sorted(published)[2:]
