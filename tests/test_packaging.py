"""The files a user deploys with: docker-compose.yml, the Dockerfile and the sample constraints."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from stream.constraint_files import load_constraint_map
from stream.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_runs_kafka_redis_and_a_worker_with_real_settings() -> None:
    """Every TRUTHSTREAM_* variable the compose file sets is a real setting, and the services are wired."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "redis", "worker"}
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    worker = services["worker"]
    assert worker["build"] == "." and (ROOT / "Dockerfile").exists()
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    assert set(worker["environment"]) <= known
    env = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in worker["environment"].items()}
    assert Settings(**{k: v for k, v in env.items() if k in ("broker", "redis_url", "constraints")})
    assert env["broker"] == "kafka://kafka:29092" and env["redis_url"].startswith("redis://redis:")
    assert set(worker["depends_on"]) == {"kafka", "redis"}


def test_sample_constraints_load() -> None:
    """The sample constraints directory mounted by the compose file is valid."""
    default, per_model = load_constraint_map(str(ROOT / "constraints"))
    assert default is None and per_model["churn"].problem_type == "BinaryClassification"
