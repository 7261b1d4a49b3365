"""A real Prometheus (Debian's) scrapes a real worker fed with a drifting stream: every PromQL
expression of the rules file and of the Grafana dashboard evaluates and returns series, and the
violation alert fires on the drift."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.embedded import free_port
from tests.conftest import debian_program, wait_until
from tests.integration.conftest import Deployment, tumbling
from tests.integration.test_worker import produce, settings, write_calibration
from tests.integration.workload import arrival_order, workload
from tests.test_data_quality_stream import baseline_of, quality_settings

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

MONITORING = Path(__file__).resolve().parents[2] / "connectors" / "monitoring"
RULES = MONITORING / "truthstream-rules.yml"
DASHBOARD = MONITORING / "grafana" / "truthstream-dashboard.json"
WINDOW = 60.0
# Grafana's variables as the test fills them in: every model and version, one metric.
VARIABLES = {"$model": ".*", "$version": ".*", "$metric": "accuracy", "$__rate_interval": "1m"}


class Prometheus:
    """A Prometheus server scraping one target every second, with truthstream's rules."""

    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "truthstream", "static_configs": [{"targets": [target]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                debian_program("prometheus", "prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.wait("Prometheus to be ready", lambda: self._get("/-/ready", raw=True))

    def _get(self, path: str, raw: bool = False, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body = reply.read()
        except OSError:
            return None
        return body if raw else json.loads(body)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; fails the test if Prometheus refuses the expression."""
        answer = self._get("/api/v1/query", query=expr)
        assert answer is not None and answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def firing(self) -> set[str]:
        return {
            a["labels"]["alertname"] for a in self._get("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"
        }

    def wait(self, what: str, check: Any, timeout: float = 90.0) -> Any:
        def exited() -> str | None:
            return None if self.proc.poll() is None else f"Prometheus exited with {self.proc.returncode}"

        return wait_until(what, check, timeout, exited, lambda: self.log.read_text()[-3000:])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(Prometheus(tmp_path, target))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def rule_expressions() -> tuple[list[str], list[str]]:
    """The recording rules' and the alerts' expressions."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    return [r["expr"] for r in rules if "record" in r], [r["expr"] for r in rules if "alert" in r]


def dashboard_expressions() -> list[str]:
    """Every panel's queries and every variable's, with the variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    filled = []
    for expr in exprs:
        for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
            expr = expr.replace(name, value)
        filled.append(expr)
    return filled


def label_values_query(expr: str) -> str:
    """Grafana's `label_values(selector, label)` as the selector Prometheus evaluates."""
    found = re.fullmatch(r"label_values\((.*), *\w+\)", expr)
    return found.group(1) if found else expr


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (truthstream's own and `up`)."""
    return set(re.findall(r"\b(truthstream[:_][a-z0-9_:]+|up)\b(?!\s*\()", expr)) - {"truthstream"}


def test_prometheus_evaluates_every_rule_and_panel_and_the_drift_fires_an_alert(
    deployment: Deployment, tmp_path: Path, prometheus_for: Any
) -> None:
    port = free_port()
    pairs = workload(n=1200, per_window=150, window=WINDOW, drift_window=4, seed=5, max_label_delay=20)
    quality = baseline_of([{"x": 1}] * 50)  # the workload's one feature: its gauges and recording rule get series
    deployment.configure(
        **settings(tmp_path, calibration=write_calibration(tmp_path)),
        metrics_port=port,
        state_limit_mib=1,
        **quality_settings(quality, tmp_path),
    )
    deployment.start_worker()
    prometheus = prometheus_for(f"127.0.0.1:{port}")
    records = arrival_order(pairs)
    early = {p.event_id for p in pairs[:600]}  # windows 0-3, before the drift
    produce(deployment, [r for r in records if r[1] in early])
    deployment.close_all_windows(pairs[600].time + 30)  # their end plus grace: they close, window 4 not
    prometheus.wait(
        "the violations counters before the drift",
        lambda: prometheus.query('truthstream_violations_total{metric="accuracy"} == 0'),
    )
    assert "TruthstreamConstraintViolated" not in prometheus.firing()

    produce(deployment, [r for r in records if r[1] not in early])
    deployment.send("inferences", [("poison", b"{not json")])  # a dead letter, for its panel
    deployment.close_all_windows(pairs[-1].time + 1000)
    windows = deployment.wait_for(
        "8 closed windows", lambda: (w := tumbling(deployment.read("metrics"))) and len(w) == 8 and w
    )
    fired = prometheus.wait("the violation alert", lambda: "TruthstreamConstraintViolated" in prometheus.firing())
    assert fired
    changed = prometheus.wait("the change alert", lambda: "TruthstreamAccuracyChanged" in prometheus.firing())
    assert changed  # the change detector saw the drift too

    last = windows[max(windows)]
    latest = prometheus.wait(
        "the newest window in the recording rule",
        lambda: [
            r
            for r in prometheus.query('truthstream:window_metric:latest{metric="accuracy", window_kind="tumbling"}')
            if float(r["value"][1]) == last["binary_classification_metrics"]["accuracy"]["value"]
        ],
    )
    assert latest[0]["metric"]["model"] == "churn"

    # the state's size by family, and the bound (1 MiB here, which any Redis passes): the alert's condition holds
    sized = prometheus.wait(
        "the state's size", lambda: prometheus.query('truthstream_state_bytes{family="join entries"} > 0')
    )
    assert sized and prometheus.query('truthstream_state_bytes{family="change detectors"} > 0')
    too_large = next(e for e in rule_expressions()[1] if "truthstream_state_limit_bytes" in e)
    assert prometheus.query(too_large)

    recorded, alerts = rule_expressions()
    for expr in recorded + [label_values_query(e) for e in dashboard_expressions()]:
        assert prometheus.wait(f"series for {expr}", lambda expr=expr: prometheus.query(expr), timeout=30), expr
    for expr in alerts:  # an alert's expression has series only when it fires: it must evaluate, on series
        prometheus.query(expr)
        for name in metric_names(expr):
            assert prometheus.query(name), (expr, name)
