"""The layers: imports point inward only (core <- stores, worker <- commands), read from the source."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the core may use besides itself and the exception tree: computation, no I/O.
CORE_THIRD_PARTY = {"numpy", "river", "jmespath", "scipy"}
NO_IO_STDLIB = {"os", "pathlib", "socket", "subprocess", "urllib", "http", "asyncio", "tempfile", "shutil"}


def modules(folder: str) -> list[Path]:
    """The Python files of a package folder of the project."""
    return sorted((ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports (absolute names; the project uses no relative imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def name(path: Path) -> str:
    """The dotted module name of a project file."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("path", modules("stream/core"), ids=name)
def test_the_core_imports_no_edge(path: Path) -> None:
    """A core module imports only the core, the exception tree, the stdlib (no I/O), numpy, scipy, river, jmespath."""
    for module in imported(path):
        top = module.split(".")[0]
        if top == "stream":
            assert module.startswith(("stream.core", "stream.errors")), f"{name(path)} imports {module}"
        elif top == "__future__":
            continue
        else:
            assert top in sys.stdlib_module_names or top in CORE_THIRD_PARTY, f"{name(path)} imports {module}"
            assert top not in NO_IO_STDLIB, f"{name(path)} imports {module}, which does I/O"


@pytest.mark.parametrize("path", modules("stream"), ids=name)
def test_the_monitor_never_imports_the_commands_side(path: Path) -> None:
    """Nothing under stream/ imports connectors/ (the commands and the outside world depend on stream, not back)."""
    assert not [m for m in imported(path) if m.split(".")[0] == "connectors"], name(path)


@pytest.mark.parametrize("path", modules("stream/stores"), ids=name)
def test_stores_depend_on_the_core_only(path: Path) -> None:
    """A store knows the state contract and its own database (and the leaf helpers: errors, redaction),
    not the worker or the settings."""
    for module in imported(path):
        if module.split(".")[0] == "stream":
            assert module.startswith(("stream.core", "stream.errors", "stream.redact", "stream.stores")), (
                f"{name(path)} imports {module}"
            )


# What evaluates windows: the engine drives it, a store never calls into it (see stream/core/contract.py).
EVALUATING = {
    "stream.core.engine",
    "stream.core.step",
    "stream.core.outputs",
    "stream.core.change_events",
    "stream.core.metrics",
    "stream.core.intervals",
    "stream.core.estimates",
    "stream.core.changes",
    "stream.core.constraints",
    "stream.core.catalog",
    "stream.core.calibration",
    "stream.core.baseline",
}


def project_imports(module: str) -> set[str]:
    """The project modules `module` imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        path = ROOT / Path(*current.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if not path.exists():
            continue
        for found in imported(path):
            for candidate in (found, found.rpartition(".")[0]):  # `from pkg import module` names both
                if candidate.startswith("stream.") and candidate not in seen:
                    seen.add(candidate)
                    todo.append(candidate)
    return seen


@pytest.mark.parametrize("path", modules("stream/stores"), ids=name)
def test_a_store_imports_nothing_that_evaluates_windows(path: Path) -> None:
    """The store keeps and claims; the core evaluates: no store module reaches, even indirectly, the
    modules that build records, metrics or judgments."""
    reached = project_imports(name(path)) & EVALUATING
    assert not reached, f"{name(path)} reaches {sorted(reached)}"


@pytest.mark.parametrize("path", [p for p in ROOT.rglob("*.py") if ".git" not in p.parts], ids=str)
def test_nothing_imports_a_command(path: Path) -> None:
    """Command modules are loaded by the parser alone (`connectors.cli`, by name)."""
    if path.is_relative_to(ROOT / "connectors" / "commands") or path.parent.name == "build":
        return
    assert not [m for m in imported(path) if m.startswith("connectors.commands.")], path


def test_every_command_has_its_module_with_flags_and_run() -> None:
    """Each command of the program is one module with HELP, DESCRIPTION, add_arguments and run."""
    import importlib

    from connectors.cli import COMMANDS

    files = {p.stem for p in modules("connectors/commands")} - {"__init__"}
    assert files == set(COMMANDS)
    for command in COMMANDS:
        module = importlib.import_module(f"connectors.commands.{command}")
        assert all(hasattr(module, a) for a in ("HELP", "DESCRIPTION", "add_arguments", "run")), command


def test_the_parser_loads_no_heavy_library() -> None:
    """Building the parser (and so `truthstream --help`) imports no Faust, pandas, river, Kafka or Redis client."""
    import subprocess

    heavy = ("faust", "pandas", "river", "kafka", "aiokafka", "redis", "boto3")
    code = (
        "import sys; from connectors.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_every_module_of_the_monitor_is_short_enough_to_read_in_one_sitting() -> None:
    """No module under stream/ is longer than 400 lines."""
    long = {name(p): n for p in modules("stream") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
