"""Closing windows in Redis: seal the parts, hand them merged to the engine, claim its records.

A window closes in three steps, each safe to repeat: every partition seals its part (SEAL, with its
counters), the engine evaluates the merged parts and the owner partition of the window's model
version queues its records and marks it closed there, only once and only if the model version's
change detectors are still as read (CLAIM: compare-and-set), and the sealed parts are dropped
(CLEANUP). Provisional records are claimed the same way (PROVISIONAL), from parts read as they are.
"""

from __future__ import annotations

import json
import zlib

from stream.core.aggregate import WindowAggregate
from stream.core.contract import (
    FINAL,
    PROVISIONAL,
    Claim,
    ClaimResult,
    DetectorStates,
    SealedWindow,
    Stage,
    merge_counts,
    merge_parts,
    window_order,
)
from stream.core.windows import WindowKey
from stream.stores.redis import scripts
from stream.stores.redis.codec import counters, text
from stream.stores.redis.outbox import rows
from stream.stores.redis.partitions import Partitions

STAMP = {FINAL: "#end", PROVISIONAL: "#pend"}  # the detectors' field a claim of each stage checks
NOTE = "~drifted"  # a sealed part's field: the provisional claim's note (the owner partition's part)


class Windows:
    """Window closing and provisional records over the partitions."""

    def __init__(self, partitions: Partitions, resolution: float, label_ttl: float, safety_ttl: int) -> None:
        self.partitions, self.resolution = partitions, resolution
        self.label_ttl, self.safety_ttl = label_ttl, safety_ttl

    def owner(self, model_key: str) -> int:
        """The partition whose outbox and change detectors serve a model version's windows."""
        return zlib.crc32(model_key.encode()) % self.partitions.count

    async def open_windows(self, until: float) -> list[WindowKey]:
        """Windows with a part ending at or before `until` in some partition, or sealed, oldest first."""
        keys = self.partitions.keys
        reads = []
        for p in range(self.partitions.count):
            reads.append(lambda pipe, p=p: pipe.zrangebyscore(keys.of(p, "open"), "-inf", until))
            reads.append(lambda pipe, p=p: pipe.zrange(keys.of(p, "sealed"), 0, -1))
        found = {text(k) or "" for names in await self.partitions.run([], reads) for k in names}
        return sorted(map(WindowKey.decode, found), key=window_order)

    async def seal(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """Seal the windows in every partition; each one not closed yet, its parts merged with its counts."""
        seal = json.dumps(
            {
                "windows": [k.encode() for k in keys],
                "models": [k.model for k in keys],
                "keys": [k.model_key for k in keys],
                "ends": [repr(k.end) for k in keys],
            }
        )
        calls = [self.partitions.call(scripts.SEAL, p, seal) for p in range(self.partitions.count)]
        sealed = await self.partitions.run(calls)
        out = []
        for i, key in enumerate(keys):
            parts = [replies[i] for replies in sealed]
            if any(part is None for part in parts):  # closed already: only the cleanup is left
                continue
            aggregates: list[WindowAggregate] = []
            counts: dict[str, int] = {}
            drifted = None
            for part in parts:
                note = _take(part, NOTE)
                drifted = json.loads(note) if note is not None else drifted
                fields = counters(part)
                counts = merge_counts(counts, {f[1:]: n for f, n in fields.items() if f.startswith("#") and f != "#"})
                aggregates.append(
                    WindowAggregate(self.resolution, {f: n for f, n in fields.items() if not f.startswith("#")})
                )
            out.append(SealedWindow(key, merge_parts(self.resolution, aggregates), counts, drifted=drifted))
        return out

    async def provisional_due(self, until: float) -> list[WindowKey]:
        """Windows listed for a provisional record in some partition, ending at or before `until`, oldest first."""
        keys = self.partitions.keys
        reads = [
            lambda pipe, p=p: pipe.zrangebyscore(keys.of(p, "pv"), "-inf", until) for p in range(self.partitions.count)
        ]
        found = {text(k) or "" for names in await self.partitions.run([], reads) for k in names}
        return sorted(map(WindowKey.decode, found), key=window_order)

    async def provisional_state(self, keys: list[WindowKey]) -> list[SealedWindow]:
        """The windows' parts of every partition, merged (the windows stay open; the claim skips one
        closed or published provisionally already)."""
        keys = sorted(keys, key=lambda k: (k.end, k.start))
        names = [f"w:{k.encode()}" for k in keys]
        parts = await self.partitions.hashes({p: names for p in range(self.partitions.count)})
        return [
            SealedWindow(
                key,
                merge_parts(
                    self.resolution,
                    (WindowAggregate(self.resolution, counters(parts[p][i])) for p in range(self.partitions.count)),
                ),
            )
            for i, key in enumerate(keys)
        ]

    async def unlist_provisional(self, keys: list[WindowKey]) -> None:
        """Take the windows off every partition's list."""
        names = json.dumps([k.encode() for k in sorted(keys, key=lambda k: (k.end, k.start))])
        calls = [self.partitions.call(scripts.UNLIST_PROVISIONAL, p, names) for p in range(self.partitions.count)]
        await self.partitions.run(calls)

    async def detectors(self, models: list[str], stage: Stage) -> dict[str, DetectorStates]:
        """Each model version's change detectors, from its owner partition, with the claim's stamp."""
        owned: dict[int, list[str]] = {}
        for model_version in models:
            owned.setdefault(self.owner(model_version), []).append(model_version)
        names = {p: [f"cd:{model_version}" for model_version in versions] for p, versions in owned.items()}
        found = await self.partitions.hashes(names)
        out = {}
        for p, versions in owned.items():
            for model_version, flat in zip(versions, found[p]):
                fields = {text(f) or "": text(v) or "" for f, v in zip(flat[::2], flat[1::2])}
                states = {name: state for name, state in fields.items() if not name.startswith("#")}
                out[model_version] = DetectorStates(states, fields.get(STAMP[stage], ""))
        return out

    async def claim(self, claims: list[Claim], stage: Stage) -> ClaimResult:
        """Claim each model version's windows in its owner partition (see the module's docstring)."""
        groups: dict[int, list[dict[str, object]]] = {}
        for claim in claims:
            group: dict[str, object] = {
                "model": claim.model_key,
                "expect": claim.expect,
                "windows": [w.key.encode() for w in claim.windows],
                "ends": [repr(w.key.end) for w in claim.windows],
                "rows": [rows(w.outputs) for w in claim.windows],
                "notes": [w.note for w in claim.windows],
                "detectors": [x for item in claim.detectors.items() for x in item],
                "fed_to": repr(claim.fed_to),
            }
            groups.setdefault(self.owner(claim.model_key), []).append(group)
        script = scripts.CLAIM if stage == FINAL else scripts.PROVISIONAL
        calls = [
            self.partitions.call(script, p, json.dumps({"groups": g, "ttl": self.safety_ttl}))
            for p, g in groups.items()
        ]
        result = ClaimResult()
        for taken, conflicts in await self.partitions.run(calls):
            if stage == FINAL:
                result.windows += int(taken)
            else:
                result.records += int(taken)
            result.conflicts.update(text(m) or "" for m in conflicts)
        return result

    async def finish(self, keys: list[WindowKey]) -> None:
        """Drop the sealed parts in every partition, with their provisional markers."""
        if not keys:
            return
        cleanup = json.dumps(
            {
                "windows": [k.encode() for k in keys],
                "keys": [k.model_key for k in keys],
                "ends": [repr(k.end) for k in keys],
                "ttl": self.safety_ttl,
            }
        )
        await self.partitions.run(
            [self.partitions.call(scripts.CLEANUP, p, cleanup) for p in range(self.partitions.count)]
        )


def _take(flat: list[bytes], name: str) -> str | None:
    """Remove the field `name` from a flat HGETALL reply; its value, if it was there."""
    for i in range(0, len(flat), 2):
        if text(flat[i]) == name:
            value = text(flat[i + 1])
            del flat[i : i + 2]
            return value
    return None
