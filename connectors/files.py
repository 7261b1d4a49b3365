"""Output files written all at once: a failed run leaves none of them behind, half-written or not."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
