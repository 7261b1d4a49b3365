"""`truthstream dashboard` in a real headless browser (Debian's Chromium driven by Playwright): the
page shows the series of a known stream, marks the violating windows, and updates without a reload
when a new window is published."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.embedded import free_port, wait_for_port
from connectors.kafka import json_producer
from stream.core.outputs import violation_id, window_doc
from stream.core.timefmt import format_time
from stream.settings import Settings
from stream.worker.topics import ensure_topics
from tests.conftest import debian_program
from tests.factories import T0

pytestmark = [pytest.mark.integration, pytest.mark.chromium]

# Chromium as root in a container, with no network beyond loopback (see the README's Tests section).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
THRESHOLD = 0.8
ACCURACY = [0.91, 0.9, 0.88, 0.72, 0.65]  # the last two break accuracy >= 0.8
CONSTRAINTS = {
    "version": 0.0,
    "binary_classification_constraints": {
        "accuracy": {"threshold": THRESHOLD, "comparison_operator": "LessThanThreshold"}
    },
}


def window_record(i: int, accuracy: float, kind: str = "tumbling") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A metrics record of window i (an hour each) and its violations."""
    window = window_doc(kind, T0 + i * 3600, T0 + (i + 1) * 3600)
    record = {
        "model": "churn",
        "model_version": "1",
        "window": window,
        "sample_count": 150 + i,
        "status": "ok",
        "problem_type": "BinaryClassification",
        "counts": {"late": i, "expired_inferences": 0, "expired_labels": 0, "duplicates": 0, "rejected": 1},
        "binary_classification_metrics": {
            "accuracy": {
                "value": accuracy,
                "standard_deviation": "NaN",
                "confidence_interval": [accuracy - 0.05, min(1.0, accuracy + 0.05)],
            },
            "auc": {"value": float("nan"), "standard_deviation": "NaN"},
        },
    }
    violations = []
    if accuracy < THRESHOLD:
        violations.append(
            {
                "violation_id": violation_id("churn", "1", window, "accuracy"),
                "model": "churn",
                "model_version": "1",
                "window": window,
                "metric_name": "accuracy",
                "constraint_check_type": "LessThanThreshold",
                "description": f"Metric accuracy with {accuracy} was LessThanThreshold '{THRESHOLD}'",
                "threshold": THRESHOLD,
                "value": accuracy,
                "sample_count": 150 + i,
            }
        )
    return record, violations


DRIFT = [0.02, 0.03, 0.05, 0.25, 0.31, 0.4]  # income's drift distance per window; over 0.1 from the fourth on


def quality_record(i: int) -> dict[str, Any]:
    """The data-quality record of window i: income's and plan's drift, income drifted from window 3 on."""
    drifted = ["income"] if DRIFT[i] > 0.1 else []
    return {
        "model": "churn",
        "model_version": "1",
        "window": window_doc("data_quality", T0 + i * 3600, T0 + (i + 1) * 3600),
        "row_count": 150 + i,
        "status": "violations" if drifted else "ok",
        "violation_count": len(drifted),
        "drift": {"income": DRIFT[i], "plan": 0.01},
        "drifted_features": drifted,
    }


ESTIMATE_OFFSET = 0.02  # the provisional records' estimates sit this far from the realized values


def provisional_record(i: int, estimate: float) -> dict[str, Any]:
    """The provisional record of window i: its label-free estimated accuracy, no label yet."""
    return {
        "model": "churn",
        "model_version": "1",
        "window": window_doc("provisional", T0 + i * 3600, T0 + (i + 1) * 3600),
        "inference_count": 150 + i,
        "sample_count": 0,
        "status": "ok",
        "estimated": True,
        "problem_type": "BinaryClassification",
        "binary_classification_metrics": {
            "estimated_accuracy": {"value": estimate, "standard_deviation": 0.02, "confidence_interval": [0, 1]}
        },
    }


