"""The files a user deploys with: docker-compose.yml, the Dockerfile and the sample constraints."""

from __future__ import annotations

import json
import subprocess
from dataclasses import fields
from pathlib import Path

import yaml

from stream.constraint_files import load_constraint_map
from stream.settings import ENV_PREFIX, Settings
from tests.conftest import debian_program

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_runs_kafka_redis_and_a_worker_with_real_settings() -> None:
    """Every TRUTHSTREAM_* variable the compose file sets is a real setting, and the services are wired."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "worker", "prometheus", "grafana"}
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    worker = services["worker"]
    assert worker["build"] == "." and (ROOT / "Dockerfile").exists()
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    assert set(worker["environment"]) <= known
    # every value is one the worker accepts (from_env checks each as the worker does at start-up)
    parsed = Settings.from_env({k: str(v) for k, v in worker["environment"].items()})
    assert parsed.broker == "kafka://kafka:29092" and parsed.redis_url.startswith("redis://redis:")
    assert parsed.constraints == "/constraints"
    assert set(worker["depends_on"]) == {"kafka", "redis"}


def test_compose_file_wires_prometheus_and_grafana_to_the_repositorys_files() -> None:
    """Prometheus scrapes the worker's metrics port and loads the rules file; Grafana gets the
    datasource the dashboard names and the dashboard itself; every mounted file exists."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source, target, _ = volume.split(":")
            assert (ROOT / source).is_file(), source
            mounts[target] = ROOT / source
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert config["rule_files"] == ["/etc/prometheus/truthstream-rules.yml"]
    assert "/etc/prometheus/truthstream-rules.yml" in mounts
    port = services["worker"]["environment"]["TRUTHSTREAM_METRICS_PORT"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == [f"worker:{port}"]
    datasource = yaml.safe_load(mounts["/etc/grafana/provisioning/datasources/truthstream.yml"].read_text())
    dashboard = json.loads(mounts["/var/lib/grafana/dashboards/truthstream-dashboard.json"].read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {datasource["datasources"][0]["uid"]}
    provider = yaml.safe_load(mounts["/etc/grafana/provisioning/dashboards/truthstream.yml"].read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_sample_constraints_load() -> None:
    """The sample constraints directory mounted by the compose file is valid."""
    default, per_model = load_constraint_map(str(ROOT / "constraints"))
    assert default is None and per_model["churn"].problem_type == "BinaryClassification"


def test_promtool_accepts_the_rules() -> None:
    """The alerting and recording rules are valid for Prometheus (`promtool check rules`)."""
    promtool = debian_program("promtool", "prometheus")
    rules = ROOT / "connectors" / "monitoring" / "truthstream-rules.yml"
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 18 rules found" in checked.stdout


def test_a_data_quality_violation_fires_its_own_alert_and_not_the_model_quality_one(tmp_path: Path) -> None:
    """`promtool test rules`: violations of feature_baseline_drift_income fire
    TruthstreamDataQualityViolated, and recall's fire TruthstreamConstraintViolated, each alone."""
    promtool = debian_program("promtool", "prometheus")
    rules = ROOT / "connectors" / "monitoring" / "truthstream-rules.yml"
    series = 'truthstream_violations_total{{model="churn",model_version="1",metric="{}"}}'
    fired = (
        "exp_alerts:\n"
        "          - exp_labels: {{severity: warning, model: churn, model_version: '1', metric: {}}}\n"
        "            exp_annotations:\n"
        "              summary: {}\n"
        "              description: {}\n"
    )
    drift = "feature_baseline_drift_income"
    test = f"""rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{series.format(drift)}'
        values: '0 1 2 3 4 5'
      - series: '{series.format("recall")}'
        values: '0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 5m
        alertname: TruthstreamConstraintViolated
        exp_alerts: []
      - eval_time: 5m
        alertname: TruthstreamDataQualityViolated
        {
        fired.format(
            drift,
            f"'churn 1: the inputs broke {drift}'",
            f"'5 data-quality violations ({drift}) in the last 15 minutes: the model''s inputs moved away "
            "from its baseline (the violations topic has SageMaker''s wording).'",
        )
    }"""
    path = tmp_path / "test.yml"
    path.write_text(test)
    checked = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_package_list_names_every_package_and_ships_the_lua_scripts() -> None:
    """pyproject's explicit package list misses no package folder, and its package data takes every
    Lua script of the Redis store (an install that is not editable would run without them)."""
    import tomllib

    from setuptools import find_packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(ROOT), include=["stream*", "connectors*"]))
    assert set(project["packages"]) == found
    scripts = ROOT / "stream" / "stores" / "redis"
    shipped = {p for pattern in project["package-data"]["stream.stores.redis"] for p in scripts.glob(pattern)}
    assert shipped == set(scripts.glob("scripts/*.lua")) and len(shipped) > 10
