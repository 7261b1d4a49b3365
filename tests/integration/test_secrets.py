"""Secrets never printed: a worker, ingest, replay, the webhook sink, the violations reader and the
usual configuration mistakes run with passwords set, and none of their output holds one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from connectors.embedded import embedded_redis
from tests.integration.conftest import Deployment
from tests.integration.test_connectors import produce_windows

pytestmark = [pytest.mark.integration, pytest.mark.kafka_sasl, pytest.mark.slow]

REDIS_PASSWORD = "redis-Pw-91c2d7"
WEBHOOK_PASSWORD = "hook-Pw-5e0a77"
KEY_PASSWORD = "key-Pw-0b3f19"


class Refusing(BaseHTTPRequestHandler):
    """An endpoint that always answers 503."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


def worker_logs(deployment: Deployment) -> str:
    """Everything the deployment's workers wrote."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(deployment.logs.glob("worker-*.log")))


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """Run a truthstream command; its stdout and stderr together."""
    done = subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return done.stdout + done.stderr


def test_no_output_of_any_command_holds_a_secret(deployment: Deployment, tmp_path: Path) -> None:
    """Passwords in the Redis URL (userinfo and query), the Kafka settings, a key password and a webhook
    URL are set for every run; the outputs are grepped for each of them."""
    secrets = [REDIS_PASSWORD, WEBHOOK_PASSWORD, KEY_PASSWORD]
    env = {**os.environ, "TRUTHSTREAM_KAFKA_SSL_KEY_PASSWORD": KEY_PASSWORD}
    if env.get("TRUTHSTREAM_KAFKA_SASL_PASSWORD_FILE"):  # the SASL_SSL run: its real password too
        secrets.append(Path(env["TRUTHSTREAM_KAFKA_SASL_PASSWORD_FILE"]).read_text().strip())
    elif not env.get("TRUTHSTREAM_KAFKA_SASL_PASSWORD"):
        env["TRUTHSTREAM_KAFKA_SASL_PASSWORD"] = "kafka-Pw-unused-4d1e"
        secrets.append(env["TRUTHSTREAM_KAFKA_SASL_PASSWORD"])
    outputs: dict[str, str] = {}
    with embedded_redis(None, "--requirepass", REDIS_PASSWORD) as url:
        deployment.redis_url = url.replace("redis://", f"redis://:{REDIS_PASSWORD}@")
        os.environ["TRUTHSTREAM_KAFKA_SSL_KEY_PASSWORD"] = KEY_PASSWORD  # the workers too
        try:
            produce_windows(deployment, tmp_path)
        finally:
            del os.environ["TRUTHSTREAM_KAFKA_SSL_KEY_PASSWORD"]
        deployment.stop()
        outputs["worker"] = worker_logs(deployment)
        deployment.workers.clear()  # stopped on purpose; the next worker's log replaces this one
        assert "truthstream worker ready" in outputs["worker"]
        common = ["--broker", deployment.broker]
        table = tmp_path / "t.csv"
        table.write_text("id,ts,pred,y\na,2025-11-24T16:00:00Z,1,1\n")
        outputs["ingest"] = cli(
            env, "ingest", "table", str(table), "--event-id-column", "id", "--model", "m", "--time-column", "ts",
            "--prediction-column", "pred", "--label-column", "y", *common,
            "--inference-topic", deployment.topic("inferences"), "--label-topic", deployment.topic("labels"),
        )  # fmt: skip
        outputs["replay"] = cli(
            env, "replay", *common, "--inference-topic", deployment.topic("inferences"),
            "--label-topic", deployment.topic("labels"), "--window-seconds", "60", "--label-grace", "30",
        )  # fmt: skip
        assert "closed windows" in outputs["replay"]
        server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            hook = f"http://alerts:{WEBHOOK_PASSWORD}@127.0.0.1:{server.server_address[1]}/hook"
            outputs["webhook"] = cli(
                env, "sink", "webhook", hook, "--once", "--max-attempts", "2", *common,
                "--violations-topic", deployment.topic("violations"), "--app-id", deployment.name,
            )  # fmt: skip
        finally:
            server.shutdown()
        assert "failed 2 times" in outputs["webhook"] and "alerts:***@" in outputs["webhook"]
        outputs["violations"] = cli(
            env, "violations", "--json", *common, "--violations-topic", deployment.topic("violations"), timeout=120
        )
        outputs["wrong redis password"] = cli(
            {**env, "TRUTHSTREAM_REDIS_URL": url.replace("redis://", "redis://:not-it-" + REDIS_PASSWORD + "@")},
            "worker", "--broker", deployment.broker, timeout=60,
        )  # fmt: skip
        assert "refuses the user or password" in outputs["wrong redis password"]
        deployment.redis_url = url + f"?password={REDIS_PASSWORD}"  # the other place a URL holds one
        deployment.configure(window_seconds=60.0)
        deployment.start_worker()
        deployment.wait_for("the worker to start", lambda: "truthstream worker ready" in worker_logs(deployment))
        deployment.stop()
        outputs["worker, password in the query"] = worker_logs(deployment)
    outputs["broker credentials"] = cli(
        {**env, "TRUTHSTREAM_BROKER": f"kafka://u:{REDIS_PASSWORD}@h:1,kafka://u:{WEBHOOK_PASSWORD}@h:2"}, "worker"
    )
    assert "holds credentials" in outputs["broker credentials"]
    leaks = {name: [s for s in secrets if s in text] for name, text in outputs.items()}
    assert all(not found for found in leaks.values()), json.dumps(leaks)
