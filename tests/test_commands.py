"""Every command against the failures a user meets in the first hour: mistyped commands and flags,
values out of range, missing and unwritable paths, closed ports, a closed pipe, Ctrl-C. Each gives
the documented exit code (connectors.exits), exactly one line on stderr and no traceback; the
commands run as the user runs them, in processes of their own (all at once: several wait out a
broker that does not answer)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors import exits
from connectors.cli import build_parser, describe, did_you_mean
from connectors.embedded import free_port
from stream.errors import InputError

CLI = [sys.executable, "-m", "connectors.cli"]


@dataclass
class Case:
    """A command line, the exit code it must end with and words its one stderr line must hold."""

    argv: list[str]
    code: int
    says: str


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (to the commands: a reachable broker, or a port already taken)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def labelled_csv(path: Path, rows: int = 300) -> Path:
    """A binary model's labelled rows, about 75% accurate."""
    rng = random.Random(1)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "prediction", "probability"])
        for _ in range(rows):
            p = rng.random()
            out.writerow([int(rng.random() < p), int(p > 0.5), round(p, 3)])
    return path


def run_all(cases: list[Case], cwd: Path) -> list[tuple[Case, subprocess.CompletedProcess[str]]]:
    """Run every case at once and wait for all of them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUTHSTREAM_")}
    procs = [
        (case, subprocess.Popen([*CLI, *case.argv], cwd=cwd, env=env, text=True, stdout=-1, stderr=-1))
        for case in cases
    ]
    done = []
    for case, proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append((case, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
    return done


def test_every_command_fails_with_one_line_and_its_exit_code(tmp_path: Path, listening: int) -> None:
    """The failures of the first hour, command by command."""
    data = labelled_csv(tmp_path / "data.csv")
    columns = ["--inference-attribute", "prediction", "--ground-truth-attribute", "label"]
    blocked = tmp_path / "a-file"
    blocked.write_text("in the way of a directory")
    strict = tmp_path / "strict.json"  # accuracy >= 0.99: the data set violates it
    strict.write_text(
        json.dumps(
            {
                "version": 0.0,
                "binary_classification_constraints": {
                    "accuracy": {"threshold": 0.99, "comparison_operator": "LessThanThreshold"}
                },
            }
        )
    )
    closed = f"kafka://127.0.0.1:{free_port()}"
    baseline = ["baseline", str(data), "--problem-type", "BinaryClassification", *columns]
    check = ["check", str(data), *columns, "--constraints", str(strict)]
    cases = [
        Case(["chek"], exits.USAGE, "did you mean check?"),
        Case([], exits.USAGE, "COMMAND"),
        Case([*check, "--outptu-dir", "out"], exits.USAGE, "did you mean --output-dir?"),
        Case([*baseline, "--problem-type", "Binary", "--output-dir", "b"], exits.USAGE, "BinaryClassification?"),
        Case([*baseline, "--output-dir", "b", "--margin-stds", "-3"], exits.USAGE, "must be >= 0"),
        Case([*baseline, "--output-dir", str(blocked / "out")], exits.USAGE, "cannot write"),
        Case(["baseline", "missing.csv", "--problem-type", "Regression", *columns, "--output-dir", "b"], 2, "missing"),
        Case([*check, "--output-dir", "ok"], exits.VIOLATIONS, ""),  # the one exit code that judges data
        Case([*check, "--output-dir", str(blocked / "out")], exits.USAGE, "cannot write"),  # never 1
        Case([*check[:-1], "missing.json", "--output-dir", "c"], exits.USAGE, "missing.json"),
        Case([*check, "--output-dir", "c", "--confidence-level", "95"], exits.USAGE, "--confidence-level"),
        Case(["worker", "--redis-url", "http://127.0.0.1:1/0"], exits.USAGE, "redis://"),
        Case(["worker", "--broker", closed, "--redis-url", f"redis://127.0.0.1:{free_port()}/0"], 2, "Redis"),
        Case(["violations", "--broker", closed], exits.USAGE, "no Kafka broker answers"),
        Case(["violations", "--broker", closed, "--from", "last week"], exits.USAGE, "--from"),
        Case(["dashboard", "--broker", closed], exits.USAGE, "no Kafka broker answers"),
        Case(["dashboard", "--port", "99999"], exits.USAGE, "--port"),
        Case(["dashboard", "--broker", f"kafka://127.0.0.1:{listening}", "--port", str(listening)], 2, "--port"),
        Case(["replay", "--broker", closed], exits.USAGE, "no Kafka broker answers"),
        Case(["replay", "--out", str(tmp_path / "no" / "dir.csv")], exits.USAGE, "does not exist"),
        Case(["replay", "--plot", "chart.gif"], exits.USAGE, ".png or .html"),
        Case(["replay", "--processes", "0"], exits.USAGE, "must be > 0"),
        Case(["ingest", "tabel"], exits.USAGE, "did you mean table?"),
        Case(["ingest", "table", "missing.csv", "--event-id-column", "id", "--broker", closed], 2, "--label-column"),
        Case(["sink", "webhook", "http://127.0.0.1:1/", "--max-attempts", "-1"], exits.USAGE, "must be >= 0"),
        Case(["up", "--workers", "0"], exits.USAGE, "must be > 0"),
        Case(["demo", "--events", "0"], exits.USAGE, "must be > 0"),
    ]
    for case, done in run_all(cases, tmp_path):
        assert done.returncode == case.code, (case, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (case, done.stderr)
        if case.code == exits.VIOLATIONS:
            assert "CompletedWithViolations" in done.stdout and not done.stderr, (case, done.stdout, done.stderr)
            continue
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (case, done.stderr)
        assert case.says in lines[0], (case, lines[0])
        assert lines[0].startswith("truthstream"), (case, lines[0])


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    """--debug, before or after the command's name, shows where an error came from."""
    argv = ["baseline", "missing.csv", "--problem-type", "Regression", "--inference-attribute", "p"]
    argv += ["--ground-truth-attribute", "y", "--output-dir", "out"]
    for line in (["--debug", *argv], [*argv, "--debug"]):
        done = subprocess.run([*CLI, *line], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == exits.USAGE
        assert "Traceback" in done.stderr and done.stderr.strip().splitlines()[-1].startswith("truthstream: error:")


@pytest.mark.parametrize("command", ["baseline", "check"])
def test_a_closed_pipe_ends_quietly(tmp_path: Path, command: str) -> None:
    """`truthstream ... | head` when head has gone: no traceback, no message, the exit code of a Unix
    filter whose pipe closed (whatever the judgement `check` was about to print)."""
    data = labelled_csv(tmp_path / "data.csv")
    columns = ["--inference-attribute", "prediction", "--ground-truth-attribute", "label"]
    argv = ["baseline", str(data), "--problem-type", "BinaryClassification", *columns, "--output-dir", "b"]
    subprocess.run([*CLI, *argv], cwd=tmp_path, capture_output=True, check=True, timeout=60)
    if command == "check":
        argv = ["check", str(data), *columns, "--constraints", "b/constraints.json", "--output-dir", "c"]
    read, write = os.pipe()
    os.close(read)  # the reader went away before anything was written
    try:
        proc = subprocess.Popen([*CLI, *argv], cwd=tmp_path, stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == exits.PIPE, err
    assert err == ""


def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path, listening: int) -> None:
    """A command that runs until interrupted (the dashboard) ends on Ctrl-C with 130."""
    port = free_port()
    argv = ["dashboard", "--broker", f"kafka://127.0.0.1:{listening}", "--port", str(port), "--from", "0"]
    proc = subprocess.Popen([*CLI, *argv], cwd=tmp_path, stdout=-1, stderr=-1, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == exits.INTERRUPTED, (out, err)
    assert "Traceback" not in err and "truthstream dashboard on" in out


def test_did_you_mean() -> None:
    """A close word, or the only one a prefix begins; nothing for a word far from all."""
    assert did_you_mean("chek", ["check", "baseline"]) == " (did you mean check?)"
    assert did_you_mean("Multi", ["BinaryClassification", "MulticlassClassification"]).endswith("Classification?)")
    assert did_you_mean("--frobnicate", ["--format", "--output-dir"]) == ""


def test_errors_map_to_the_contract() -> None:
    """Ours and the services' errors are 2; anything else is a bug, 70, said as one."""
    assert describe(InputError("x")) == (exits.USAGE, "x")
    assert describe(PermissionError(13, "Permission denied", "/etc/x"))[0] == exits.USAGE
    code, line = describe(ZeroDivisionError("division by zero"))
    assert code == exits.INTERNAL and "--debug" in line


def test_every_command_has_help_of_its_own() -> None:
    """No two commands share a description, and every flag says what it is for."""
    parser = build_parser()
    descriptions = [child.description for child in parser.commands.values()]
    assert len(set(descriptions)) == len(descriptions)
    parsers = list(parser.commands.items())
    while parsers:
        name, child = parsers.pop()
        for action in child._actions:
            assert action.help, (name, action.option_strings or action.dest)
            if isinstance(action, argparse._SubParsersAction):
                parsers += [(f"{name} {kind}", sub) for kind, sub in action.choices.items()]


def test_windows_print_at_their_own_resolution() -> None:
    """`up` prints a 10-second window with its seconds, an hour's to the minute."""
    from connectors.watch import window_line

    def line(start: str, end: str) -> str:
        window = {"kind": "tumbling", "start": start, "end": end}
        return window_line({"window": window, "model": "m", "model_version": "", "sample_count": 3, "status": "ok"})

    assert line("2026-12-07T01:24:10Z", "2026-12-07T01:24:20Z").startswith("2026-12-07 01:24:10 .. 01:24:20 ")
    assert line("2026-12-07T01:00:00Z", "2026-12-07T02:00:00Z").startswith("2026-12-07 01:00 .. 02:00 ")