@pytest.fixture
def page_server(broker: str, unique: str, tmp_path: Path) -> Any:
    settings = Settings.from_env(broker=broker)
    topics = {"metrics": f"metrics-{unique}", "violations": f"violations-{unique}"}
    ensure_topics(settings.kafka(), list(topics.values()), 2)
    producer = json_producer(settings.kafka())

    def publish(i: int, accuracy: float) -> None:
        record, violations = window_record(i, accuracy)
        producer.send(topics["metrics"], key="churn", value=quality_record(i))
        producer.send(topics["metrics"], key="churn", value=provisional_record(i, accuracy + ESTIMATE_OFFSET))
        producer.send(topics["metrics"], key="churn", value=record)
        for v in violations:
            producer.send(topics["violations"], key="churn", value=v)
        producer.flush()

    for i, accuracy in enumerate(ACCURACY):
        publish(i, accuracy)
    rolling, _ = window_record(len(ACCURACY) - 1, 0.7, kind="rolling")
    producer.send(topics["metrics"], key="churn", value=rolling)
    producer.flush()

    constraints = tmp_path / "constraints.json"
    constraints.write_text(json.dumps(CONSTRAINTS))
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "dashboard", "--port", str(port), "--from", "0"],
        env={
            **os.environ,
            "TRUTHSTREAM_BROKER": broker,
            "TRUTHSTREAM_METRICS_TOPIC": topics["metrics"],
            "TRUTHSTREAM_VIOLATIONS_TOPIC": topics["violations"],
            "TRUTHSTREAM_CONSTRAINTS": str(constraints),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_port(port, proc, "truthstream dashboard", tmp_path / "dashboard.log")
        yield url, publish, tmp_path
    finally:
        proc.terminate()
        proc.wait(20)
        producer.close()


def test_the_page_draws_the_stream_and_updates_live(page_server: Any) -> None:
    chromium = debian_program("chromium", "chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    url, publish, tmp = page_server
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(  # a fresh profile directory of its own
            str(tmp / "chromium-profile"),
            executable_path=chromium,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.goto(url)
            points = 'svg[data-model="churn"][data-metric="accuracy"] circle.point.tumbling'
            page.wait_for_function(f"document.querySelectorAll('{points}').length === {len(ACCURACY)}")
            shown = [float(v) for v in page.eval_on_selector_all(points, "els => els.map(e => e.dataset.value)")]
            assert shown == ACCURACY
            ends = page.eval_on_selector_all(points, "els => els.map(e => e.dataset.end)")
            assert ends == [format_time(T0 + (i + 1) * 3600) for i in range(len(ACCURACY))]
            page.wait_for_function(f"document.querySelectorAll('{points}.violating').length === 2")
            violating = page.eval_on_selector_all(f"{points}.violating", "els => els.map(e => e.dataset.end)")
            assert violating == ends[3:]
            threshold = page.get_attribute('svg[data-metric="accuracy"] line.threshold', "data-threshold")
            assert float(threshold) == THRESHOLD
            assert page.locator('svg[data-metric="accuracy"] path.line.rolling').count() == 1
            band = page.get_attribute('svg[data-metric="accuracy"] path.band', "data-windows")
            assert band == str(len(ACCURACY))  # the windows' confidence intervals, shaded
            assert page.locator("#violations tr").count() == 2
            estimates = 'svg[data-metric="accuracy"] circle.point.estimate'
            shown = page.eval_on_selector_all(estimates, "els => els.map(e => Number(e.dataset.estimate))")
            assert shown == pytest.approx([a + ESTIMATE_OFFSET for a in ACCURACY])
            assert page.locator('svg[data-metric="accuracy"] path.line.estimate').count() == 1
            assert page.text_content('[data-count="windows"] b') == str(len(ACCURACY))
            assert page.text_content('[data-count="late"] b') == str(sum(range(len(ACCURACY))))
            drift = 'svg[data-drift] circle.point.drift[data-feature="income"]'
            shown = page.eval_on_selector_all(drift, "els => els.map(e => Number(e.dataset.drift))")
            assert shown == DRIFT[: len(ACCURACY)]
            drifted = page.eval_on_selector_all(f"{drift}.drifted", "els => els.map(e => e.dataset.end)")
            assert drifted == ends[3:]
            assert page.locator('svg[data-drift] path.line.drift[data-feature="plan"]').count() == 0  # never drifted
            assert page.text_content('[data-count="drifted inputs (last window)"] b') == "income (0.310)"
            page.screenshot(path=str(tmp / "dashboard.png"), full_page=True)

            publish(len(ACCURACY), 0.6)  # a new violating window: the open page shows it, no reload
            page.wait_for_function(f"document.querySelectorAll('{points}').length === {len(ACCURACY) + 1}")
            page.wait_for_function("document.querySelectorAll('#violations tr').length === 3")
            assert page.locator(f"{points}.violating").count() == 3
            page.screenshot(path=str(tmp / "dashboard-updated.png"), full_page=True)
            if os.environ.get("TRUTHSTREAM_SCREENSHOT"):  # refresh the README's picture
                page.screenshot(path=os.environ["TRUTHSTREAM_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
    assert (tmp / "dashboard.png").stat().st_size > 10_000
