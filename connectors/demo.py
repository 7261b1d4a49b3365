"""`truthstream demo`: the whole pipeline on embedded services, printed as it happens."""

from __future__ import annotations

import json
import math
import tempfile
import time
import webbrowser
from pathlib import Path
from typing import Any

from connectors import exits
from connectors.kafka import json_producer
from connectors.local_stack import PARTITIONS, LocalStack, local_stack
from connectors.synthetic import drifting_workload
from connectors.watch import Watcher
from stream.core.keying import event_id_on
from stream.core.timefmt import format_time

WINDOW_S = 600.0  # ten minutes of event time per window...
STEP_S = 1.0  # ...at one inference per second of event time
GRACE_S = 120.0
DRAIN_TIMEOUT_S = 60.0  # after the last event, how long to wait for the last windows
CONSTRAINTS = {
    "version": 0.0,
    "binary_classification_constraints": {
        "accuracy": {"threshold": 0.8, "comparison_operator": "LessThanThreshold"},
        "precision": {"threshold": 0.75, "comparison_operator": "LessThanThreshold"},
        "f1": {"threshold": 7.5e-1, "comparison_operator": "LessThanThreshold"},
    },
}


def run_demo(events: int, duration: float, seed: int, dashboard_port: int | None = None) -> int:
    """Run the demo; returns the process exit code. With `dashboard_port`, the live page is served
    there (and opened) while it runs, and stays up until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="truthstream-demo-") as tmp:
        constraints = Path(tmp) / "constraints.json"
        constraints.write_text(json.dumps(CONSTRAINTS, indent=2))
        env = {
            "TRUTHSTREAM_CONSTRAINTS": str(constraints),
            "TRUTHSTREAM_WINDOW_SECONDS": str(WINDOW_S),
            "TRUTHSTREAM_LABEL_GRACE": str(GRACE_S),
            "TRUTHSTREAM_MIN_SAMPLES": "100",
            "TRUTHSTREAM_ROLLING_SIZE": "0",
        }
        with local_stack(env) as stack:
            print(f"truthstream demo: embedded broker (tansu) {stack.broker}, redis {stack.redis_url}")
            print(f"  {events} predictions of a model trained before a concept drift at prediction {events // 2};")
            print(
                f"  {WINDOW_S / 60:.0f}-minute windows of event time, constraints: "
                + ", ".join(
                    f"{k} >= {v['threshold']}" for k, v in CONSTRAINTS["binary_classification_constraints"].items()
                )
            )
            if dashboard_port is None:
                return _drive(stack, events, duration, seed)
            from connectors.live_page import serve_in_background

            url = serve_in_background(stack.settings, "127.0.0.1", dashboard_port, None)
            print(f"  live page: {url}")
            webbrowser.open(url)
            _drive(stack, events, duration, seed)  # its outcome is printed; Ctrl-C ends the page
            print(f"the live page stays up at {url}; Ctrl-C to stop")
            try:
                while True:
                    time.sleep(1)
                    _check(stack)
            except KeyboardInterrupt:
                return exits.INTERRUPTED


def _check(stack: LocalStack) -> None:
    """Supervise the stack, printing what it started again (see `LocalStack.check`)."""
    for note in stack.check():
        print(note, flush=True)


def _drive(stack: LocalStack, events: int, duration: float, seed: int) -> int:
    s = stack.settings
    watcher = Watcher(stack.kafka, s.metrics_topic, s.violations_topic, line=_row)
    producer = json_producer(stack.kafka)
    start = math.floor(time.time() / WINDOW_S) * WINDOW_S
    expected_windows = math.ceil(events * STEP_S / WINDOW_S)
    _header()
    began = time.monotonic()
    pace = duration / max(1, events)
    for n, event in enumerate(drifting_workload(events, start, STEP_S, max_label_delay=GRACE_S / 2, seed=seed)):
        producer.send(event.kind, key=event.key, value=event.value)
        if n % 200 == 0:
            producer.flush()
            _show(watcher)
            _check(stack)
            ahead = began + (n / 2) * pace - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    # Move every partition's event time past the last window, so it closes too.
    end = start + events * STEP_S + WINDOW_S + GRACE_S
    for p in range(PARTITIONS):
        closing, closing_label = event_id_on("end", p, PARTITIONS), event_id_on("end-label", p, PARTITIONS)
        producer.send(
            s.inference_topic,
            key=closing,
            partition=p,
            value={
                "event_id": closing,
                "model": "churn",
                "model_version": "1",
                "inference_time": format_time(end),
                "prediction": 0,
            },
        )
        producer.send(
            s.label_topic,
            key=closing_label,
            partition=p,
            value={"event_id": closing_label, "label": 0, "label_time": format_time(end)},
        )
    producer.flush()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while watcher.windows < expected_windows and time.monotonic() < deadline:
        _show(watcher)
        _check(stack)
        time.sleep(0.5)
    producer.close()
    watcher.close()
    print(
        f"\n{watcher.windows} windows published, {watcher.violations} violations, in {time.monotonic() - began:.0f} s."
    )
    if watcher.windows < expected_windows:
        print(f"expected {expected_windows} windows; worker log:\n{stack.log(0).read_text(errors='replace')[-3000:]}")
        return 1
    return 0


def _show(watcher: Watcher) -> None:
    for line in watcher.poll():
        print(line, flush=True)


def _header() -> None:
    print(
        f"\n{'window (event time, UTC)':<27}{'n':>6}{'accuracy':>10}{'precision':>10}{'recall':>8}{'f1':>7}"
        f"{'auc':>7}  status"
    )


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else str(value)


def _row(doc: dict[str, Any]) -> str:
    """A window as a row of the demo's table."""
    s = doc.get("binary_classification_metrics", {})
    window = f"{doc['window']['start'][:16]} +{WINDOW_S / 60:.0f}m"
    return (
        f"{window:<27}{doc['sample_count']:>6}"
        + "".join(
            f"{_fmt(s.get(k, {}).get('value', '-')):>{w}}"
            for k, w in (("accuracy", 10), ("precision", 10), ("recall", 8), ("f1", 7), ("auc", 7))
        )
        + f"  {doc['status']}"
    )
