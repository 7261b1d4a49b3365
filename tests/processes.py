"""The processes a test started, followed by PID (and start time, so a reused PID is not mistaken
for one of them): what a leftover check looks at instead of every process on the host."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent PID, state, start time) of a live process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every live process under `root` (children, theirs, ...), with its start time."""
    parents: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
            started[int(entry.name)] = stat[2]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found and child in started:
                found[child] = started[child]
                todo.append(child)
    return found


def still_running(seen: dict[int, str]) -> list[int]:
    """The processes of `seen` that are still alive (not zombies), the same processes as seen."""
    alive = []
    for pid, start in seen.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == start and stat[1] != "Z":
            alive.append(pid)
    return alive


def watch(proc: subprocess.Popen[str], timeout: float, every: float = 0.5) -> dict[int, str]:
    """Wait for `proc` to end (at most `timeout` s), noting every process it started meanwhile."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"{proc.args} still running after {timeout} s")
        seen.update(descendants(proc.pid))
        time.sleep(every)
    return seen
