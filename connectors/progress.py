"""The one progress bar of long commands: on stderr, only when stderr is a terminal (a log file or
a pipe gets none), counted in what the command reads (rows, records, files) against a total
where one is known."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(desc: str, unit: str, total: float | None = None, enabled: bool = True) -> tqdm[Any]:
    """A bar named `desc` counting `unit` (plural: "rows"), disappearing once done."""
    return tqdm(
        desc=desc,
        unit=f" {unit}",
        unit_scale=True,
        total=total,
        leave=False,
        dynamic_ncols=True,
        disable=None if enabled else True,  # None: only on a terminal
    )


def progress_over(items: Iterable[T], desc: str, unit: str, total: float | None = None) -> Iterable[T]:
    """`items`, with a bar that counts them."""
    with progress(desc, unit, total) as bar:
        for item in items:
            yield item
            bar.update(1)
