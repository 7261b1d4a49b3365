"""Output files written all at once: a failed run leaves none of them behind, half-written or not."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stream.errors import OutputError


@contextlib.contextmanager
def atomic_files(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths beside `targets` to write; when the block succeeds each replaces its
    target (with the permissions a new file would get), and when it fails none does."""
    temps: list[Path] = []
    try:
        for target in targets:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
            os.close(fd)
            temps.append(Path(name))
        yield temps
        umask = os.umask(0)
        os.umask(umask)
        for temp, target in zip(temps, targets):
            os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def output_dir(path: str | Path, flag: str = "--output-dir") -> Path:
    """The directory a command writes into, created if needed and tried with a file, before any
    work is done: a path that cannot be written is refused up front, not after an hour of reading."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write there: {exc.strerror or exc}") from None
    return out


@contextlib.contextmanager
def writing(what: Path | str) -> Iterator[None]:
    """Turn an OSError raised while writing `what` into an OutputError naming it."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {what}: {exc.strerror or exc}") from None


def _indented(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


def write_json_files(docs: dict[str, Any], out_dir: Path, render: Callable[[Any], str] = _indented) -> None:
    """Write each document as `out_dir/NAME` (indented JSON, or as `render` writes it), all of
    them or none."""
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_files(*(out_dir / name for name in docs)) as temps:
            for temp, doc in zip(temps, docs.values()):
                temp.write_text(render(doc), encoding="utf-8")
