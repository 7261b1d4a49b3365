"""What every setting is made of: a field with its help and group, the names a user gives it, and
how a text from the environment or a flag becomes its value."""

from __future__ import annotations

from dataclasses import Field, field
from pathlib import Path
from typing import Any

from stream.errors import ConfigError

ENV_PREFIX = "TRUTHSTREAM_"
# Settings come in groups; a command takes the groups it uses, shown under these titles in --help.
GROUPS = {
    "kafka": "Kafka",
    "inputs": "input topics",
    "outputs": "output topics",
    "app": "application",
    "redis": "Redis state",
    "models": "models and constraints",
    "windows": "windows and metrics",
    "limits": "limits on input and state",
    "capture": "SageMaker capture records on the inference topic",
    "worker": "worker",
}
TRUE = ("on", "true", "1", "yes")
FALSE = ("off", "false", "0", "no")


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A settings field: its default, the help text shown by `--help` and in the docs, its `group`
    (see GROUPS), and optionally `choices`, `aliases` (older names) and `secret` (never printed)."""
    return field(default=default, metadata={"help": help, **extra})


def setting_name(name: str) -> str:
    """How a user may have given a setting: its flag and its variable, as errors name it."""
    return f"--{name.replace('_', '-')} / {ENV_PREFIX}{name.upper()}"


def switch(text: str) -> bool:
    """An on/off setting's value: on, true, 1, yes or off, false, 0, no (any case).

    >>> switch("on"), switch("Yes"), switch("0")
    (True, True, False)
    """
    word = text.strip().lower()
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    raise ValueError(f"not on/off: {text!r}")


def shown(value: Any) -> str:
    """A setting's value as a user writes it (on/off for a switch)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return repr(value)


def convert(name: str, kind: Any, raw: str) -> Any:
    """The value of setting `name` (of type `kind`, as annotated) given as text."""
    try:
        if str(kind) == "int":
            return int(raw)
        if str(kind) == "float":
            return float(raw)
        if str(kind) == "bool":
            return switch(raw)
    except ValueError:
        expected = "on or off (true/false, 1/0, yes/no)" if str(kind) == "bool" else f"a {kind}"
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not {expected}") from None
    return raw


def read_secret_file(variable: str, path: str) -> str:
    """A setting's value from the file a `*_FILE` variable names (Docker and Kubernetes secrets)."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror})") from None


def flag_type(f: Field[Any]) -> Any:
    """What argparse turns a flag's text into."""
    return {"int": int, "float": float, "bool": switch}.get(str(f.type), str)
