"""How a split replay starts its processes, and how many it uses by default (the replays themselves
run in tests/integration/test_replay.py, on real brokers)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from connectors.replay_split import start_method

ROOT = Path(__file__).resolve().parent.parent


def _in_fresh_python(code: str, *prefix: str) -> str:
    done = subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout.strip()


def test_processes_are_forked_only_while_no_thread_runs() -> None:
    """A command that runs no thread forks its replay processes (they start with the core imported);
    one whose thread a fork would copy mid-flight spawns them."""
    assert _in_fresh_python("from connectors.replay_split import start_method; print(start_method())") == "fork"
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert start_method() == "spawn"
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs util-linux's taskset")
def test_the_default_process_count_is_the_cores_the_command_may_use() -> None:
    """`replay`'s default --processes follows the CPU affinity (a taskset, a container's cpuset),
    not the machine's core count."""
    code = "from connectors.replay_split import usable_cores; print(usable_cores())"
    assert _in_fresh_python(code, "taskset", "-c", "0") == "1"
