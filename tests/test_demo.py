"""`truthstream demo` runs end to end on its embedded services and leaves nothing behind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.processes import still_running, watch

pytestmark = pytest.mark.integration  # starts embedded Kafka and Redis


def test_demo_reports_the_drift_and_cleans_up() -> None:
    """The demo prints every window, flags only the windows after the drift, exits 0 and stops its services."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "demo", "--events", "3000", "--duration", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with ThreadPoolExecutor(1) as pool:  # read its output meanwhile, so that it never blocks on a full pipe
        output = pool.submit(proc.communicate)
        started = watch(proc, timeout=240)
        stdout, stderr = output.result()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(started) >= 3  # the embedded broker, Redis and a worker at least
    rows = re.findall(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d) \+10m\s+(\d+)\s.*\s(ok|violations)$", done.stdout, re.M)
    assert len(rows) == 5, done.stdout
    assert all(int(n) == 600 for _, n, _ in rows)
    statuses = [status for _, _, status in rows]
    # 3000 predictions, drift at the 1500th: the middle window straddles it.
    assert statuses[:2] == ["ok", "ok"] and statuses[3:] == ["violations", "violations"], done.stdout
    assert "5 windows published" in done.stdout
    ports = [int(p) for p in re.findall(r"//127\.0\.0\.1:(\d+)", done.stdout.splitlines()[0])]
    assert len(ports) == 2
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after the demo"
    assert still_running(started) == [], "processes the demo started are still running"
