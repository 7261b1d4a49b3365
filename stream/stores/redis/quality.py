"""A window's data-quality parts in Redis: rows appended by APPLY, folded by FOLD, read by QUALITY.

Each partition keeps, per window, a list of the feature rows of its inferences (`q:<window>`) and a
summary of the rows folded so far (`qs:<window>`: the profile `p` and the fold count `n`). When a list
holds a whole fold (`FOLD_ROWS`), the store reads the summary and those rows, folds them in the core
(`QualityPart.folded`) and writes the new summary and trims the list in one compare-and-set on `n`:
whatever happens between, the part stays the sequential profile of its rows.
"""

from __future__ import annotations

import json

from stream.core.dataquality.parts import FOLD_ROWS, QualityPart, fold
from stream.core.windows import WindowKey
from stream.stores.redis import scripts
from stream.stores.redis.codec import text
from stream.stores.redis.partitions import Partitions

MAX_FOLD_TRIES = 10  # compare-and-set attempts of one fold (another worker folding the same part)


class QualityParts:
    """The data-quality parts of windows over the partitions."""

    def __init__(self, partitions: Partitions, safety_ttl: int, segment_cap: int) -> None:
        self.partitions, self.safety_ttl, self.segment_cap = partitions, safety_ttl, segment_cap

    async def read(self, keys: list[WindowKey]) -> list[list[QualityPart]]:
        """Per window, its parts in ascending partition order (a partition without rows gives none)."""
        replies = await self.partitions.run(
            [self.partitions.call(scripts.QUALITY, p, _names(keys)) for p in range(self.partitions.count)]
        )
        out: list[list[QualityPart]] = [[] for _ in keys]
        for per_window in replies:
            for i, (summary, _, rows) in enumerate(per_window):
                if summary or rows:
                    out[i].append(_part(summary, rows))
        return out

    async def fold(self, due: list[tuple[int, WindowKey]]) -> int:
        """Fold the whole folds of these (partition, window) lists; returns the folds written."""
        written = 0
        for partition, window in due:
            for _ in range(MAX_FOLD_TRIES):
                ((summary, folds, rows),) = (
                    await self.partitions.run([self.partitions.call(scripts.QUALITY, partition, _names([window]))])
                )[0]
                part = _part(summary, rows)
                whole = len(part.rows) - len(part.rows) % FOLD_ROWS
                if not whole:
                    break
                new = fold(part.summary, part.rows[:whole], self.segment_cap)
                args = (window.encode(), text(folds) or "0", new, whole, self.safety_ttl)
                (done,) = await self.partitions.run([self.partitions.call(scripts.FOLD, partition, *args)])
                if done:
                    written += 1
                    break
        return written


def _names(keys: list[WindowKey]) -> str:
    return json.dumps([k.encode() for k in keys])


def _part(summary: bytes | None, rows: list[bytes]) -> QualityPart:
    return QualityPart(text(summary) if summary else None, [text(r) or "" for r in rows])
