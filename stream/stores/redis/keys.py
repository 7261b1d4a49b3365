"""The Redis store's key layout, in one place (key layout 3).

Every key of an input partition starts with the partition's base `B` = `<prefix>:{<prefix>:<p>}`,
whose hash tag puts all of them in one cluster slot; the Lua scripts build the names below from
`B` (their `ARGV[1]`). `tests/test_redis_keys.py` holds this table against the keys the scripts
and the store really touch.

| key                 | type       | holds                                                                  |
|---------------------|------------|------------------------------------------------------------------------|
| B:meta              | hash       | linear hashing level `L` and split `s`, entries `n`, version `v`,       |
|                     |            | layout, waiting inferences `pi` and labels `pl`                         |
| B:e:<bucket>        | hash       | 12-byte id digest -> packed join entry (`codec`), ~40 per bucket        |
| B:L:<digest>        | string     | a pending label too long for its bucket (the bucket holds `P`)          |
| B:m                 | hash       | model reference -> model version (entries name models by number)        |
| B:x:<slot end>      | list       | digests expiring in that slot                                          |
| B:xs                | sorted set | the expiry slots, by end                                               |
| B:xw, B:xv          | list       | digests taken from the index for the running expiry sweep / eviction    |
| B:ck                | hash       | input topic -> last offset applied (the exactly-once guard)             |
| B:wm                | hash       | `i` / `l` -> latest inference / label time seen; `f` the idle floor    |
| B:w:<window>        | hash       | the partition's part of a tumbling window (a WindowAggregate's fields)  |
| B:w:<window>:g:<k>  | set        | the values of segment key `k` the part admitted (at most segment_cap)   |
| B:open              | sorted set | window -> end, of the parts above that joined pairs opened             |
| B:u:<mv>            | sorted set | window -> end: parts only inferences reached, `pd:` markers (go when past) |
| B:pv                | sorted set | window -> end: waiting for its provisional record                      |
| B:pd:<window>       | string     | its provisional record was queued (safety TTL): drifted features or 1 |
| B:s:<window>        | hash       | a sealed part (closing), its counts (`#<name>`), `~drifted` features   |
| B:sealed            | sorted set | window -> end, of the sealed parts                                     |
| B:cl                | hash       | model version -> end of the last window sealed here (later pairs: late) |
| B:cp                | hash       | model version -> end of the last window published (owner partition)    |
| B:closed            | sorted set | key layout 2's closed windows: folded into `cl` / `cp`, then deleted    |
| B:cd:<model ver>    | hash       | change detectors by name; `#end` / `#pend`: the stamps claims check     |
| B:c:<model>         | hash       | late / expired / duplicate / rejected counts since the last report      |
| B:cv                | string     | the counters' version (moves when counts are sealed or taken)          |
| B:q:<window>        | list       | the partition's data-quality rows of a window not folded yet (JSON)     |
| B:qs:<window>       | hash       | `p` the profile of its folded rows, `n` how many folds (compare-and-set) |
| B:o                 | list       | records to publish (`outbox`), removed once Kafka acknowledged them     |
| B:r:<mv>            | list       | the partition's part of a model version's rolling window (last N)       |
| B:rn                | hash       | model version -> samples the partition's part was fed                  |
"""

from __future__ import annotations

import re

LAYOUT = "3"
OLD_LAYOUT_KEYS = ("open", "outbox", "wm", "floor")  # keys only truthstream's first key layout wrote

# The table above as patterns over the part after `B:` (partition keys) or `<prefix>:` (the rest).
PARTITION_KEYS = {
    "meta": r"meta",
    "bucket": r"e:\d+",
    "long label": r"L:.{12}",
    "models": r"m",
    "expiry slot": r"x:[^:]+",
    "expiry slots": r"xs",
    "sweep work": r"x[wv]",
    "offsets": r"ck",
    "watermarks": r"wm",
    "window part": r"w:.+",
    "admitted segment values": r"w:.+:g:.+",
    "open windows": r"open",
    "unopened windows": r"u:.+",
    "provisional list": r"pv",
    "provisional done": r"pd:.+",
    "sealed part": r"s:.+",
    "sealed windows": r"sealed",
    "sealed through": r"cl",
    "published through": r"cp",
    "closed windows (layout 2)": r"closed",
    "change detectors": r"cd:.+",
    "counters": r"c:.*",
    "counters version": r"cv",
    "quality rows": r"q:.+",
    "quality summary": r"qs:.+",
    "outbox": r"o",
    "rolling part": r"r:.+",
    "rolling counts": r"rn",
}
GLOBAL_KEYS: dict[str, str] = {}  # none since key layout 3 (2 kept rolling windows outside the partitions)


class Keys:
    """The names of a store's keys under its prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def base(self, partition: int) -> str:
        """The start of every key of a partition: the hash tag keeps them in one cluster slot."""
        return f"{self.prefix}:{{{self.prefix}:{partition}}}"

    def of(self, partition: int, name: str) -> str:
        """A partition's key `name` (as in the table: `meta`, `wm`, `o`, `w:<window>`, ...)."""
        return f"{self.base(partition)}:{name}"

    def meta(self, partition: int) -> str:
        """The partition's meta hash: the key every partition script is called with."""
        return self.of(partition, "meta")

    def outside(self, *parts: object) -> str:
        """A key under the prefix, outside every partition (rolling windows, old layouts)."""
        return ":".join([self.prefix, *map(str, parts)])

    def kind(self, key: str) -> str | None:
        """Which row of the layout a key is (None: not one of this store's)."""
        match = re.fullmatch(re.escape(self.prefix) + r":\{" + re.escape(self.prefix) + r":\d+\}:(.*)", key, re.S)
        table, rest = (PARTITION_KEYS, match.group(1)) if match else (GLOBAL_KEYS, None)
        if rest is None:
            if not key.startswith(self.prefix + ":"):
                return None
            rest = key[len(self.prefix) + 1 :]
        found = [name for name, pattern in table.items() if re.fullmatch(pattern, rest, re.S)]
        return found[-1] if found else None
