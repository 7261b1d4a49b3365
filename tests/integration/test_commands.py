"""Commands against a real broker that misbehaves: the dashboard and `violations --follow` keep
reading across a broker restart (here the embedded tansu, which comes back empty: the harder
case), and `violations --json | head` ends quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors import exits
from connectors.embedded import free_port, tansu, wait_for_port
from connectors.kafka import json_producer
from stream.settings import Settings
from stream.worker.topics import ensure_topics
from tests.factories import T0

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "connectors.cli"]


def violation(i: int) -> dict[str, Any]:
    """A violation record of window i (the fields `violations` prints)."""
    return {
        "model": "churn",
        "model_version": "1",
        "window": {"kind": "tumbling", "start": f"{T0 + i * 10}", "end": f"{T0 + i * 10 + 10}"},
        "metric_name": "accuracy",
        "value": 0.5,
        "constraint_check_type": "LessThanThreshold",
        "threshold": 0.8,
        "violation_id": f"v{i}",
        "description": f"window {i}",
    }


def wait(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_dashboard_and_violations_follow_survive_a_broker_restart(tmp_path: Path) -> None:
    """Both readers say once that the broker went and came back, and show what was published after
    the restart (tansu keeps topics in memory: they come back empty, at offset 0 again)."""
    port = free_port()
    broker = tansu(port, tmp_path)
    broker.start()
    url = f"kafka://127.0.0.1:{port}"
    settings = Settings.from_env(broker=url)
    topics = [settings.metrics_topic, settings.violations_topic]

    def publish(i: int) -> None:
        ensure_topics(settings.kafka(), topics, 1)
        producer = json_producer(settings.kafka())
        producer.send(settings.violations_topic, key="churn", value=violation(i))
        producer.flush()
        producer.close()

    publish(1)
    page_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUTHSTREAM_")} | {"TRUTHSTREAM_BROKER": url}
    with (tmp_path / "dashboard.log").open("w") as dash_log, (tmp_path / "follow.log").open("w") as follow_log:
        dashboard = subprocess.Popen(
            [*CLI, "dashboard", "--port", str(page_port), "--from", "0"], env=env, stdout=dash_log, stderr=dash_log
        )
        follow = subprocess.Popen(
            [*CLI, "violations", "--follow", "--json"], env=env, stdout=follow_log, stderr=subprocess.PIPE, text=True
        )
    try:
        wait_for_port(page_port, dashboard, "dashboard", tmp_path / "dashboard.log")

        def shown() -> list[str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{page_port}/api/snapshot", timeout=5) as answer:
                return [r["record"]["violation_id"] for r in json.load(answer)["records"]]

        def followed() -> list[str]:
            text = (tmp_path / "follow.log").read_text()
            return [json.loads(line)["violation_id"] for line in text.splitlines() if line.strip()]

        wait("the first violation", lambda: shown() == ["v1"] and followed() == ["v1"])
        broker.stop()
        time.sleep(12)  # long enough for both readers to find the broker gone (they check every 5 s)
        broker.start()
        publish(2)
        wait("the violation published after the restart", lambda: shown() == ["v1", "v2"], timeout=90)
        wait("the violation published after the restart", lambda: followed() == ["v1", "v2"], timeout=90)
        assert dashboard.poll() is None and follow.poll() is None
    finally:
        for proc in (dashboard, follow):
            proc.terminate()
        _, follow_err = follow.communicate(timeout=30)
        dashboard.wait(timeout=30)
        broker.stop()
    dash_text = (tmp_path / "dashboard.log").read_text()
    for text in (dash_text, follow_err):
        assert text.count("the broker does not answer") == 1, text
        assert text.count("the broker answers again") == 1, text
        assert "no longer holds the record read" in text, text
        assert "Traceback" not in text, text


def test_violations_into_a_closed_pipe_ends_quietly(broker: str, unique: str) -> None:
    """`truthstream violations --json | head -1`: the rest is not printed, nothing is said."""
    settings = Settings.from_env(broker=broker, violations_topic=f"violations-{unique}")
    ensure_topics(settings.kafka(), [settings.violations_topic], 1)
    producer = json_producer(settings.kafka())
    for i in range(500):
        producer.send(settings.violations_topic, key="churn", value=violation(i))
    producer.flush()
    producer.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUTHSTREAM_")}
    argv = [*CLI, "violations", "--json", "--broker", broker, "--violations-topic", settings.violations_topic]
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$@" | head -1; echo "codes ${PIPESTATUS[*]}" >&2', "_", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(done.stdout)["violation_id"] == "v0"
    assert done.stderr.strip() == f"codes {exits.PIPE} 0", done.stderr


def test_the_worker_exits_130_on_ctrl_c_and_0_on_sigterm(deployment: Any) -> None:
    """The exit-code contract holds for the Faust worker too: Ctrl-C is 130, a process manager's
    SIGTERM a clean 0, neither with a traceback."""
    import signal

    deployment.configure()
    for signum, code in ((signal.SIGINT, exits.INTERRUPTED), (signal.SIGTERM, exits.OK)):
        proc = deployment.start_worker()
        log = deployment.logs / f"worker-{len(deployment.workers) - 1}.log"
        wait("the worker's partitions", lambda log=log: "assigned" in log.read_text().lower(), 120)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == code, log.read_text()[-3000:]
        deployment.retire(proc)
        assert "Traceback" not in log.read_text()
