"""`truthstream demo` runs end to end on its embedded services and leaves nothing behind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # starts embedded Kafka and Redis


def test_demo_reports_the_drift_and_cleans_up() -> None:
    """The demo prints every window, flags only the windows after the drift, exits 0 and stops its services."""
    done = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "demo", "--events", "3000", "--duration", "8"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
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
    worker = subprocess.run(
        ["pgrep", "-f", "connectors.cli --log-level warning worker"], capture_output=True, text=True
    )
    assert worker.stdout == ""
